"""VERIFY.md: the steps an expert follows to check one bundle by hand, with this bundle's own file names.

Every step runs in the folder the bundle was unzipped into, with nothing but OpenSSL (1.1.1 or later:
Ed25519, `ts`) and Python 3's standard library (hashlib, base64, json); each prints OK or stops at the
first problem. The shell blocks are run as written by a test (`tests/evidence/test_verify_md.py`), so
what this file tells an expert is what works. Scratch files go to a folder of their own under $TMPDIR.

What it does not do: check the PAdES seals (that needs a PDF library: `verifier verify` does it, and so
does any PAdES validator), or translate (the report, not this file, is in the reader's language).
"""

from __future__ import annotations

from verifier.evidence.manifest import REPORT, Manifest

_FILES = '''
import hashlib, json, os
m = json.load(open("manifest.json", encoding="utf-8"))
listed = {f["path"]: f for f in m["files"]}
for path, f in sorted(listed.items()):
    data = open(path, "rb").read()
    assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["size"], path + " was changed"
found = {os.path.relpath(os.path.join(d, n)).replace(os.sep, "/") for d, _, names in os.walk(".") for n in names}
extra = sorted(found - set(listed) - {"manifest.json"})
assert not extra, "files not in manifest.json: " + ", ".join(extra)
print("OK", len(listed), "files have the SHA-256 manifest.json lists; nothing added, nothing missing")
'''

_KEY = '''
import base64, hashlib, json, os
key = json.load(open("manifest.json", encoding="utf-8"))["log"]["verifier_key"]
name, key_id, b64 = key.split("+", 2)
raw = base64.b64decode(b64)
assert len(raw) == 33 and raw[0] == 1, "not an Ed25519 signed-note key"
assert hashlib.sha256(name.encode() + b"\\n" + raw).digest()[:4].hex() == key_id, "key ID does not match"
open(os.path.join(S, "log-key.der"), "wb").write(bytes.fromhex("302a300506032b6570032100") + raw[1:])
print("OK log key", key, "(compare it with the key the log publishes: GET /log-key)")
'''

_SIGS = '''
import base64, json, os, struct
m = json.load(open("manifest.json", encoding="utf-8"))
log_name = m["log"]["verifier_key"].split("+")[0]
witnesses = {}
for w in m["log"]["witnesses"]:
    name, key_id, b64 = w.split("+", 2)
    witnesses[(name, key_id)] = base64.b64decode(b64)[1:]
for size, note_file, body_file in CHECKPOINTS:
    note = open(note_file, encoding="utf-8").read()
    body = open(body_file, "rb").read()
    text, sigs = note.split("\\n\\n", 1)
    assert (text + "\\n").encode() == body, body_file + " is not the text of " + note_file
    for line in sigs.splitlines():
        name, b64 = line[2:].rsplit(" ", 1)
        sig = base64.b64decode(b64)
        if name == log_name:
            open(os.path.join(S, "%d.sig" % size), "wb").write(sig[4:])
        elif (name, sig[:4].hex()) in witnesses:
            (t,) = struct.unpack(">Q", sig[4:12])
            tag = "%d-%s" % (size, sig[:4].hex())
            open(os.path.join(S, tag + ".msg"), "wb").write(b"cosignature/v1\\ntime %d\\n" % t + body)
            open(os.path.join(S, tag + ".sig"), "wb").write(sig[12:])
            open(os.path.join(S, tag + ".der"), "wb").write(
                bytes.fromhex("302a300506032b6570032100") + witnesses[(name, sig[:4].hex())])
            print("cosignature by", name, "on checkpoint", size, "at Unix time", t)
print("OK the checkpoints' bodies are their notes' text; signatures written to", S)
'''

