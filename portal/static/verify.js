// The copy page: verify, in the browser, what the server says.
//
// 1. the checkpoint is signed by the log key (Ed25519, C2SP signed note), and that key matches the
//    fingerprint pinned in the QR code's fragment (#k=...), which never reaches the server;
// 2. every event of the envelope is in that checkpoint (RFC 9162 inclusion proofs, SHA-256);
// 3. they are all of the envelope's events: the log's signed statement of the envelope's last event
//    in that checkpoint (verifier/head.py), signed at most ten minutes from this device's time;
// 4. the events form an unbroken chain, and the status and document they describe are what the page
//    shows, and the document hash starts with the prefix pinned in the QR code (#d=...).
// Any failure turns the box red: a lying server cannot show a green result.
"use strict";

(function () {
  const enc = new TextEncoder();

  // A failed check: a reason code (portal/i18n.py REASONS) and what fills its {names}.
  class CheckFailed extends Error {
    constructor(code, params) { super(code); this.code = code; this.params = params || {}; }
  }
  function fail(code, params) { throw new CheckFailed(code, params); }

  // The reason in the page's language; anything else that went wrong (a malformed answer, a browser
  // without Ed25519 in WebCrypto) is a failure too, never a pass.
  function reason(err, reasons) {
    const code = err instanceof CheckFailed && reasons[err.code] ? err.code : "unexpected";
    const params = err instanceof CheckFailed ? err.params : { detail: String(err && err.message || err) };
    return reasons[code].replace(/\{(\w+)\}/g, (m, name) => {
      const value = params[name];
      if (value === undefined) return m;
      if (name === "what") return reasons["what_" + value] || String(value);
      return reasons["st_" + value] || String(value);  // a status by its name in the page's language
    });
  }

  function pins() {
    const out = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      const [k, v] = part.split("=");
      if (k && v) out[k] = v.toLowerCase();
    }
    return out;
  }

  async function nodeHash(l, r) { return EL.sha256(EL.concat(Uint8Array.of(1), l, r)); }

  // RFC 9162 section 2.1.3.2
  async function rootFromInclusion(index, size, leaf, proof) {
    if (index >= size) fail("outside", { index });
    let fn = index, sn = size - 1, r = leaf;
    for (const p of proof) {
      if (p.length !== 32) fail("proof_hash");
      if (sn === 0) fail("proof_long");
      if ((fn & 1) === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1) === 0) { while ((fn & 1) === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) fail("proof_short");
    return r;
  }

  async function parseKey(vkey) {
    const [name, hexid, b64] = [vkey.split("+")[0], vkey.split("+")[1], vkey.split("+").slice(2).join("+")];
    const raw = EL.b64(b64);
    if (raw.length !== 33 || raw[0] !== 1) fail("key_format");
    const pub = raw.slice(1);
    const id = (await EL.sha256(EL.concat(enc.encode(name + "\n"), Uint8Array.of(1), pub))).slice(0, 4);
    if (EL.hex(id) !== hexid) fail("key_id");
    return { name, id, pub };
  }

  // A C2SP signed note signed by the log key: its text (the body the signature covers).
  async function verifyNote(note, key, what) {
    const split = note.lastIndexOf("\n\n");
    if (split < 0) fail("unsigned", { what });
    const text = note.slice(0, split + 1);
    const lines = note.slice(split + 2).split("\n").filter((l) => l);
    const ck = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
    let ok = false;
    for (const line of lines) {
      if (!line.startsWith("\u2014 ")) fail("sig_line", { what });
      const [name, sigb64] = line.slice(2).split(" ");
      const sig = EL.b64(sigb64);
      if (name !== key.name || !EL.equal(sig.slice(0, 4), key.id)) continue;
      if (!(await crypto.subtle.verify({ name: "Ed25519" }, ck, sig.slice(4), enc.encode(text)))) {
        fail("sig_bad", { what });
      }
      ok = true;
    }
    if (!ok) fail("not_log_key", { what });
    return text;
  }

  async function verifyCheckpoint(note, key) {
    const text = await verifyNote(note, key, "checkpoint");
    const [origin, sizeText, rootB64] = text.split("\n");
    if (origin !== key.name) fail("other_log");
    return { size: Number(sizeText), root: EL.b64(rootB64) };
  }

  // The log's signed statement of the envelope's last event in this tree (verifier/head.py): without
  // it a server could leave out the last events (a void, a withdrawal) and show an older status.
  const HEAD_MAX_AGE_MS = 10 * 60 * 1000;
  async function verifyHead(note, key, size) {
    if (typeof note !== "string") fail("no_head");
    const text = await verifyNote(note, key, "head");
    const l = text.slice(0, -1).split("\n");
    if (l.length !== 8 || l[0] !== key.name || l[1] !== "envelope-head v1") {
      fail("head_format");
    }
    const head = { env: l[2], size: Number(l[3]), events: Number(l[4]), last: Number(l[5]),
                   leaf: EL.hex(EL.b64(l[6])), time: l[7] };
    if (head.size !== size) fail("head_size");
    const signed = Date.parse(head.time);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(head.time) || Number.isNaN(signed)) {
      fail("head_time");
    }
    if (Math.abs(Date.now() - signed) > HEAD_MAX_AGE_MS) {
      fail("head_stale", { signed: head.time, now: new Date().toISOString() });
    }
    return head;
  }

  const STATUS = {
    "envelope.created": "draft", "envelope.sent": "sent", "envelope.completed": "completed",
    "envelope.withdrawn": "withdrawn", "party.declined": "declined", "envelope.voided": "voided",
  };

  async function verify(v) {
    const p = pins();
    const key = await parseKey(v.log.verifier_key);
    if (p.k && EL.hex(await EL.sha256(key.pub)).slice(0, p.k.length) !== p.k) {
      fail("key_pin");
    }
    const cp = await verifyCheckpoint(v.log.checkpoint, key);
    const head = await verifyHead(v.log.head, key, cp.size);
    let prevLeaf = "", seq = 0, env = null, status = null, docHash = null, lastIndex = -1;
    for (const item of v.proofs) {
      const entry = EL.b64(item.entry);
      const leaf = await EL.sha256(EL.concat(Uint8Array.of(0), entry));
      const root = await rootFromInclusion(item.index, cp.size, leaf, item.proof.map(EL.b64));
      if (!EL.equal(root, cp.root)) fail("not_included", { index: item.index });
      const e = JSON.parse(new TextDecoder().decode(entry));
      if (env === null) env = e.env;
      if (e.env !== env || e.seq !== seq || e.prev !== prevLeaf) fail("chain");
      seq += 1; prevLeaf = EL.hex(leaf); lastIndex = item.index;
      if (STATUS[e.type]) status = STATUS[e.type];
      if (e.type === "document.added" && e.data.sha256 === v.document.sha256) docHash = e.data.sha256;
    }
    if (head.env !== env) fail("head_env");
    if (head.events !== seq || head.last !== lastIndex || head.leaf !== prevLeaf) {
      fail("head_events", { logged: head.events, shown: seq });
    }
    if (status !== v.status) fail("status", { signed: status, shown: v.status });
    const banner = document.getElementById("status");
    if (banner && banner.dataset.status !== status) fail("banner_status");
    // The visible banner too: its colour and its words must be those of the verified status.
    const labels = JSON.parse(document.getElementById("verify").dataset.labels || "{}");
    const heading = banner && banner.querySelector("h1");
    if (banner && (!banner.classList.contains(`status-${status}`) ||
                   !heading || heading.textContent.trim() !== labels[status])) {
      fail("banner");
    }
    if (!docHash) fail("no_document");
    const shown = document.getElementById("doc-sha256");
    if (shown && shown.textContent.trim() !== docHash) fail("doc_shown");
    const cmp = document.getElementById("compare");
    if (cmp && cmp.dataset.sha256 !== docHash) fail("doc_compare");
    if (p.d && !docHash.startsWith(p.d)) fail("doc_pin");
    return { size: cp.size, pinned: Boolean(p.k) };
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const box = document.getElementById("verify");
    const out = document.getElementById("verify-result");
    const cmp = document.getElementById("compare");
    if (cmp) {
      const input = document.getElementById("compare-input");
      const res = document.getElementById("compare-result");
      input.addEventListener("change", async () => {
        if (!input.files.length) return;
        const sha = await EL.fileSha256(input.files[0]);
        const same = sha === cmp.dataset.sha256;
        res.textContent = `${same ? cmp.dataset.match : cmp.dataset.mismatch} (SHA-256 ${sha})`;
        res.className = same ? "ok" : "bad";
      });
    }
    if (!box) return;
    out.textContent = box.dataset.pending;
    try {
      const resp = await fetch(box.dataset.json, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!resp.ok) fail("http", { status: resp.status });
      const r = await verify(await resp.json());
      out.textContent = box.dataset.ok.replace("{size}", String(r.size));
      box.className = "verify ok";
      box.dataset.result = "ok";
    } catch (err) {
      const reasons = JSON.parse(box.dataset.reasons || "{}");
      out.textContent = box.dataset.fail.replace("{reason}", reasons.unexpected ? reason(err, reasons) : String(err));
      box.className = "verify fail";
      box.dataset.result = "fail";
    }
  });
})();
