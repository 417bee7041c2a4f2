"""The audit report: what was checked, and one line per problem naming the table, the row and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_PROBLEMS = 200


@dataclass
class AuditReport:
    size: int = 0
    checkpoints: int = 0
    records: int = 0  # checkpoint records checked (signed time and predecessor)
    tiles: int = 0
    envelopes: int = 0
    openings: int = 0
    refs: int = 0
    unbound: int = 0  # envelopes made before tenants and references were committed in the log
    anchors: int = 0
    cosignatures: int = 0
    api_keys: int = 0
    seals: int = 0
    outside: int = 0  # checkpoints held outside the database, compared
    documents: int = 0  # stored originals checked
    unreferenced: int = 0  # stored files no document names (an upload refused after it was stored)
    problems: list[str] = field(default_factory=list)
    dropped: int = 0  # problems past MAX_PROBLEMS, counted only

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, msg: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(msg)
        else:
            self.dropped += 1

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "checkpoints": self.checkpoints, "records": self.records,
                "tiles": self.tiles, "envelopes": self.envelopes, "openings": self.openings, "refs": self.refs,
                "unbound_envelopes": self.unbound, "anchors": self.anchors, "cosignatures": self.cosignatures, "api_keys": self.api_keys,
                "seals": self.seals,
                "outside_checkpoints": self.outside, "documents": self.documents,
                "unreferenced_files": self.unreferenced, "problems": self.problems,
                "problems_not_listed": self.dropped}
