"""What the holder of a QR code may see: one printed copy, its envelope's status and its evidence.

`copy_view(ledger, code)` gathers the facts behind a code from the log itself (entries, openings
of the commitments the holder may see, proofs against the latest checkpoint), all read as of one
checkpoint (`TileLog.reading`: on a streaming replica, if one is configured and fit). People's names are
masked; an organisation's name, a public fact on a contract, is not. Contact details, reasons and
other tenants' data never appear. Unknown codes return None: the caller says UNKNOWN CODE without
telling whether anything similar exists.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ledger.anchoring.witness import witnesses_after
from ledger.config import LOCAL_TSA_NAME
from ledger.documents import qr
from ledger.envelopes.core import Ledger
from ledger.envelopes.seals import seal_of
from verifier.entry import Entry
from verifier.lifecycle import EnvelopeState, LifecycleError, apply

STATUS_LABEL = {
    "completed": "VALID",
    "sent": "IN PROGRESS",
    "draft": "IN PROGRESS",
    "withdrawn": "WITHDRAWN",
    "declined": "DECLINED",
    "voided": "VOID",
}


def mask_name(name: str) -> str:
    """Keep the first and last character, with a mask of fixed width between them, so that the mask
    does not tell the name's length: "Zhang San" -> "Z***n", "张小明" -> "张***明", "李四" -> "李*"."""
    name = name.strip()
    if len(name) <= 2:
        return name[:1] + "*"
    return name[0] + "***" + name[-1]


def _opening(ledger: Ledger, env: str, commitment: str | None) -> dict[str, Any]:
    if not commitment:
        return {}
    row = ledger.log._reader().execute("SELECT value FROM openings WHERE env = ? AND commitment = ?",
                                       (env, commitment)).fetchone()
    return dict(json.loads(row[0])) if row else {}  # an erased opening leaves the log intact


def copy_version(ledger: Ledger, code: str) -> tuple[int, int, int, int] | None:
    """What a copy's page depends on: the envelope's last entry, the newest anchor, the newest
    cosigned checkpoint, the log size.

    One indexed query: a page cache keyed by this never serves a stale status (a page is kept under the
    version read in the same `reading()` as the page).
    """
    with ledger.log.reading():
        row = ledger.log._reader().execute(
            "SELECT e.last_index, (SELECT coalesce(max(id), 0) FROM anchors),"
            " (SELECT coalesce(max(size), 0) FROM cosignatures) FROM copies c"
            " JOIN envelopes e ON e.env = c.env WHERE c.code = ?", (code,)).fetchone()
        return (int(row[0]), int(row[1]), int(row[2]), ledger.log.size) if row else None


def copy_view(ledger: Ledger, code_text: str, *, proofs: bool = True, min_size: int = 0) -> dict[str, Any] | None:
    """The page of a printed copy, as of one checkpoint (of `min_size` or more, if the replica has one; see
    `TileLog.reading`): its size, its checkpoint and the proofs against it are of one tree."""
    code = qr.normalise(code_text)
    if code is None:
        return None
    with ledger.log.reading(min_size):
        return _copy_view(ledger, code, proofs)


