// The home page: hash a dropped or picked file in the browser and ask whether it is registered.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("file-check");
  const input = document.getElementById("file-input");
  const out = document.getElementById("file-result");
  if (!box || !input) return;
  async function check(file) {
    const sha = await EL.fileSha256(file);
    const resp = await fetch(`/d/${sha}`, { headers: { Accept: "application/json" } });
    const body = await resp.json();
    out.textContent = `${body.registered ? box.dataset.found : box.dataset.none} SHA-256 ${sha}`;
    out.className = body.registered ? "ok" : "bad";
  }
  input.addEventListener("change", () => input.files.length && check(input.files[0]));
  box.addEventListener("dragover", (e) => e.preventDefault());
  box.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) check(e.dataTransfer.files[0]);
  });
});
