"""`ledger import`: bulk JSON Lines, in atomic requests of `batch` events, with a progress bar.

Requests are sent one after another, so the import stops at the first refused line: every request
before it is committed, nothing from it or after it is written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO, Any

from tqdm import tqdm

from ledger.envelopes.events import parse_json_lines
from ledger.errors import RefusedError


def _batches(f: IO[bytes], batch: int) -> Iterator[list[tuple[int, bytes]]]:
    buf: list[tuple[int, bytes]] = []
    for n, line in enumerate(f, 1):
        if line.strip():
            buf.append((n, line))
        if len(buf) >= batch:
            yield buf
            buf = []
    if buf:
        yield buf


def import_json_lines(ledger: Any, name: str, tenant: str, batch: int) -> int:
    if batch < 1:
        raise RefusedError("--batch must be at least 1", code="bad_argument")
    try:
        f = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as e:  # missing, a folder, not readable: the input, not the ledger
        raise RefusedError(f"cannot read {name}: {e.strerror or e}", code="bad_input") from None
    done = 0
    try:
        with tqdm(unit="event", file=sys.stderr, disable=None) as bar:
            for lines in _batches(f, batch):
                events = [parse_json_lines([line], n)[0] for n, line in lines]
                try:
                    ledger.append(tenant, events)
                except RefusedError as e:
                    line = lines[e.event or 0][0]
                    raise RefusedError(
                        f"line {line}: {e} (imported {done} events before line {lines[0][0]}; nothing from "
                        f"line {lines[0][0]} on was written)", code=e.code, status=e.status) from None
                done += len(events)
                bar.update(len(events))
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    print(f"imported {done} events", file=sys.stderr)
    return done
