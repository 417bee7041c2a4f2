"""What anchoring and witnessing use of the ledger, as a protocol.

`ledger.envelopes.core.Ledger` is the one implementation. The anchoring modules name this protocol
instead of importing the ledger itself, so imports point one way only: the ledger uses anchoring,
anchoring uses storage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ledger.anchoring.tsa import LocalTsa, LocalTsaError
from ledger.clock import Clock
from ledger.config import Config
from ledger.storage.log import TileLog
from ledger.storage.sequencer import Sequencer
from verifier.tlogproof import TlogProof


class LedgerContext(Protocol):
    home: Path
    config: Config
    log: TileLog
    clock: Clock
    local_tsa: LocalTsa | None
    local_tsa_error: LocalTsaError | None

    @property
    def _seq(self) -> Sequencer:
        """The writer's sequencer (refused in a process that only reads)."""
        ...

    def prove(self, index: int, size: int | None = None) -> TlogProof:
        """A C2SP tlog-proof of entry `index` against the checkpoint of `size` (default: the latest)."""
        ...
