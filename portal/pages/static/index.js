// The home page: hash a dropped or picked file in the browser and ask whether it is registered; on the
// reader's request, have the portal check the signatures of that PDF.
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
        : x.kind === "sealed" ? box.dataset.kindSealed
        : box.dataset.kindOriginal));
    const which = Array.from(new Set(kinds)).join(" ");
    out.textContent = `${registered ? box.dataset.found : box.dataset.none}${which ? ` ${which}` : ""} SHA-256 ${sha}`;
    out.className = registered ? "info" : "bad";  // registered is no verdict on a contract: not green
  }
  // Only when the reader asks: send the PDF itself to have its signatures checked, and show the portal's
  // answer (the result page's section, or its refusal) in this page.
  const form = document.getElementById("sig-form");
  const sigBox = document.getElementById("sig-box");
  let picked = null;  // the file picked or dropped last
  async function checkSignatures(file) {
    sigBox.replaceChildren();
    const note = document.createElement("p");
    note.textContent = form.dataset.pending;
    sigBox.append(note);
    let shown;
    try {
      const resp = await fetch(form.action, {
        method: "POST", body: file, headers: { "Content-Type": "application/pdf", Accept: "text/html" },
      });
      const type = resp.headers.get("Content-Type") || "";
      if (!type.startsWith("text/html")) throw new Error(String(resp.status));
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      shown = resp.ok ? doc.getElementById("sig-result") : doc.getElementById("error");
      if (!shown) throw new Error(String(resp.status));
    } catch (err) {
      note.textContent = form.dataset.error.replace("{status}", err instanceof TypeError ? "-" : err.message);
      note.className = "error";
      return;
    }
    sigBox.replaceChildren(document.adoptNode(shown));
  }
  form.addEventListener("submit", (e) => {
    const file = input.files.length ? input.files[0] : picked;
    if (!file) return;  // nothing picked: the browser's own form asks for a file
    e.preventDefault();
    checkSignatures(file);
  });
  input.addEventListener("change", () => {
    picked = input.files.length ? input.files[0] : null;
    if (picked) check(picked);
  });
  box.addEventListener("dragover", (e) => e.preventDefault());
  box.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) {
      picked = e.dataTransfer.files[0];
      check(picked);
    }
  });
});
