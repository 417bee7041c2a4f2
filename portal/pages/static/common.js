// Shared helpers for the portal's pages: hex/base64 and SHA-256 through WebCrypto.
"use strict";

const EL = {
  hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  },
  b64(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  },
  concat(...parts) {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  },
  async sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  },
  async fileSha256(file) {
    return EL.hex(await EL.sha256(new Uint8Array(await file.arrayBuffer())));
  },
  equal(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  },
};

// The language switch keeps the address's fragment: on a QR page it holds the pins the in-browser
// check needs (it is never sent to the server, so the server's link cannot carry it).
// So do the copy's other pages, marked data-keep-pins: the access-code form's address carries the
// pins to the page it opens (a refusal), whose way back carries them on. Only pins of the shape a QR
// code prints are carried, never other text of the address.
document.addEventListener("DOMContentLoaded", () => {
  const pins = /^#[kd]=[0-9a-fA-F]{16,64}(?:&[kd]=[0-9a-fA-F]{16,64})?$/;
  const keptPins = () => (pins.test(location.hash) ? location.hash : "");
  const a = document.getElementById("lang-switch");
  if (a && location.hash) a.href = a.getAttribute("href").split("#")[0] + location.hash;
  for (const link of document.querySelectorAll("a[data-keep-pins]")) {
    link.href = link.getAttribute("href").split("#")[0] + keptPins();
  }
  for (const form of document.querySelectorAll("form[data-keep-pins]")) {
    // the address as the form is sent: the pins the page has then
    form.addEventListener("submit", () => { form.action = form.getAttribute("action").split("#")[0] + keptPins(); });
  }
});