_ENTRIES = '''
import base64, hashlib, json
def node(left, right):
    return hashlib.sha256(b"\\x01" + left + right).digest()
def root_from_inclusion(index, size, leaf, proof):  # RFC 9162 section 2.1.3.2
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        assert sn > 0, "proof too long"
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0, "proof too short"
    return r
body = open(CHECKPOINT_BODY, "rb").read().decode().split("\\n")
size, root = int(body[1]), base64.b64decode(body[2])
prev = ""
for seq, (index, entry_file, proof_file) in enumerate(ENTRIES):
    data = open(entry_file, "rb").read()
    leaf = hashlib.sha256(b"\\x00" + data).digest()
    e = json.loads(data)
    assert e["env"] == ENV and e["seq"] == seq and e["prev"] == prev, entry_file + " breaks the envelope's chain"
    head, _, checkpoint = open(proof_file, encoding="utf-8").read().partition("\\n\\n")
    lines = head.split("\\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" and lines[1] == "index %d" % index, proof_file + ": not for this entry"
    assert checkpoint.split("\\n\\n")[0] + "\\n" == "\\n".join(body), proof_file + ": another checkpoint"
    proof = [base64.b64decode(x) for x in lines[2:]]
    assert root_from_inclusion(index, size, leaf, proof) == root, proof_file + ": root differs"
    prev = leaf.hex()
    print("OK", entry_file, e["type"], e["time"], "leaf", prev)
print("OK", len(ENTRIES), "entries: one chain, each in the checkpoint of size", size)
'''

_CONSISTENCY = '''
import base64, hashlib
def node(left, right):
    return hashlib.sha256(b"\\x01" + left + right).digest()
def consistent(size1, size2, root1, root2, proof):  # RFC 9162 section 2.1.4.2
    if size1 == size2:
        return not proof and root1 == root2
    path = ([root1] if size1 & (size1 - 1) == 0 else []) + proof
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2
def tree(body_file):
    lines = open(body_file, encoding="utf-8").read().split("\\n")
    return int(lines[1]), base64.b64decode(lines[2])
for old_body, new_body, proof_file in CONSISTENCY:
    (s1, r1), (s2, r2) = tree(old_body), tree(new_body)
    proof = [base64.b64decode(x) for x in open(proof_file, encoding="utf-8").read().split()]
    assert consistent(s1, s2, r1, r2, proof), proof_file + ": the trees are not consistent"
    print("OK the tree of size", s2, "extends the tree of size", s1)
'''

_OPENINGS = '''
import hashlib, json
entries = [json.load(open(f, encoding="utf-8")) for f in ENTRY_FILES]
held = {v for e in entries for k, v in e["data"].items() if isinstance(v, str)}
for path in OPENINGS:
    o = json.load(open(path, encoding="utf-8"))
    assert hashlib.sha256(bytes.fromhex(o["salt"]) + o["value"].encode()).hexdigest() == o["commitment"], path
    assert o["commitment"] in held, path + " opens no commitment of the entries"
    print("OK", path, o["value"])
'''

_DOCUMENTS = '''
import hashlib, json
FIELD = {"document.added": "sha256", "party.signed": "signed_sha256", "document.sealed": "sha256",
         "paper.scanned": "sha256"}
for doc_file, entry_file in DOCUMENTS:
    e = json.load(open(entry_file, encoding="utf-8"))
    h = hashlib.sha256()
    with open(doc_file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert h.hexdigest() == e["data"][FIELD[e["type"]]], doc_file + " is not what " + entry_file + " registered"
    print("OK", doc_file, "is the version", entry_file, "registered (" + e["type"] + ")")
'''


def _py(code: str, scratch: str, *, fresh: bool = False, **values: object) -> str:
    """A shell block running `code` with Python, the given names bound to these values (`fresh`: the
    scratch folder emptied first, so nothing of an earlier run is checked again)."""
    head = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    clear = 'rm -rf "$S"; ' if fresh else ""
    return f'```sh\nS="{scratch}"; {clear}mkdir -p "$S"\npython3 - "$S" <<\'PY\'\nimport sys; S = sys.argv[1]\n' \
           f"{head}{code.lstrip()}PY\n```\n"


