"""What a signing platform reads back through the API: its envelopes, one envelope's timeline, and its
documents and parties by the platform's own references.

Every function takes the tenant of the caller's API key and only ever reads that tenant's rows. Lists
are paged with an opaque cursor (the position after the last item given), so a page is stable while
the log grows: new envelopes and events come after it.

What it does not do: decide who may read (the API checks the key and its scope), or show anything to
the public (`ledger.envelopes.public` does, masked).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from ledger.envelopes.core import Ledger
from ledger.errors import RefusedError
from verifier.entry import Entry
from verifier.lifecycle import STATUSES

PAGE_DEFAULT = 100
PAGE_MAX = 1000


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _uncursor(text: str, shape: type | tuple[type, ...]) -> Any:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        value = None
    if not isinstance(value, shape) or (isinstance(value, list) and not all(isinstance(v, str) for v in value)):
        raise RefusedError("the cursor is not one this API gave (pass next_cursor as it came)", code="bad_cursor")
    return value


def page_size(text: str | None) -> int:
    if text is None:
        return PAGE_DEFAULT
    if not text.isdigit() or not 1 <= int(text) <= PAGE_MAX:
        raise RefusedError(f"limit must be a whole number from 1 to {PAGE_MAX}", code="bad_limit")
    return int(text)


def instant(text: str, name: str) -> str:
    """An RFC 3339 time as the ledger stores times (UTC, milliseconds, `Z`), for comparison."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RefusedError(f"{name} must be an RFC 3339 time with its offset, like 2026-12-01T00:00:00Z",
                           code="bad_time")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def list_envelopes(led: Ledger, tenant: str, *, status: Sequence[str] = (), created_after: str | None = None,
                   created_before: str | None = None, cursor: str | None = None,
                   limit: int = PAGE_DEFAULT) -> dict[str, Any]:
    """The tenant's envelopes, oldest first, with the given statuses and created in [after, before)."""
    bad = sorted(set(status) - set(STATUSES))
    if bad:
        raise RefusedError(f"status must be some of {', '.join(STATUSES)} (got {', '.join(bad)})", code="bad_status")
    where, args = ["tenant = ?"], [tenant]
    if status:
        where.append(f"status IN ({', '.join('?' * len(status))})")
        args += list(status)
    if created_after is not None:
        where.append("created >= ?")
        args.append(created_after)
    if created_before is not None:
        where.append("created < ?")
        args.append(created_before)
    if cursor is not None:
        after = _uncursor(cursor, list)
        if len(after) != 2:
            raise RefusedError("the cursor is not one this API gave (pass next_cursor as it came)", code="bad_cursor")
        where.append("(created, env) > (?, ?)")
        args += after
    rows = led.log._reader().execute(
        "SELECT ref, env, status, seq, first_index, last_index, created, updated FROM envelopes"
        f" WHERE {' AND '.join(where)} ORDER BY created, env LIMIT ?", (*args, limit + 1)).fetchall()
    items = [{"envelope": r[0], "env": r[1], "status": r[2], "events": r[3], "first_index": r[4],
              "last_index": r[5], "created": r[6], "updated": r[7]} for r in rows[:limit]]
    more = len(rows) > limit
    return {"envelopes": items, "next_cursor": _cursor([items[-1]["created"], items[-1]["env"]]) if more else None}


def _names(led: Ledger, env: str) -> dict[tuple[str, int], str]:
    rows = led.log._reader().execute("SELECT kind, ref, ordinal FROM refs WHERE env = ?", (env,)).fetchall()
    return {(kind, int(n)): ref for kind, ref, n in rows}


def _entries(led: Ledger, env: str, first_seq: int, limit: int) -> Iterator[tuple[int, int, bytes]]:
    """(seq, index, entry bytes) of the envelope's events from `first_seq`, at most `limit` of them."""
    size = led.log.newest_size() or 0  # the committed log, which this process may not have taken in yet
    rows = led.log._reader().execute("SELECT seq, idx FROM envelope_entries WHERE env = ? AND seq >= ? AND idx < ?"
                                     " ORDER BY seq LIMIT ?", (env, first_seq, size, limit)).fetchall()
    for seq, idx in rows:
        yield int(seq), int(idx), led.log.entry(int(idx), within=size)


