"""Witness (notary) cosignatures of checkpoints (c2sp.org/tlog-cosignature, `cosignature/v1`).

A notary keeps its own copy of the checkpoints it has seen, checks that each new one extends the last
(`GET /proof/consistency/<old>/<new>` and `verifier consistency`), and cosigns it with its witness key.
It posts the checkpoint with its cosignature line to `POST /witness/cosign`. The ledger keeps a
cosignature when the checkpoint is one this log published and the signature verifies under a key listed
in the `witnesses` setting; a checkpoint this log never published at that size, under its own name, is
refused as a possible fork and logged; a cosignature dated more than `MAX_COSIGNATURE_AHEAD` ahead of
the log's clock is refused too. `GET /checkpoint/<size>` serves a checkpoint with every
cosignature kept for it, and copy pages name the witnesses that cosigned a checkpoint holding all of an
envelope's events.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.anchoring.context import LedgerContext
from ledger.errors import NotFoundError, RefusedError
from ledger.storage.log import TileLog
from verifier.checkpoint import Checkpoint
from verifier.errors import FormatError
from verifier.note import CosignatureVerifier, cosignature_time, parse_note

log = logging.getLogger("ledger.anchoring.witness")

# How far ahead of this log's clock a cosignature's time may be. A notary signs the moment it saw the
# checkpoint, so a later time is a clock that is wrong; the kept row is append-only and shown on every
# copy page, so it is refused rather than kept for ever. Ten minutes covers clocks that drift (and the
# post's round trip) without letting a time stand that plainly did not happen yet.
MAX_COSIGNATURE_AHEAD = timedelta(minutes=10)


class _Store:
    """Sequencer work: store verified cosignatures in the writer's next transaction."""

    size = 0  # no log entries

    def __init__(self, rows: list[tuple[int, str, int, str, str]]) -> None:
        self.rows = rows

    def stage(self, tl: TileLog) -> Any:
        tl.conn.executemany("INSERT OR IGNORE INTO cosignatures(size, witness, time, line, received)"
                            " VALUES (?, ?, ?, ?, ?)", self.rows)
        names = [r[1] for r in self.rows]
        return lambda r: names


def check(ledger: LedgerContext, data: bytes | str) -> list[tuple[int, str, int, str, str]]:
    """Check a cosigned checkpoint; return the rows to store (one per known witness that signed)."""
    try:
        note = parse_note(data)
        cp = Checkpoint.from_body(note.text)
    except FormatError as e:
        raise RefusedError(f"not a cosigned checkpoint: {e}", code="bad_checkpoint") from None
    if cp.origin != ledger.log.origin:
        raise RefusedError(f"the checkpoint is for log {cp.origin!r}, not {ledger.log.origin!r}",
                           code="bad_checkpoint")
    try:
        ours = parse_note(ledger.log.checkpoint_at(cp.size)).text if cp.size <= ledger.log.size else None
    except NotFoundError:
        ours = None
    if ours != note.text:
        log.warning("a witness posted a checkpoint this log never published: size %d, root %s", cp.size,
                    cp.root.hex())
        raise RefusedError(f"this log never published that checkpoint at size {cp.size}", code="not_published",
                           status=409)
    known: dict[tuple[str, bytes], CosignatureVerifier] = {(v.name, v.key_id): v
                                                            for v in ledger.config.witness_verifiers()}
    clock = ledger.clock()
    latest = int(clock.timestamp() + MAX_COSIGNATURE_AHEAD.total_seconds())
    now = clock.isoformat(timespec="milliseconds")
    rows = []
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue  # the log's own signature, or a witness this log does not know
        if not v.verify(note.text, sig.signature):
            raise RefusedError(f"the cosignature of {v.name} does not verify", code="bad_cosignature")
        signed_at = cosignature_time(sig)
        if signed_at > latest:
            ahead = MAX_COSIGNATURE_AHEAD.total_seconds() / 60
            raise RefusedError(f"the cosignature of {v.name} is dated {_utc_text(signed_at)}, more than {ahead:g} "
                               f"minutes ahead of this log's clock ({clock.isoformat(timespec='seconds')}); "
                               f"check the notary's clock and cosign again", code="future_cosignature", status=422)
        rows.append((cp.size, v.name, signed_at, sig.line().rstrip("\n"), now))
    if not rows:
        names = ", ".join(sorted(v.name for v in known.values())) or "none configured"
        raise RefusedError(f"no cosignature by a witness this log knows (known: {names})", code="unknown_witness",
                           status=422)
    return rows


async def accept(ledger: LedgerContext, data: bytes | str) -> tuple[int, list[str]]:
    """Check and store the cosignatures of a posted checkpoint: (its size, the witnesses kept)."""
    import asyncio

    rows = await asyncio.to_thread(check, ledger, data)
    names: list[str] = await ledger._seq.asubmit(_Store(rows))
    return rows[0][0], names


def store(ledger: LedgerContext, data: bytes | str) -> list[str]:
    """`accept` for threads (the CLI): check and store, return the witnesses kept."""
    names: list[str] = ledger._seq.submit(_Store(check(ledger, data))).result()
    return names


def cosigned_checkpoint(ledger: LedgerContext, size: int) -> str:
    """The checkpoint published at `size`, with every cosignature kept for it."""
    note = ledger.log.latest_checkpoint if size == ledger.log.size else ledger.log.checkpoint_at(size)
    lines = [line for (line,) in ledger.log._reader().execute(
        "SELECT line FROM cosignatures WHERE size = ? ORDER BY witness", (size,))]
    return note + "".join(line + "\n" for line in lines)


def witnesses_after(ledger: LedgerContext, index: int) -> list[dict[str, Any]]:
    """For each witness: the first checkpoint it cosigned that holds entry `index`, and when."""
    rows = ledger.log._reader().execute(
        "SELECT c.witness, c.size, c.time FROM cosignatures c WHERE c.size = (SELECT min(size) FROM cosignatures"
        " WHERE witness = c.witness AND size > ?) ORDER BY c.witness", (index,)).fetchall()
    return [{"witness": w, "size": size, "time": _utc_text(t)} for w, size, t in rows]


def witness_status(ledger: LedgerContext) -> list[dict[str, Any]]:
    """Each configured witness: the largest checkpoint it cosigned (0 if none) and when."""
    out = []
    for v in ledger.config.witness_verifiers():
        row = ledger.log._reader().execute(
            "SELECT size, time FROM cosignatures WHERE witness = ? ORDER BY size DESC LIMIT 1", (v.name,)).fetchone()
        out.append({"witness": v.name, "size": row[0] if row else 0, "time": _utc_text(row[1]) if row else None})
    return out


def _utc_text(unix_time: int) -> str:
    """A cosignature's time, RFC 3339 UTC; a time no calendar date can show (past the year 9999, which a
    row kept before future times were refused may hold) as its Unix seconds. Never raises."""
    try:
        return datetime.fromtimestamp(unix_time, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"Unix time {unix_time}"
