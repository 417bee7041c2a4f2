// The copy page: verify, in the browser, what the server says.
//
// 1. the checkpoint is signed by the log key (Ed25519, C2SP signed note), and that key matches the
//    fingerprint pinned in the QR code's fragment (#k=...), which never reaches the server;
// 2. every event of the envelope is in that checkpoint (RFC 9162 inclusion proofs, SHA-256);
// 3. they are all of the envelope's events: the log's signed statement of the envelope's last event
//    (verifier/head.py), signed at most ten minutes from this device's time;
// 4. the events form an unbroken chain, and one of them printed the copy whose code is in this page's
//    address (its SHA-256): so the events are this copy's envelope's, not another one's;
// 5. what the page shows from them is what they say: the status, the copy number, the document's hash
//    and size, the void date, the parties' roles, order and signatures, every row of the timeline (a
//    time is shown in the reader's terms, from its <time> element's exact instant: that instant and
//    those words are the signed entry's); and the document hash starts with the prefix pinned in the
//    QR code (#d=...).
// Any failure turns the box and the banner red: a lying server cannot show a green result. Without a
// key pin (a typed code) the box is amber: checked against a key the server itself supplied. What the
// log holds only as salted commitments (the title, names) or outside the entries (time-stamps,
// cosignatures) is marked as the portal's statement. "Compare your copy" opens once the check passed.
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
  // Values in a reason may come from the server's data: only strings and numbers are shown, and
  // nothing here may throw (the red state is already set when this runs).
  const shown = (value) => (typeof value === "string" || typeof value === "number" ? String(value) : "?");
  // A key of the object itself, never one it inherits ("constructor", "__proto__"): data picks keys.
  const own = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);
  function reason(err, reasons) {
    const code = err instanceof CheckFailed && reasons[err.code] ? err.code : "unexpected";
    const params = err instanceof CheckFailed ? err.params : { detail: shown(err && err.message) };
    return reasons[code].replace(/\{(\w+)\}/g, (m, name) => {
      if (!own(params, name)) return m;
      const value = shown(params[name]);
      if (name === "what") return reasons["what_" + value] || value;
      return (own(reasons, "st_" + value) && reasons["st_" + value]) || value;
    });
  }

  const MIN_PIN = 16;  // hex digits: a shorter pin is no pin a QR code of this portal carries
  function pins() {
    const out = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      const [k, v] = part.split("=");
      if (k && v) out[k] = v.toLowerCase();
    }
    for (const k of ["k", "d"]) {
      if (out[k] !== undefined && !(new RegExp(`^[0-9a-f]{${MIN_PIN},64}$`)).test(out[k])) fail("pin_format");
    }
    return out;
  }

  // SHA-256 of the code in this page's address, as the copy.printed entry holds it (ledger/qr.py)
  async function codeHash() {
    const m = location.pathname.match(/^\/v\/([0-9A-Z]{20})$/);
    if (!m) fail("code_path");
    return EL.hex(await EL.sha256(enc.encode(m[1])));
  }

  const text = (el) => (el ? el.textContent.replace(/\s+/g, " ").trim() : null);

  // The log's times as this page shows them (portal/pages/i18n.py shown_time makes the page without
  // this script): to the second, in Beijing time on a Chinese page (t.time_offset minutes east of UTC),
  // on an English one in this device's own time zone, named. Text that is no such time stays as it is.
  const TIME = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z$/;
  function parseTime(iso) {
    const m = typeof iso === "string" ? TIME.exec(iso) : null;
    if (!m) return null;
    const [y, mo, d, h, mi, s] = m.slice(1).map(Number);
    const at = new Date(0);
    at.setUTCFullYear(y, mo - 1, d);
    at.setUTCHours(h, mi, s, 0);
    // no calendar has this day or second (nor, in every zone, a date past the year 9999)
    const same = at.getUTCFullYear() === y && at.getUTCMonth() === mo - 1 && at.getUTCDate() === d &&
      at.getUTCHours() === h && at.getUTCMinutes() === mi && at.getUTCSeconds() === s;
    return same && y >= 1 && y < 9999 ? at : null;
  }
  const pad = (n, width) => String(n).padStart(width || 2, "0");
  function shownTime(iso, t) {
    const at = parseTime(iso);
    if (!at) return shown(iso);
    let parts, zone = "";
    if (typeof t.time_offset === "number") {
      const z = new Date(at.getTime() + t.time_offset * 60000);
      parts = [z.getUTCFullYear(), z.getUTCMonth() + 1, z.getUTCDate(), z.getUTCHours(), z.getUTCMinutes(),
               z.getUTCSeconds()];
    } else {
      parts = [at.getFullYear(), at.getMonth() + 1, at.getDate(), at.getHours(), at.getMinutes(), at.getSeconds()];
      const name = new Intl.DateTimeFormat(t.lang, { timeZoneName: "short" }).formatToParts(at)
        .find((part) => part.type === "timeZoneName");
      zone = name ? name.value : "";
    }
    const [y, mo, d, h, mi, s] = parts;
    const clock = `${pad(y, 4)}-${pad(mo)}-${pad(d)} ${pad(h)}:${pad(mi)}:${pad(s)}`;
    return t.time_shown.replace("{time}", () => clock).replace("{zone}", () => zone).trim();
  }
  // Every time on the page in the reader's terms, from its element's exact instant (its title says it
  // in UTC, to the millisecond).
  function showTimes(t) {
    for (const el of document.querySelectorAll("main time[datetime]")) {
      const iso = el.getAttribute("datetime");
      if (!parseTime(iso)) continue;
      el.textContent = shownTime(iso, t);
      el.title = `${iso.slice(0, -1).replace("T", " ")} UTC`;
    }
  }
  // Does `el` show the signed time `iso` as a <time> element holding that very instant (one, and only
  // when it is a time)?
  function holdsTime(el, iso) {
    const times = el.querySelectorAll("time");
    if (!parseTime(iso)) return times.length === 0;
    return times.length === 1 && times[0].getAttribute("datetime") === iso;
  }
  // On screen: not inside anything hidden, and laid out (the stylesheet is the portal's own; the
  // page's policy allows no inline style).
  const visible = (el) => Boolean(el) && !el.closest("[hidden]") && el.getClientRects().length > 0;

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

  const CLOSED = ["withdrawn", "declined", "voided"];  // no one signs any more (verifier/lifecycle.py)
  const STATUS = {
    "envelope.created": "draft", "envelope.sent": "sent", "envelope.completed": "completed",
    "envelope.withdrawn": "withdrawn", "party.declined": "declined", "envelope.voided": "voided",
  };

  async function verify(v, t) {
    const p = pins();
    const key = await parseKey(v.log.verifier_key);
    if (p.k && EL.hex(await EL.sha256(key.pub)).slice(0, p.k.length) !== p.k) {
      fail("key_pin");
    }
    const cp = await verifyCheckpoint(v.log.checkpoint, key);
    const head = await verifyHead(v.log.head, key, cp.size);
    const mine = await codeHash();
    let prevLeaf = "", seq = 0, env = null, status = null, lastIndex = -1, copy = null, voidedAt = null;
    const docs = {}, parties = [], rows = [], versions = [], seals = [];
    for (const item of v.proofs) {
      const entry = EL.b64(item.entry);
      const leaf = await EL.sha256(EL.concat(Uint8Array.of(0), entry));
      const root = await rootFromInclusion(item.index, cp.size, leaf, item.proof.map(EL.b64));
      if (!EL.equal(root, cp.root)) fail("not_included", { index: item.index });
      const e = JSON.parse(new TextDecoder().decode(entry));
      if (env === null) env = e.env;
      if (e.env !== env || e.seq !== seq || e.prev !== prevLeaf) fail("chain");
      seq += 1; prevLeaf = EL.hex(leaf); lastIndex = item.index;
      const d = e.data;
      if (STATUS[e.type]) status = STATUS[e.type];
      if (e.type === "envelope.voided") voidedAt = e.time;
      if (e.type === "document.added") docs[d.document] = { sha256: d.sha256, size: d.size };
      if (e.type === "copy.printed" && d.code === mine) copy = { document: d.document, n: d.copy };
      if (e.type === "party.added") parties.push({ role: d.role, order: d.order, signed: false, declined: false });
      if (e.type === "party.signed") parties[d.party - 1].signed = true;
      // the versions made from a document, as signed entries register them: a party's signed PDF, a scan
      if (e.type === "party.signed") versions.push({ document: d.document, sha256: d.signed_sha256, party: d.party });
      if (e.type === "paper.scanned") versions.push({ document: d.document, sha256: d.sha256, scan: d.copy || 0 });
      if (e.type === "document.sealed") versions.push({ document: d.document, sha256: d.sha256, sealed: true });
      if (e.type === "party.declined") parties[d.party - 1].declined = true;
      if (e.type === "seal.used") seals.push({ party: d.party, kind: d.kind, fingerprint: d.seal.toLowerCase() });
      let detail = "";  // in the page's words; a party's kind is no method of anything: none
      if (e.type === "copy.printed") {
        detail = (d.code === mine ? t.copy_this : t.copy_row).replace("{n}", () => shown(d.copy))
          .replace("{document}", () => shown(d.document));
      } else if (e.type !== "party.added") {
        detail = said(t.details, d.method || d.channel || d.kind || "");
      }
      rows.push({ time: e.time, type: e.type, party: d.party, detail });
    }
    if (head.env !== env) fail("head_env");
    if (head.events !== seq || head.last !== lastIndex || head.leaf !== prevLeaf) {
      fail("head_events", { logged: head.events, shown: seq });
    }
    if (!copy) fail("not_this_copy");
    if (status !== v.status) fail("status", { signed: status, shown: v.status });
    const banner = document.getElementById("status");
    if (!banner || !visible(banner)) fail("banner");  // the page has one, on screen
    if (banner.dataset.status !== status) fail("banner_status");
    // The visible banner too: its colour and its words must be those of the verified status.
    const labels = t.labels;
    const heading = banner.querySelector("h1");
    if (!banner.classList.contains(`status-${status}`) || !heading || !visible(heading) ||
        heading.textContent.trim() !== labels[status]) {
      fail("banner");
    }
    const voidLine = document.getElementById("void-detail");
    const voidWords = t.void_detail.replace("{date}", () => shownTime(voidedAt, t));
    if ((status === "voided") !== Boolean(voidLine) || (voidLine && (!visible(voidLine) ||
        !holdsTime(voidLine, voidedAt) || text(voidLine) !== voidWords))) fail("void_shown");
    const doc = docs[copy.document];
    if (!doc) fail("no_document");
    const docHash = doc.sha256;
    if (text(document.getElementById("doc-sha256")) !== docHash) fail("doc_shown");
    const docLine = text(document.getElementById("doc-name"));
    if (docLine === null || !docLine.endsWith(`(${doc.size} B)`)) fail("doc_size");
    if (text(document.getElementById("copy-no")) !== t.copy_of.replace("{n}", String(copy.n))) fail("copy_shown");
    const cmp = document.getElementById("compare");
    if (cmp && cmp.dataset.sha256 !== docHash) fail("doc_compare");
    if (p.d && !docHash.startsWith(p.d)) fail("doc_pin");
    checkParties(parties, t, CLOSED.includes(status));
    checkTimeline(rows, t);
    checkSeals(seals, t);
    const mineVersions = versions.filter((x) => x.document === copy.document);
    return { size: cp.size, pinned: Boolean(p.k), docHash, status, versions: mineVersions };
  }

  // The page's word for a value of the log (an event type, a method): the log's own value if none.
  const said = (words, value) => (typeof value === "string" && own(words, value) ? words[value] : value);

  // The parties table: one row per party.added, in order, with the role, signing order and outcome
  // the events give (a signer who had not signed when the envelope closed "did not sign"). Their
  // names are the portal's statement (the log holds only commitments).
  function checkParties(parties, t, closed) {
    const trs = document.querySelectorAll("#parties tr");
    if (trs.length !== parties.length || !Array.from(trs).every(visible)) fail("parties");
    parties.forEach((party, i) => {
      const cells = Array.from(trs[i].cells, text);
      const outcome = party.signed ? t.signed : party.declined ? t.declined
        : party.role === "signer" ? (closed ? t.not_signed : t.pending) : "";
      const order = party.role === "signer" ? `${t.order} ${party.order}` : "";
      if (cells.length !== 4 || cells[1] !== t["role_" + party.role] || cells[2] !== order || cells[3] !== outcome) {
        fail("parties");
      }
    });
  }

  // The timeline: one row per event, in order, with its time, type and details (the method or channel,
  // which copy of which document was printed) in the words of /texts/<lang>.js; a party named in a row
  // is the one the parties table shows for it.
  function checkTimeline(rows, t) {
    const trs = document.querySelectorAll("#timeline tr");
    const names = Array.from(document.querySelectorAll("#parties tr"), (tr) => text(tr.cells[0]));
    if (trs.length !== rows.length) fail("timeline", { index: Math.min(trs.length, rows.length) + 1 });
    trs.forEach((tr, i) => { if (!visible(tr)) fail("timeline", { index: i + 1 }); });
    rows.forEach((row, i) => {
      const cells = Array.from(trs[i].cells, text);
      const party = row.party ? names[row.party - 1] : "";
      if (cells.length !== 4 || cells[0] !== shownTime(row.time, t) || !holdsTime(trs[i].cells[0], row.time) ||
          cells[1] !== said(t.events, row.type) || cells[2] !== party || cells[3] !== row.detail) {
        fail("timeline", { index: i + 1 });
      }
    });
  }

  // The seals table: one row per seal.used event, in order, with the party, the kind in the page's words
  // and the start of the fingerprint the event holds (the seal's name is the registry's, not the log's).
  function checkSeals(seals, t) {
    const trs = document.querySelectorAll("#seals tr");
    const names = Array.from(document.querySelectorAll("#parties tr"), (tr) => text(tr.cells[0]));
    if (trs.length !== seals.length) fail("seals");
    seals.forEach((s, i) => {
      const cells = Array.from(trs[i].cells, text);
      if (!visible(trs[i]) || cells.length !== 4 || cells[0] !== names[s.party - 1] ||
          cells[1] !== said(t.details, s.kind) || cells[3] !== s.fingerprint.slice(0, 16)) fail("seals");
    });
  }

  const FETCH_TIMEOUT_MS = 20000;
  async function fetchView(url) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store",
                                      signal: ctl.signal });
      if (!resp.ok) fail("http", { status: resp.status });
      return await resp.json();
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      if (ctl.signal.aborted) fail("timeout");
      fail("http", { status: String(err && err.message || err) });
    } finally {
      clearTimeout(timer);
    }
  }

  // The envelope had new events after this page was made (the page shows fewer than the log now
  // holds): the page is out of date, not false. Load it again, once (never in a loop).
  // A mark left for the next load: it reloads at most once until a check has completed.
  const RELOAD_MARK = "el-reloaded:" + location.pathname;
  function reloadedOutdated(v, box) {
    if (!(Array.isArray(v.proofs) && v.proofs.length > Number(box.dataset.events))) return false;
    try {
      if (sessionStorage.getItem(RELOAD_MARK)) return false;  // loaded again already: check as it is
      sessionStorage.setItem(RELOAD_MARK, "1");
    } catch (err) {
      return false;  // no storage: check the page as it is
    }
    location.reload();
    return true;
  }
  function checkCompleted() {
    try { sessionStorage.removeItem(RELOAD_MARK); } catch (err) { /* no storage: nothing to clear */ }
  }

  // A failed check takes the banner too: a green status must not stay on screen above a red box.
  function bannerFailed(t) {
    const banner = document.getElementById("status");
    if (!banner) return;
    banner.className = "banner status-failed";
    banner.dataset.status = "failed";
    for (let el = banner; el; el = el.parentElement) el.hidden = false;  // on screen, whatever hid it
    banner.replaceChildren();
    const h1 = document.createElement("h1");
    h1.textContent = t.status_failed;
    banner.appendChild(h1);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const box = document.getElementById("verify");
    if (!box) return;
    const out = document.getElementById("verify-result");
    const more = document.getElementById("verify-more");
    if (more) more.hidden = true;  // until this check has something to say in it
    // the words come with the script (/texts/<lang>.js), never from the page it checks
    if (typeof EL_TEXT === "undefined") {
      box.className = "verify fail";
      box.dataset.result = "fail";
      const zh = document.documentElement.lang === "zh-CN";
      out.textContent = zh ? "未通过验证：验证所需的文字未能加载（/texts/*.js）。请勿信任此页面。"
        : "VERIFICATION FAILED: the check's texts did not load (/texts/*.js). Do not trust this page.";
      bannerFailed({ status_failed: zh ? "未通过验证 - 请勿信任此页面" : "NOT VERIFIED - do not rely on this page" });
      return;
    }
    const t = EL_TEXT;
    try { showTimes(t); } catch (err) { /* the page's own times stay, and the check compares them */ }
    const cmp = document.getElementById("compare");
    const input = cmp && document.getElementById("compare-input");
    const res = cmp && document.getElementById("compare-result");
    out.textContent = t.verify_pending;
    let verified = null;
    let versionsOf = [];
    try {
      const v = await fetchView(box.dataset.json);
      if (reloadedOutdated(v, box)) return;
      const r = await verify(v, t);
      verified = r.docHash;
      versionsOf = r.versions;
      const pinned = r.pinned;
      // the verdict in one sentence; what it covers folded below it
      out.textContent = pinned ? t.verify_ok : t.verify_unpinned;
      const detail = document.getElementById("verify-detail");
      if (more && detail) {
        detail.textContent = (pinned ? t.verify_ok_more : t.verify_unpinned_more).replace("{size}", String(r.size));
        more.hidden = false;
      }
      // green only for a contract in force: a verified VOID is not to be read as a green light
      box.className = pinned ? (r.status === "completed" ? "verify ok" : "verify ok not-valid") : "verify unpinned";
      box.dataset.result = pinned ? "ok" : "unpinned";
    } catch (err) {
      box.className = "verify fail";  // red first: nothing after this may leave a green state behind
      box.dataset.result = "fail";
      if (more) more.hidden = true;
      out.textContent = t.verify_fail.replace("{reason}", "?");
      try { bannerFailed(t); } catch (e) { /* the box is red whatever the banner holds */ }
      try {
        out.textContent = t.verify_fail.replace("{reason}", reason(err, t.reasons));
      } catch (e) { /* keep "?" */ }
    }
    checkCompleted();
    if (!cmp) return;
    if (verified === null) {  // nothing to compare with: the registered hash is not established
      res.textContent = t.compare_failed;
      res.className = "bad";
      return;
    }
    input.disabled = false;
    res.textContent = "";
    input.addEventListener("change", async () => {
      if (!input.files.length) return;
      const sha = await EL.fileSha256(input.files[0]);
      const version = versionsOf.find((x) => x.sha256 === sha);
      const same = sha === verified || version !== undefined;
      const words = sha === verified ? t.match : !version ? t.mismatch
        : version.sealed ? t.match_sealed
        : version.party ? t.match_signed.replace("{n}", String(version.party))
          : version.scan ? t.match_scan.replace("{n}", String(version.scan)) : t.match_scan_any;
      res.textContent = `${words} (SHA-256 ${sha})`;
      res.className = same ? "ok" : "bad";
    });
  });
})();
