"""The checks a copy page makes in the browser (portal/pages/static/verify.js), on a saved `/v/<code>.json`.

A person who saved the JSON behind a QR code's page (or an expert given it) can check it offline with
the log key, as the page's script does with the key pinned in the QR code:

 (1) the log key is the one given; the checkpoint is signed by it (C2SP signed note, Ed25519)
 (2) the envelope head: the log's signed statement of the envelope's last event, about that
     checkpoint; signed within `max_age` of the moment given (`--at`), if one is given
 (3) every event is in the checkpoint (RFC 9162 inclusion proofs), in canonical form, and the events
     form one unbroken chain; they are all of the envelope's events, as the head says
 (4) one of them printed the copy whose code the page is about (its SHA-256)
 (5) what the page states from the events is what they say: the status (the lifecycle replayed,
     `verifier.lifecycle`), the copy number, the document's hash and size (and the prefix pinned in the
     QR code, if given), the parties' roles, order and outcome, the timeline, the times of each step

What is not in the entries (the title and names, which the log holds as commitments; the anchors and
the cosignatures the page lists) is the portal's statement, and the verdict says so. What it does not
do: look at HTML (the browser's script also checks the page it shows), read files or a clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime, timedelta
from typing import Any

from verifier.checkpoint import SignedCheckpoint, verify_checkpoint
from verifier.entry import Entry
from verifier.errors import FormatError, VerificationError
from verifier.evidence.result import Checklist, Report
from verifier.head import EnvelopeHead, verify_head
from verifier.lifecycle import EnvelopeState, LifecycleError, apply
from verifier.merkle import leaf_hash, verify_inclusion
from verifier.note import Ed25519Verifier

HEAD_MAX_AGE = timedelta(minutes=10)  # what the page allows (verify.js HEAD_MAX_AGE_MS)
MAX_EVENTS = 100_000


def _get(v: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            raise FormatError(f"the page's JSON has no {'.'.join(keys)}")
        v = v[k]
    return v


def verify_page(view: Any, key: Ed25519Verifier, *, at: datetime | None = None,
                max_age: timedelta = HEAD_MAX_AGE, code: str | None = None,
                document_pin: str | None = None) -> Report:
    """Check a saved copy page's JSON (`/v/<code>.json`) against the log key; see the module docstring."""
    cl = Checklist()
    caveats = ["the title, the parties' names, the anchors and the cosignatures the page lists are the portal's "
               "statement: the entries hold commitments to names, and time-stamps are outside them"]
    try:
        return _verify(view, key, at, max_age, code, document_pin, cl, caveats)
    except VerificationError as e:
        cl.fail("page", str(e))
        return Report("copy page", tuple(cl.checks), at, tuple(caveats))


def _verify(view: Any, key: Ed25519Verifier, at: datetime | None, max_age: timedelta, code: str | None,
            pin: str | None, cl: Checklist, caveats: list[str]) -> Report:
    # (1) the key, the checkpoint
    shown_key = _get(view, "log", "verifier_key")
    if shown_key != key.to_string():
        cl.fail("log key", f"the page names the log key {shown_key!r}, not the one given")
    cp: SignedCheckpoint = verify_checkpoint(str(_get(view, "log", "checkpoint")), key)
    size = cp.checkpoint.size
    cl.add("checkpoint", size == _get(view, "log", "size"), f"signed by {key.name}, size {size}")
    # (2) the head
    head: EnvelopeHead = verify_head(str(_get(view, "log", "head")), key, now=at, max_age=max_age, size=size)
    cl.add("envelope head", True, f"signed at {head.time}, about size {size}"
           + (f", within {max_age} of {at.isoformat()}" if at else ""))
    if at is None:
        caveats.append("the envelope head's age was not judged: give --at with the time the page was saved")
    # (3) proofs and chain
    entries, indexes = _entries(view, cp, cl)
    if entries:
        last = entries[-1]
        same = (head.env == last.env and head.events == len(entries) and head.last_index == indexes[-1]
                and head.last_leaf == last.leaf)
        cl.add("all events", same, f"the head says {head.events} event(s), the last at index {head.last_index}; "
               f"the page has {len(entries)}, the last at index {indexes[-1]}")
    # (4) this copy
    if code is None:
        code = str(_get(view, "code"))
        caveats.append("the copy's code was taken from the file (give --code with the code printed on your copy)")
    mine = hashlib.sha256(code.encode()).hexdigest()
    printed = [e for e in entries if e.type == "copy.printed" and e.data.get("code") == mine]
    copy = printed[0].data if printed else None
    cl.add("this copy", copy is not None and copy.get("copy") == view.get("copy")
           and copy.get("document") == view.get("document_no"),
           f"copy {copy.get('copy')} of document {copy.get('document')} was printed with code {code}" if copy
           else f"no event printed a copy with code {code}")
    # (5) what the page states
    _statements(view, entries, indexes, copy, pin, cl)
    return Report("copy page", tuple(cl.checks), at, tuple(caveats),
                  f"status {view.get('status')!r}, {len(entries)} events in {key.name} at size {size}")