def render(m: Manifest, *, zip_name: str) -> str:
    """VERIFY.md for the bundle `m` describes (its files need not be listed yet)."""
    e, lg = m.envelope, m.log
    scratch = f"${{TMPDIR:-/tmp}}/verify-{e.env}"
    by_size = {c.size: c for c in lg.checkpoints}
    proof_cp = by_size[lg.size]
    entry_files = [x.file for x in m.entries]
    index_file = {x.index: x.file for x in m.entries}
    roots = {name: paths for name, paths in lg.tsa_roots.items()}
    out = [f"# Verifying this evidence bundle\n\n"
           f"Envelope `{e.ref}` of tenant `{e.tenant}` (`{e.env}` in the log `{lg.origin}`), status **{e.status}**, "
           f"{e.events} events; bundle made {m.generated}.\n"]
    if m.interim:
        out.append("\n**INTERIM**: the envelope was still in progress when this bundle was made; it holds the "
                   "events up to then.\n")
    out.append(f"""
## The one command

From the folder that holds `{zip_name}` (the `verifier` command comes with the ledger's repository:
`pip install` it, or run its `./scripts/run` once):

```sh
verifier verify {zip_name}
```

It checks everything below and the PAdES seals, and prints one verdict (exit code 0 only when every check
holds). By default it trusts the log key, TSA roots, seal roots and witness keys the bundle itself names,
and says so: give the ones you trust with `--log-key VKEY`, `--trust-tsa ROOT.pem`, `--trust-seal ROOT.pem`
and `--witness WKEY`, and the moment of judgment with `--at` (default: when the bundle was made).

## By hand, with OpenSSL and Python

Unzip the bundle into an empty folder and run each block there, in order. Each prints OK or stops
with the problem. Scratch files go to `{scratch}`.

### 1. Every file is the one `manifest.json` lists

`manifest.json` lists every file with its SHA-256 and size. `{REPORT}` embeds the *evidence manifest*:
the same list without `{REPORT}` and `manifest.json` (the report cannot hold its own hash), which
`verifier verify` compares with `manifest.json`; `manifest.json` in turn holds the report's hash.

""")
    out.append(_py(_FILES, scratch, fresh=True))
    out.append("""
### 2. The log's key

The verifier key in `manifest.json` (C2SP signed note: `name+keyID+base64(0x01 || Ed25519 key)`): its key
ID is the first 4 bytes of SHA-256(name, newline, 0x01, key). Compare the key with the one the log
publishes, or one a notary holds.

""")
    out.append(_py(_KEY, scratch))
    cps = [(c.size, c.note, c.body) for c in lg.checkpoints]
    out.append("""
### 3. The checkpoints are signed by the log (and cosigned by witnesses)

A checkpoint (C2SP tlog-checkpoint) is a signed note: its text (origin, tree size, base64 root) is
`checkpoints/<size>.body`, then a blank line and signature lines. This writes each signature, and each
witness cosignature (C2SP tlog-cosignature: it signs `cosignature/v1`, its time and the text), for OpenSSL:

""")
    out.append(_py(_SIGS, scratch, CHECKPOINTS=cps))
    lines = [f'openssl pkeyutl -verify -pubin -inkey "$S/log-key.der" -keyform DER -rawin -in {c.body} '
             f'-sigfile "$S/{c.size}.sig"' for c in lg.checkpoints]
    out.append(f'\n```sh\nS="{scratch}"\n' + "\n".join(lines) + "\n"
               'for f in "$S"/*-*.msg; do [ -e "$f" ] || continue; b="${f%.msg}"\n'
               '  openssl pkeyutl -verify -pubin -inkey "$b.der" -keyform DER -rawin -in "$f" -sigfile "$b.sig"; done\n'
               "```\n")
    out.append(f"""
### 4. Every entry is in the log, in one chain

Each `entries/<index>.json` holds the exact bytes of one log entry. Its leaf hash is SHA-256(0x00 || bytes);
the inclusion proof in `proofs/<index>.tlog-proof` (C2SP tlog-proof) leads from it to the root of the
checkpoint of size {lg.size} (RFC 9162 §2.1.3.2). The entries chain: `seq` counts from 0 and `prev` is the
leaf hash of the entry before.

""")
    out.append(_py(_ENTRIES, scratch, ENV=e.env, CHECKPOINT_BODY=proof_cp.body,
                   ENTRIES=[(x.index, x.file, x.proof) for x in m.entries]))
    if lg.consistency:
        out.append("""
### 4a. The witnessed checkpoint and the proof checkpoint are one log

A witness cosigned another checkpoint than the one the proofs reach; this RFC 9162 consistency proof shows
that the larger tree extends the smaller one (§2.1.4.2), so the log never forked from what it saw.

""")
        out.append(_py(_CONSISTENCY, scratch, CONSISTENCY=[(by_size[c.old].body, by_size[c.new].body, c.file)
                                                           for c in lg.consistency]))
    out.append("""
### 5. The time-stamps (RFC 3161 anchors)

Each anchor is a TSA's time-stamp over SHA-256 of the checkpoint's body: it proves the checkpoint, so
every entry in it, existed at its genTime. (OpenSSL judges the TSA certificate at the current time; for
one that has expired since, add `-attime` with the genTime as Unix seconds, and look for a renewal.)

""")
    ts = [f'S="{scratch}"']
    names = {a.id: a for a in lg.anchors}
    for a in lg.anchors:
        ca = roots.get(a.tsa, ())
        cafile = f" -CAfile {ca[0]}" if ca else " -CAfile <the TSA's root>"
        untrusted = "".join(f" -untrusted {p}" for p in lg.tsa_certs.get(a.tsa, ())[:1])
        if a.renews is None:
            ts.append(f"openssl ts -verify -data {by_size[a.size].body if a.size in by_size else '?'} -in {a.file}"
                      f"{cafile}{untrusted}")
        elif a.renews in names:
            old = names[a.renews]
            ts.append(f'openssl ts -reply -in {old.file} -token_out -out "$S/anchor-{old.id}.tst"')
            ts.append(f'openssl ts -verify -data "$S/anchor-{old.id}.tst" -in {a.file}{cafile}{untrusted}'
                      f"   # renews anchor {old.id} (RFC 4998 §5.2)")
        ts.append(f"openssl ts -reply -in {a.file} -text | grep -E 'Time stamp|Serial number|Policy OID'")
    out.append("```sh\n" + "\n".join(ts) + "\n```\n")
    out.append("""
### 6. The openings of the commitments

Entries hold no personal data: names, titles and references appear as salted commitments SHA-256(salt ||
value). Each `openings/<commitment>.json` opens one of them.

""")
    out.append(_py(_OPENINGS, scratch, ENTRY_FILES=entry_files, OPENINGS=list(m.openings)))
    docs = [(v.file, index_file[v.index]) for d in m.documents for v in d.versions
            if v.file is not None and v.index in index_file]
    out.append("""
### 7. The documents are the versions the log registered

Each file in `documents/` is a version of a document (the original, a party's signed PDF, the platform's
sealed PDF, a scan of a printed copy) and has the SHA-256 its registering entry names.

""")
    out.append(_py(_DOCUMENTS, scratch, DOCUMENTS=docs))
    missing = [v for d in m.documents for v in d.versions if v.file is None]
    if missing:
        out.append("\nRegistered by their SHA-256 only (the ledger does not hold these bytes; compare your own "
                   "files' SHA-256):\n\n" + "".join(f"- document {d.ordinal}, {v.kind} version, SHA-256 "
                                                 f"`{v.sha256}` (entry {v.index})\n"
                                                 for d in m.documents for v in d.versions if v.file is None))
    out.append(f"""
### 8. The seals and the status

The seals on `{REPORT}` and on the sealed documents are PAdES signatures with a signature time-stamp:
check them with `verifier verify` or any PAdES validator, against the seal root in `certs/`. The status
({e.status}) follows from replaying the events by the lifecycle rules (DESIGN.md §3): `verifier verify`
does that too.
""")
    return "".join(out)