def _copy_view(ledger: Ledger, code: str, proofs: bool) -> dict[str, Any] | None:
    r = ledger.log._reader()
    row = r.execute("SELECT env, document, copy, idx FROM copies WHERE code = ?", (code,)).fetchone()
    if row is None:
        return None
    env, doc_no, copy_no, copy_idx = row
    idxs = [i for (i,) in r.execute("SELECT idx FROM envelope_entries WHERE env = ? ORDER BY seq", (env,))]
    size = ledger.log.size
    idxs = [i for i in idxs if i < size]
    raws = [ledger.log.entry(i) for i in idxs]
    entries = [Entry.from_bytes(raw) for raw in raws]
    # The state of the events in this tree, not the database's latest row: a process whose tree is a
    # moment behind must show one consistent moment (its page is checked against its events).
    replayed: EnvelopeState | None = None
    try:
        for e in entries:
            replayed = apply(replayed, e.type, e.data, e.time)
    except LifecycleError:  # recorded under earlier, looser rules: the state the writer kept of it
        (kept,) = r.execute("SELECT state FROM envelopes WHERE env = ?", (env,)).fetchone()
        replayed = EnvelopeState.from_json(json.loads(kept))
    if replayed is None or copy_idx >= size:
        return None  # not in this process's tree yet (the caller catches up first)
    status, state = replayed.status, replayed.to_json()
    parties: list[dict[str, Any]] = []
    names: dict[int, str] = {}
    title = ""
    document: dict[str, Any] = {}
    timeline: list[dict[str, Any]] = []
    used: list[dict[str, Any]] = []
    for e in entries:
        d = e.data
        if e.type == "envelope.created":
            title = _opening(ledger, env, d["title"]).get("title", "")
        elif e.type == "party.added":
            name = _opening(ledger, env, d["identity"]).get("name", "")
            kind = d.get("kind", "person")
            shown = name.strip() if kind == "organization" else mask_name(name)
            names[d["party"]] = shown if name.strip() else f"Party {d['party']}"
            p = state["parties"][d["party"] - 1]
            parties.append({"party": d["party"], "name": names[d["party"]], "kind": kind, "role": d["role"],
                            "order": d["order"], "signed": p[3], "declined": p[4], "consented": p[5]})
        elif e.type == "document.added" and d["document"] == doc_no:
            document = {"sha256": d["sha256"], "size": d["size"], "download": d["download"],
                        "name": _opening(ledger, env, d["name"]).get("name", "")}
        item = {"type": e.type, "time": e.time, "index": idxs[len(timeline)]}
        for k in ("method", "channel", "kind"):
            if k in d:
                item[k] = d[k]
        if e.type == "copy.printed":  # which copy of which document (the page marks this code's own)
            item["document"], item["copy"] = d["document"], d["copy"]
        if "party" in d:
            item["party"] = names.get(d["party"], f"Party {d['party']}")
        if e.type == "seal.used":  # which seal: the log names it by fingerprint, the registry by name
            used.append({"index": item["index"], "party": item["party"], "kind": d["kind"],
                         "fingerprint": d["seal"].lower()})
        timeline.append(item)
    if used:
        (tenant,) = r.execute("SELECT tenant FROM envelopes WHERE env = ?", (env,)).fetchone()
        for u in used:
            registered = seal_of(r, tenant, u["fingerprint"])
            u["name"] = registered["name"] if registered else None
    last = idxs[-1] if idxs else 0
    anchors = [{"tsa": tsa, "gen_time": gen, "size": sz, "local": tsa == LOCAL_TSA_NAME}
               for tsa, sz, gen in r.execute(
                   # each TSA's first anchor after the envelope's last entry (one row per TSA and size)
                   "SELECT a.tsa, a.size, a.gen_time FROM anchors a WHERE a.renews IS NULL AND a.size = (SELECT"
                   " min(size) FROM anchors WHERE tsa = a.tsa AND size > ? AND renews IS NULL) ORDER BY a.tsa",
                   (last,))]
    checkpoint = ledger.log.latest_checkpoint
    proof_list = [{"index": i, "entry": base64.b64encode(raw).decode(),
                   "proof": [base64.b64encode(h).decode() for h in ledger.log.inclusion_proof(i, size)]}
                  for i, raw in zip(idxs, raws, strict=True)] if proofs else []
    return {
        "code": code,
        "env": env,
        "document_no": doc_no,
        "code_grouped": qr.grouped(code),
        "status": status,
        "label": STATUS_LABEL.get(status, status.upper()),
        "title": title,
        "document": document,
        "copy": copy_no,
        "copy_index": copy_idx,
        "parties": parties,
        "timeline": timeline,
        "seals": used,
        "times": state.get("times", {}),
        "anchors": anchors,
        "witnesses": witnesses_after(ledger, last),
        "void_consent": status == "voided" and all(p["consented"] for p in parties if p["role"] == "signer"),
        "log": {"origin": ledger.config.origin, "size": size, "checkpoint": checkpoint,
                "verifier_key": ledger.verifier_key},
        "proofs": proof_list,
    }