def _entries(view: Any, cp: SignedCheckpoint, cl: Checklist) -> tuple[list[Entry], list[int]]:
    proofs = _get(view, "proofs")
    if not isinstance(proofs, list) or not 0 < len(proofs) <= MAX_EVENTS:
        raise FormatError("the page's JSON has no proofs")
    entries: list[Entry] = []
    indexes: list[int] = []
    size, root = cp.checkpoint.size, cp.checkpoint.root
    for n, item in enumerate(proofs):
        try:
            raw = base64.b64decode(_get(item, "entry"), validate=True)
            hashes = [base64.b64decode(h, validate=True) for h in _get(item, "proof")]
            index = _get(item, "index")
            if not isinstance(index, int) or isinstance(index, bool):
                raise FormatError("an index is no integer")
            verify_inclusion(index, size, leaf_hash(raw), hashes, root)
            e = Entry.from_bytes(raw)
        except (binascii.Error, ValueError, TypeError, VerificationError) as err:
            cl.fail("events", f"event {n + 1}: {err}")
            return [], []
        prev = entries[-1] if entries else None
        if e.seq != n or (prev is not None and (e.env != prev.env or e.prev != prev.leaf.hex())):
            cl.fail("events", f"event {n + 1} (index {index}) breaks the envelope's chain")
            return [], []
        entries.append(e)
        indexes.append(index)
    cl.add("events", True, f"{len(entries)} events in the checkpoint (RFC 9162 inclusion proofs), one unbroken chain")
    return entries, indexes


def _statements(view: Any, entries: list[Entry], indexes: list[int], copy: dict[str, Any] | None, pin: str | None,
                cl: Checklist) -> None:
    state: EnvelopeState | None = None
    try:
        for e in entries:
            state = apply(state, e.type, e.data, e.time)
    except LifecycleError as err:
        cl.fail("status", f"the events do not replay: {err}")
        return
    if state is None:
        return
    cl.add("status", state.status == view.get("status"),
           f"the events replay to {state.status!r}; the page says {view.get('status')!r}")
    docs = {e.data["document"]: e.data for e in entries if e.type == "document.added"}
    doc = docs.get(copy.get("document")) if copy else None
    shown = view.get("document") if isinstance(view.get("document"), dict) else {}
    ok = doc is not None and shown.get("sha256") == doc["sha256"] and shown.get("size") == doc["size"]
    detail = (f"SHA-256 {doc['sha256']}, {doc['size']} bytes" if doc else "the copy's document is not among the events")
    if ok and pin is not None and doc is not None:
        ok = doc["sha256"].startswith(pin.lower())
        detail += f"; {'starts with' if ok else 'does NOT start with'} the pinned prefix {pin}"
    cl.add("document", ok, detail + ("" if ok else f"; the page says {shown.get('sha256')!r}, {shown.get('size')!r}"))
    parties = view.get("parties") if isinstance(view.get("parties"), list) else []
    want = [(p.role, p.order, p.signed, p.declined) for p in state.parties]
    got = [(p.get("role"), p.get("order"), p.get("signed"), p.get("declined")) for p in parties
           if isinstance(p, dict)]
    cl.add("parties", want == got, f"{len(want)} parties with the roles, signing order and outcome the events give"
           if want == got else f"the page's parties {got} are not the events' {want}")
    rows = view.get("timeline") if isinstance(view.get("timeline"), list) else []
    want_rows = [(e.type, e.time, i) for e, i in zip(entries, indexes, strict=True)]
    got_rows = [(r.get("type"), r.get("time"), r.get("index")) for r in rows if isinstance(r, dict)]
    bad = next((n for n, (a, b) in enumerate(zip(want_rows, got_rows, strict=False)) if a != b), None)
    if bad is None and len(want_rows) != len(got_rows):
        bad = min(len(want_rows), len(got_rows))
    cl.add("timeline", bad is None, f"{len(want_rows)} rows: each event's type, time and index" if bad is None
           else f"row {bad + 1} of the timeline is not the event's")
    cl.add("times", view.get("times") == state.times, "the time of each step (sent, completed, voided ...) is the "
           "event's" if view.get("times") == state.times else f"the page's times {view.get('times')} are not the "
           f"events' {state.times}")
