// The home page: hash a dropped or picked file in the browser and ask whether it is registered.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("file-check");
  const input = document.getElementById("file-input");
  const out = document.getElementById("file-result");
  if (!box || !input) return;
  async function check(file) {
    out.textContent = "";
    out.className = "";
    const sha = await EL.fileSha256(file);
    let registered;
    try {
      const resp = await fetch(`/d/${sha}`, { headers: { Accept: "application/json" } });
      // only an answer of the lookup says whether the file is registered (not a 429, not a 5xx)
      if (!resp.ok) throw new Error(String(resp.status));
      registered = (await resp.json()).registered;
      if (typeof registered !== "boolean") throw new Error("?");
    } catch (err) {
      out.textContent = box.dataset.error.replace("{status}", err instanceof TypeError ? "-" : err.message);
      out.className = "error";
      return;
    }
    out.textContent = `${registered ? box.dataset.found : box.dataset.none} SHA-256 ${sha}`;
    out.className = registered ? "info" : "bad";  // registered is no verdict on a contract: not green
  }
  input.addEventListener("change", () => input.files.length && check(input.files[0]));
  box.addEventListener("dragover", (e) => e.preventDefault());
  box.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) check(e.dataTransfer.files[0]);
  });
});
