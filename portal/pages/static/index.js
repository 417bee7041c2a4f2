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
    let registered, versions;
    try {
      const resp = await fetch(`/d/${sha}`, { headers: { Accept: "application/json" } });
      // only an answer of the lookup says whether the file is registered (not a 429, not a 5xx)
      if (!resp.ok) throw new Error(String(resp.status));
      const answer = await resp.json();
      registered = answer.registered;
      versions = Array.isArray(answer.versions) ? answer.versions : [];
      if (typeof registered !== "boolean") throw new Error("?");
    } catch (err) {
      out.textContent = box.dataset.error.replace("{status}", err instanceof TypeError ? "-" : err.message);
      out.className = "error";
      return;
    }
    // which version the file is: the original, a party's signed PDF, a scan of a paper copy
    const kinds = versions.map((x) => (x.kind === "signed" ? box.dataset.kindSigned.replace("{n}", String(x.party))
      : x.kind === "scan" ? box.dataset.kindScan.replace("{n}", x.copy ? String(x.copy) : "?")
        : box.dataset.kindOriginal));
    const which = Array.from(new Set(kinds)).join(" ");
    out.textContent = `${registered ? box.dataset.found : box.dataset.none}${which ? ` ${which}` : ""} SHA-256 ${sha}`;
    out.className = registered ? "info" : "bad";  // registered is no verdict on a contract: not green
  }
  input.addEventListener("change", () => input.files.length && check(input.files[0]));
  box.addEventListener("dragover", (e) => e.preventDefault());
  box.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) check(e.dataTransfer.files[0]);
  });
});
