"""The outcome of checking an evidence bundle or a saved copy page: a checklist and one verdict.

Each `Check` is one line: what was checked, whether it holds, the detail, and the file it is about (so
a reader, or a test, sees which file failed). A report is `ok` only when every check holds. What the
checks trusted is part of the verdict: keys and roots taken from the bundle itself prove only that the
bundle is consistent, not who made it, and the verdict says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from verifier.errors import VerificationError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    file: str | None = None

    def line(self) -> str:
        where = f" [{self.file}]" if self.file else ""
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}{where}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "file": self.file}


@dataclass(frozen=True)
class Report:
    """A checklist and what it was judged with. `caveats` are said with the verdict, whatever it is."""

    what: str  # "bundle" or "copy page"
    checks: tuple[Check, ...]
    at: datetime | None
    caveats: tuple[str, ...] = ()
    summary: str = ""  # what a passing check established, in one phrase
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def verdict(self) -> str:
        tail = "".join(f"; {c}" for c in self.caveats)
        if self.ok:
            return f"VERIFIED {self.what}: {self.summary or 'every check holds'}{tail}"
        bad = self.failures()
        first = bad[0]
        return (f"NOT VERIFIED {self.what}: {len(bad)} of {len(self.checks)} check(s) failed, the first: {first.name}: "
                f"{first.detail}" + (f" [{first.file}]" if first.file else "") + tail)

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "ok": self.ok, "verdict": self.verdict(),
                "at": self.at.isoformat() if self.at else None, "caveats": list(self.caveats),
                "checks": [c.to_json() for c in self.checks], **self.facts}

    def require_valid(self) -> Report:
        if not self.ok:
            raise VerificationError(self.verdict().removeprefix("NOT VERIFIED "), code="not_verified")
        return self


class Checklist:
    """Collects checks; a family of checks that all pass is shown as one line saying how many."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, ok: bool, detail: str, file: str | None = None) -> bool:
        self.checks.append(Check(name, ok, detail, file))
        return ok

    def fail(self, name: str, detail: str, file: str | None = None) -> bool:
        return self.add(name, False, detail, file)

    def family(self, name: str, problems: Sequence[tuple[str, str | None]], passed: str) -> bool:
        """One failing line per problem (detail, file), or one passing line."""
        for detail, file in problems:
            self.fail(name, detail, file)
        if not problems:
            self.add(name, True, passed)
        return not problems