def envelope_events(led: Ledger, tenant: str, ref: str, *, cursor: str | None = None,
                    limit: int = PAGE_DEFAULT) -> dict[str, Any]:
    """The envelope's timeline, in order: each event with its log index and leaf hash, its data as the
    log holds it, and the platform's references of the party and document it names."""
    env = led.envelope(tenant, ref)["env"]
    first: int = _uncursor(cursor, int) if cursor is not None else 0
    if isinstance(first, bool) or first < 0:
        raise RefusedError("the cursor is not one this API gave (pass next_cursor as it came)", code="bad_cursor")
    names = _names(led, env)
    events: list[dict[str, Any]] = []
    last = first
    for seq, idx, raw in _entries(led, env, first, limit + 1):
        e = Entry.from_bytes(raw)
        refs = {k: names[(k, e.data[k])] for k in ("party", "document")
                if isinstance(e.data.get(k), int) and (k, e.data[k]) in names}
        last = seq if len(events) < limit else last
        events.append({"index": idx, "leaf_hash": e.leaf.hex(), "seq": seq, "type": e.type, "time": e.time,
                       "data": e.data, "refs": refs})
    more = len(events) > limit
    events = events[:limit]
    return {"envelope": ref, "events": events, "next_cursor": _cursor(last + 1) if more else None}


def _opened(led: Ledger, env: str) -> dict[str, dict[str, Any]]:
    rows = led.log._reader().execute("SELECT commitment, value FROM openings WHERE env = ?", (env,)).fetchall()
    return {c: json.loads(v) for c, v in rows}


def documents_and_parties(led: Ledger, tenant: str, ref: str) -> dict[str, Any]:
    """The envelope's documents and parties as objects named by the platform's references, with what the
    platform sent (names, contacts: from the private openings) and where each stands."""
    info = led.envelope(tenant, ref)
    env, state = info["env"], info["state"]
    names, opened = _names(led, env), _opened(led, env)
    documents: list[dict[str, Any]] = []
    parties: list[dict[str, Any]] = []
    signatures: dict[int, list[dict[str, Any]]] = {}
    seals: dict[int, list[dict[str, Any]]] = {}
    for _, idx, raw in _entries(led, env, 0, 1 << 31):
        e = Entry.from_bytes(raw)
        d = e.data
        if e.type == "document.added":
            n = d["document"]
            documents.append({"document": names.get(("document", n)), "ordinal": n, "sha256": d["sha256"],
                              "size": d["size"], "name": opened.get(d["name"], {}).get("name"),
                              "download": d["download"], "index": idx, "copies": state["copies"][n - 1],
                              "signed_versions": [], "sealed_versions": []})
        elif e.type == "party.added":
            n = d["party"]
            who = opened.get(d["identity"], {})
            p = state["parties"][n - 1]
            parties.append({"party": names.get(("party", n)), "ordinal": n, "role": d["role"], "order": d["order"],
                            "kind": d["kind"], "name": who.get("name"), "contact": who.get("contact"),
                            "authenticated": p[2], "signed": p[3], "declined": p[4], "consented_to_void": p[5],
                            "index": idx})
        elif e.type == "document.sealed":
            seals.setdefault(d["document"], []).append({"sha256": d["sha256"], "certificate": d["certificate"],
                                                        "index": idx, "time": e.time})
        elif e.type == "party.signed":
            signatures.setdefault(d["document"], []).append(
                {"party": names.get(("party", d["party"])), "sha256": d["signed_sha256"], "index": idx,
                 "time": e.time})
    for doc in documents:
        doc["signed_versions"] = signatures.get(doc["ordinal"], [])
        doc["sealed_versions"] = seals.get(doc["ordinal"], [])
    return {"envelope": ref, "documents": documents, "parties": parties}
