"""Pushing each new checkpoint to the witnesses that have an address (C2SP tlog-witness `add-checkpoint`).

What it does:
- `Pusher.run()` is an asyncio task of the writer, beside the sequencer, never in it. For each witness
  named in `witness_urls` it remembers the size of the latest checkpoint the witness cosigned (at start:
  the largest this log kept a cosignature of), and when the log has a newer checkpoint it POSTs
  `<url>/add-checkpoint`: `old <size>`, the consistency proof from that size, a blank line, the latest
  checkpoint (c2sp.org/tlog-witness). A 409 `text/x.tlog.size` says which size the witness holds: it
  is taken and the push retried once. The cosignature line(s) of a 200 are kept through the path
  notaries' posts take (`witness.accept`: checked against the `witnesses` keys, stored by the sequencer).
- Only the latest checkpoint is ever pushed: it covers every earlier one, so a witness that was down
  or slow catches up with one push. A failing witness is retried with exponential backoff (from
  `BACKOFF_MIN_S`, doubling, capped at `BACKOFF_MAX_S`), each request within `TIMEOUT_S`. Appends
  never wait for a witness: only storing a cosignature is a (zero-entry) work item of the one writer.
- `latest_cosigned` and `anchors_at` read what the notaries' tools ask the portal for
  (`GET /checkpoint/cosigned`, `GET /anchors/<size>`).

What it does not do: verify the witness's cosignature itself (`witness.check` does, on the way in), push to
witnesses without an address (they post to `POST /witness/cosign`), or push older checkpoints.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from ledger.anchoring import witness
from ledger.anchoring.context import LedgerContext
from ledger.errors import LedgerError, NotFoundError
from verifier.anchored import AnchorRecord
from verifier.checkpoint import Checkpoint
from verifier.errors import VerificationError
from verifier.note import parse_note

log = logging.getLogger("ledger.anchoring.push")

TIMEOUT_S = 10.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
POLL_S = 0.2
MAX_ANSWER_BYTES = 1 << 16
SIZE_TYPE = "text/x.tlog.size"


class PushError(LedgerError):
    """A witness did not cosign: unreachable, too slow, or it refused the checkpoint."""

    code = "witness_push_failed"


@dataclass
class WitnessTarget:
    name: str
    url: str
    size: int  # the size of the latest checkpoint the witness is believed to hold
    cosigned: int = 0  # the largest size whose cosignature by it this log kept
    failures: int = 0
    next_due: float = 0.0  # time.monotonic()
    last_error: str | None = None
    task: asyncio.Task[None] | None = None


def _kept_size(ledger: LedgerContext, name: str) -> int:
    row = ledger.log._reader().execute("SELECT max(size) FROM cosignatures WHERE witness = ?", (name,)).fetchone()
    return int(row[0] or 0)


class Pusher:
    """Pushes the latest checkpoint to each witness with an address, in a loop (`run`) or once (`push`)."""

    def __init__(self, ledger: LedgerContext, session: aiohttp.ClientSession, *, timeout_s: float | None = None,
                 backoff_max_s: float | None = None) -> None:
        self.ledger, self.session = ledger, session
        self.timeout = timeout_s if timeout_s is not None else TIMEOUT_S
        self.backoff_max = backoff_max_s if backoff_max_s is not None else BACKOFF_MAX_S
        self.targets: list[WitnessTarget] = []
        for name, url in ledger.config.witness_urls:
            kept = _kept_size(ledger, name)
            self.targets.append(WitnessTarget(name, url.rstrip("/"), kept, kept))

    async def run(self) -> None:
        """Push until cancelled: a witness is due when the log has a checkpoint newer than the one it
        cosigned, and its backoff has passed."""
        log.info("pushing checkpoints to %s", ", ".join(f"{t.name} ({t.url})" for t in self.targets))
        try:
            while True:
                now, size = time.monotonic(), self.ledger.log.size
                for t in self.targets:
                    if t.task is None and now >= t.next_due and size > t.cosigned:
                        t.task = asyncio.create_task(self._attempt(t), name=f"push to {t.name}")
                await asyncio.sleep(POLL_S)
        finally:
            tasks = [t.task for t in self.targets if t.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _attempt(self, t: WitnessTarget) -> None:
        try:
            size = await self.push(t)
            t.failures, t.last_error, t.next_due = 0, None, 0.0
            log.info("witness %s cosigned checkpoint %d", t.name, size)
        except Exception as e:  # any failure is the witness's (or the store's) and is retried; the loop lives on
            if not isinstance(e, LedgerError | VerificationError):
                log.exception("unexpected error while pushing to witness %s", t.name)
            t.failures += 1
            t.last_error = f"{type(e).__name__}: {e}"
            delay = min(self.backoff_max, BACKOFF_MIN_S * 2 ** min(t.failures - 1, 32))
            t.next_due = time.monotonic() + delay
            log.warning("witness %s did not cosign (%d in a row), retrying in %.1f s: %s", t.name, t.failures,
                        delay, e)
        finally:
            t.task = None

    async def push(self, t: WitnessTarget) -> int:
        """Push the latest checkpoint to `t` (once more after a 409 that names the witness's size); keep its
        cosignature. Returns the size cosigned.

        Raises:
            PushError: the witness is unreachable, too slow, or refused.
            RefusedError: its cosignature is not one this log keeps (`witness.check`).
        """
        note = self.ledger.log.latest_checkpoint
        size = Checkpoint.from_body(parse_note(note).text).size
        for attempt in (1, 2):
            if t.size > size:
                raise PushError(f"witness {t.name} holds a checkpoint of size {t.size}, larger than this log's "
                                f"latest ({size}): this log was rolled back, or forked")
            status, kind, answer = await self._post(t, size, note)
            if status == 200:
                await witness.accept(self.ledger, note + answer)
                t.size = t.cosigned = size
                return size
            if status == 409 and kind == SIZE_TYPE and attempt == 1:
                held = answer.strip()
                if not (held.isascii() and held.isdigit()):
                    raise PushError(f"witness {t.name} answered 409 with a malformed size {held[:40]!r}")
                t.size = int(held)
                continue
            raise PushError(f"witness {t.name} answered {status}: {answer.strip()[:300]}")
        raise AssertionError("unreachable")

    async def _post(self, t: WitnessTarget, size: int, note: str) -> tuple[int, str, str]:
        old = t.size
        proof = await asyncio.to_thread(self.ledger.log.consistency_proof, old, size) if 0 < old < size else []
        body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note
        try:
            async with self.session.post(f"{t.url}/add-checkpoint", data=body.encode(),
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:
                raw = await r.content.read(MAX_ANSWER_BYTES + 1)
                if len(raw) > MAX_ANSWER_BYTES:
                    raise PushError(f"witness {t.name} answered more than {MAX_ANSWER_BYTES} bytes")
                return r.status, r.content_type, raw.decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PushError(f"cannot reach witness {t.name} at {t.url}: {type(e).__name__}: {e}") from None


async def pushing(ledger: LedgerContext) -> AsyncIterator[None]:
    """Run the pusher, with one HTTP session, for as long as the application runs (an aiohttp cleanup
    context); nothing when no witness has an address."""
    if not ledger.config.witness_urls:
        yield
        return
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(Pusher(ledger, session).run(), name="witness push")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---- what the notaries' tools read ------------------------------------------------------------------------


def latest_cosigned(ledger: LedgerContext) -> str:
    """The latest checkpoint that has a witness's cosignature, with every cosignature kept for it."""
    (size,) = ledger.log._reader().execute("SELECT max(size) FROM cosignatures").fetchone()
    if size is None:
        raise NotFoundError("no witness has cosigned a checkpoint of this log yet", code="not_cosigned")
    return witness.cosigned_checkpoint(ledger, int(size))


def anchors_at(ledger: LedgerContext, size: int) -> list[AnchorRecord]:
    """The anchors (and their renewals) kept for the checkpoint of `size`, oldest first."""
    rows = ledger.log._reader().execute(
        "SELECT id, tsa, token, renews, gen_time, serial FROM anchors WHERE size = ? ORDER BY id", (size,)).fetchall()
    return [AnchorRecord(i, tsa, bytes(token), renews, g, s) for i, tsa, token, renews, g, s in rows]
