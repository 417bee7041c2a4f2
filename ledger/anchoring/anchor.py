"""Anchoring: every checkpoint time-stamped by every configured TSA, stored append-only (DESIGN.md §5).

What it does:
- `Anchorer.run()` is the anchoring loop, an asyncio task in the server. Every `anchor_interval_s`
  it asks each TSA (`ledger.anchoring.tsa_client`) to time-stamp the body of the *latest* checkpoint if that
  TSA has not anchored it yet. Anchoring the latest checkpoint covers every earlier entry: a
  checkpoint of size n commits to entries 0..n-1, and an inclusion proof ties any of them to it. So
  after an outage, one anchor of the latest checkpoint leaves nothing unanchored.
- A failing TSA is retried with exponential backoff (from min(1 s, interval), doubling, capped at
  `anchor_backoff_max_s`); its last success, last error and consecutive failures are kept in
  `tsa_status` for `ledger status`. Keep the cap at or below the interval and a TSA that comes back
  anchors within one interval.
- Appends never wait for a TSA: the TSA call runs in the loop, outside the sequencer; only the final
  row insert is a (zero-entry) work item for the one writer.
- `Anchorer.renew()` re-time-stamps anchors whose TSA certificate expires within a window: the new
  token's imprint is SHA-256 of the old token (RFC 4998 §5.2), stored with `renews` = the old id.
- `anchored_proof()` assembles the evidence of one entry's time: the earliest anchored checkpoint
  that contains it, the inclusion proof to it and its tokens (`verifier.anchored`).

What it does not do: talk to a TSA or check tokens (`ledger.anchoring.tsa_client`), serve HTTP, or group
renewals into hash trees (each anchor is renewed by its own token).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from ledger.anchoring.context import LedgerContext
from ledger.anchoring.tsa_client import HttpTsaClient, LocalTsaClient, Stamp, TsaClient, format_time
from ledger.config import LOCAL_TSA_NAME
from ledger.errors import LedgerError, NotFoundError
from ledger.storage.log import AppendResult, TileLog
from ledger.storage.sequencer import Finish
from verifier.anchored import AnchoredBundle, AnchorRecord
from verifier.errors import VerificationError
from verifier.note import parse_note

log = logging.getLogger("ledger.anchoring.anchor")
RENEW_EVERY_S = 24 * 3600.0
RENEW_BATCH = 1000


def expiry_text(moment: datetime) -> str:
    """Certificate expiries as sortable text (certificates have whole seconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TsaHealth:
    name: str
    failures: int = 0
    anchored_size: int = 0
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    next_due: float = 0.0  # time.monotonic()
    task: asyncio.Task[Outcome] | None = None


@dataclass(frozen=True)
class Outcome:
    tsa: str
    ok: bool
    size: int
    detail: str
    anchor_id: int | None = None


class _Store:
    """Insert anchor rows and TSA health: a zero-entry work item for the sequencer."""

    size = 0

    def __init__(self, rows: Sequence[tuple[Any, ...]], health: TsaHealth | None) -> None:
        self.rows, self.health = rows, health

    def stage(self, log: TileLog) -> Finish:
        # A process that anchored a checkpoint while another process made newer ones stores a true
        # anchor of an older checkpoint: kept, but the health never goes back to a smaller size.
        ids: list[int | None] = []
        for row in self.rows:
            # ids run on without a gap (the audit checks): the next id given in the write transaction
            got = log.conn.execute(
                "INSERT INTO anchors(id, size, tsa, gen_time, serial, token, created, renews, cert_expires)"
                " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM anchors), ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING id", row).fetchone()
            ids.append(int(got[0]) if got else None)
        h = self.health
        if h is not None:
            log.conn.execute(
                "INSERT INTO tsa_status(tsa, last_success, last_error, last_error_at, failures, anchored_size)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(tsa) DO UPDATE SET last_success = excluded.last_success,"
                " last_error = excluded.last_error, last_error_at = excluded.last_error_at,"
                " failures = excluded.failures, anchored_size = CASE WHEN excluded.anchored_size > tsa_status.anchored_size"
                " THEN excluded.anchored_size ELSE tsa_status.anchored_size END",
                (h.name, h.last_success, h.last_error, h.last_error_at, h.failures, h.anchored_size))

        def finish(_: AppendResult) -> list[int | None]:
            return ids

        return finish


def clients_for(ledger: LedgerContext, session: aiohttp.ClientSession) -> list[TsaClient]:
    """The local TSA (unless `local_tsa = false`) and every configured `[[tsa]]`."""
    clients: list[TsaClient] = []
    if ledger.local_tsa is not None:
        clients.append(LocalTsaClient(ledger.local_tsa, ledger.clock))
    clients += [HttpTsaClient(c, ledger.home, session, ledger.clock) for c in ledger.config.tsa]
    return clients


class Anchorer:
    """Anchors checkpoints with a set of TSAs: in a loop (`run`) or on demand (`anchor_now`, `renew`)."""

    def __init__(self, ledger: LedgerContext, clients: Sequence[TsaClient], *, interval_s: float | None = None,
                 backoff_max_s: float | None = None) -> None:
        self.ledger, self.clients = ledger, {c.name: c for c in clients}
        self.interval = interval_s if interval_s is not None else ledger.config.anchor_interval_s
        self.backoff_max = backoff_max_s if backoff_max_s is not None else ledger.config.anchor_backoff_max_s
        self.health = {name: TsaHealth(name) for name in self.clients}
        self._wake = asyncio.Event()
        self._renewing: asyncio.Task[list[Outcome]] | None = None
        self._load_health()

    def _load_health(self) -> None:
        r = self.ledger.log._reader()
        for name, h in self.health.items():
            row = r.execute("SELECT last_success, last_error, last_error_at, failures FROM tsa_status WHERE tsa = ?",
                            (name,)).fetchone()
            if row is not None:
                h.last_success, h.last_error, h.last_error_at, h.failures = row
            (size,) = r.execute("SELECT max(size) FROM anchors WHERE tsa = ? AND renews IS NULL", (name,)).fetchone()
            h.anchored_size = size or 0

    # ---- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Anchor until cancelled. A TSA is due when its interval or backoff has passed and the
        latest checkpoint is one it has not anchored."""
        poll = min(self.interval, 1.0)
        next_renewal = time.monotonic()
        log.info("anchoring every %g s with %s", self.interval,
                 ", ".join(f"{c.name} ({c.description})" for c in self.clients.values()))
        try:
            while True:
                self._wake.clear()
                now = time.monotonic()
                size = self.ledger.log.size
                for h in self.health.values():
                    if h.task is None and now >= h.next_due and size > h.anchored_size:
                        h.task = asyncio.create_task(self._attempt(h))
                        h.task.add_done_callback(lambda _: self._wake.set())
                if now >= next_renewal and (self._renewing is None or self._renewing.done()):
                    next_renewal = now + RENEW_EVERY_S
                    self._renewing = asyncio.create_task(self._renew_logged())
                waits = [h.next_due - now for h in self.health.values() if h.task is None and h.next_due > now]
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives as the wait ends, and this loop would then never stop
                try:
                    async with asyncio.timeout(max(0.005, min([poll, *waits]))):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            await self._cancel_all()

    async def _cancel_all(self) -> None:
        tasks = [t for t in [*(h.task for h in self.health.values()), self._renewing] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def anchor_now(self) -> list[Outcome]:
        """One pass with every TSA now, ignoring backoff; waits for the results."""
        size = self.ledger.log.size
        tasks = []
        for h in self.health.values():
            if h.task is None:
                if size <= h.anchored_size:
                    continue
                h.task = asyncio.create_task(self._attempt(h))
            tasks.append(h.task)
        return list(await asyncio.gather(*tasks))

    async def _attempt(self, h: TsaHealth) -> Outcome:
        size = self.ledger.log.size
        try:
            body = parse_note(self.ledger.log.latest_checkpoint).text.encode()
            size = int(body.split(b"\n")[1])
            stamp = await self.clients[h.name].stamp(body)
            done = replace(h, failures=0, anchored_size=size, last_success=format_time(self.ledger.clock()),
                           task=None)
            ids = await self._store([self._row(stamp, size, None)], done)
            h.failures, h.anchored_size, h.last_success = done.failures, size, done.last_success
            h.next_due = time.monotonic() + self.interval
            log.info("anchored checkpoint %d with TSA %s (genTime %s, serial %d)", size, h.name,
                     format_time(stamp.gen_time), stamp.serial)
            return Outcome(h.name, True, size, f"anchored size {size}, genTime {format_time(stamp.gen_time)}, "
                           f"serial {stamp.serial}", ids[0])
        except Exception as e:  # any failure is the TSA's (or the store's) and is retried; the loop lives on
            if not isinstance(e, LedgerError | VerificationError):
                log.exception("unexpected error while anchoring with TSA %s", h.name)
            return await self._failed(h, size, e)
        finally:
            h.task = None

    async def _failed(self, h: TsaHealth, size: int, error: Exception) -> Outcome:
        h.failures += 1
        code = getattr(error, "code", None)
        kind = f"{type(error).__name__} ({code})" if isinstance(code, str) else type(error).__name__
        h.last_error, h.last_error_at = f"{kind}: {error}", format_time(self.ledger.clock())
        delay = min(self.backoff_max, min(1.0, self.interval) * 2 ** min(h.failures - 1, 32))
        h.next_due = time.monotonic() + delay
        log.warning("TSA %s failed (%d in a row), retrying in %.1f s: %s", h.name, h.failures, delay, error)
        try:
            await self._store([], h)
        except LedgerError as e:
            log.warning("could not record the health of TSA %s: %s", h.name, e)
        return Outcome(h.name, False, size, h.last_error)

    def _row(self, stamp: Stamp, size: int, renews: int | None) -> tuple[Any, ...]:
        return (size, stamp.tsa, format_time(stamp.gen_time), str(stamp.serial), stamp.token,
                format_time(self.ledger.clock()), renews, expiry_text(stamp.cert_expires))

    async def _store(self, rows: Sequence[tuple[Any, ...]], h: TsaHealth | None) -> list[int | None]:
        ids: list[int | None] = await self.ledger._seq.asubmit(_Store(rows, h))
        return ids

    # ---- renewal -----------------------------------------------------------------------------

    async def renew(self, within: timedelta) -> list[Outcome]:
        """Renew, with every TSA, each not-yet-renewed anchor whose certificate expires within `within`."""
        deadline = expiry_text(self.ledger.clock() + within)
        rows = self.ledger.log._reader().execute(
            "SELECT id, size, token, cert_expires FROM anchors a WHERE cert_expires < ? AND NOT EXISTS"
            " (SELECT 1 FROM anchors r WHERE r.renews = a.id) ORDER BY id LIMIT ?", (deadline, RENEW_BATCH)).fetchall()
        out = []
        for ident, size, token, expires in rows:
            for client in self.clients.values():
                out.append(await self._renew_one(client, ident, size, bytes(token), expires))
        return out

    async def _renew_one(self, client: TsaClient, ident: int, size: int, token: bytes, expires: str) -> Outcome:
        try:
            stamp = await client.stamp(token)
            if expiry_text(stamp.cert_expires) <= expires:
                return Outcome(client.name, False, size, f"cannot renew anchor #{ident} with TSA {client.name}: "
                               f"its certificate expires {expiry_text(stamp.cert_expires)}, no later than the "
                               f"anchor's ({expires}); configure a TSA with a longer-lived certificate")
            (new_id,) = await self._store([self._row(stamp, size, ident)], None)
        except (LedgerError, VerificationError) as e:
            return Outcome(client.name, False, size, f"renewing anchor #{ident}: {type(e).__name__}: {e}")
        log.info("renewed anchor #%d (expires %s) with TSA %s as #%s", ident, expires, client.name, new_id)
        return Outcome(client.name, True, size, f"renewed anchor #{ident} as #{new_id}", new_id)

    async def _renew_logged(self) -> list[Outcome]:
        try:
            done = await self.renew(timedelta(days=self.ledger.config.renew_within_days))
        except Exception as e:  # logged and retried the next day; the loop lives on
            log.exception("renewal pass failed: %s", e)
            return []
        for o in done:
            (log.info if o.ok else log.warning)("renewal: %s", o.detail)
        return done


def anchored_proof(ledger: LedgerContext, index: int, tsa: str | None = None) -> AnchoredBundle:
    """The earliest anchored checkpoint holding entry `index` (of TSA `tsa`, if given), the inclusion
    proof to it, and every anchor and renewal of that checkpoint."""
    if not 0 <= index < ledger.log.size:
        raise NotFoundError(f"entry {index} is not in the log (size {ledger.log.size})", code="bad_index")
    r = ledger.log._reader()
    where = " AND tsa = ?" if tsa else ""
    (size,) = r.execute(f"SELECT min(size) FROM anchors WHERE renews IS NULL AND size > ?{where}",
                        (index, tsa) if tsa else (index,)).fetchone()
    if size is None:
        (latest,) = r.execute("SELECT max(size) FROM anchors WHERE renews IS NULL").fetchone()
        by = f" by TSA {tsa!r}" if tsa else ""
        raise NotFoundError(f"entry {index} is not anchored{by} yet (largest anchored tree size: {latest or 0}); "
                            "run `ledger anchor`, or wait for the anchoring loop of `ledger serve`",
                            code="not_anchored")
    rows = r.execute("SELECT id, tsa, token, renews, gen_time, serial FROM anchors WHERE size = ? ORDER BY id",
                     (size,)).fetchall()
    records = tuple(AnchorRecord(i, t, bytes(tok), ren, g, s) for i, t, tok, ren, g, s in rows)
    return AnchoredBundle(index, ledger.log.entry(index), ledger.prove(index, size).to_text(), records)


def anchoring_status(ledger: LedgerContext) -> list[dict[str, Any]]:
    """Per TSA (configured or seen): kind, health and how far it has anchored, for `ledger status`."""
    r = ledger.log._reader()
    configured = ledger.config.tsa_names
    stats = {t: (n, s) for t, n, s in r.execute(
        "SELECT tsa, count(*), max(CASE WHEN renews IS NULL THEN size END) FROM anchors GROUP BY tsa")}
    health = {row[0]: row[1:] for row in r.execute(
        "SELECT tsa, last_success, last_error, last_error_at, failures FROM tsa_status")}
    urls = {t.name: t.url for t in ledger.config.tsa}
    out = []
    for name in dict.fromkeys(configured + sorted(set(stats) | set(health))):
        count, size = stats.get(name, (0, None))
        success, error, error_at, failures = health.get(name, (None, None, None, 0))
        if name == LOCAL_TSA_NAME and ledger.local_tsa_error is not None:
            error, failures = f"unavailable: {ledger.local_tsa_error}", max(failures, 1)
        kind = ("local TSA, not accredited" if name == LOCAL_TSA_NAME else
                f"TSA at {urls[name]}" if name in urls else "no longer configured")
        out.append({"tsa": name, "kind": kind, "configured": name in configured, "anchors": count,
                    "anchored_size": size or 0, "unanchored": ledger.log.size - (size or 0),
                    "last_success": success, "last_error": error, "last_error_at": error_at,
                    "consecutive_failures": failures})
    return out
