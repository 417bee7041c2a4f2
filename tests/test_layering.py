"""The layering of DESIGN.md §2, read from the source: portal -> ledger -> verifier, never back.

`verifier/` is the pure core that a notary or court expert runs offline: it must not reach for a
database, the network, the web framework, the ledger or the portal, and it has no clock of its own
(time comes in as an argument). `ledger/` must not depend on `portal/`. These tests parse every
module with `ast` (nothing is imported or executed) and name the file, line and offending use.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN_IN_VERIFIER = (
    "aiohttp", "sqlite3", "sqlite_utils", "ledger", "portal", "socket", "requests", "urllib.request",
    "http.client", "httpx",
)
# Reading the clock: attribute name -> the modules (or classes) it is read from.
CLOCK_READS = {
    "time": ("time",),
    "time_ns": ("time",),
    "monotonic": ("time",),
    "monotonic_ns": ("time",),
    "perf_counter": ("time",),
    "localtime": ("time",),
    "now": ("datetime", "date", "datetime.datetime"),
    "utcnow": ("datetime", "datetime.datetime"),
    "today": ("datetime", "date", "datetime.datetime", "datetime.date"),
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module a source imports, with its line: `import a.b`, `from a import b` (as a and a.b)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > 1:  # a relative import that leaves the package
                    out.append((node.lineno, "." * node.level + (node.module or "")))
                continue
            mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and _dotted(node.func) in ("__import__", "importlib.import_module"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def clock_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Every read of the wall or monotonic clock: `time.time`, `datetime.now`, `date.today`, ..."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_READS:
            owner = _dotted(node.value)
            if owner in CLOCK_READS[node.attr]:
                out.append((node.lineno, f"{owner}.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "time" and not node.level:
            out += [(node.lineno, f"time.{a.name}") for a in node.names if a.name in CLOCK_READS]
    return out


def _hits(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden) or name.startswith("..")


def _violations(package: str, forbidden: tuple[str, ...], clock: bool) -> list[str]:
    found = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT)
        found += [f"{rel}:{line} imports {name}" for line, name in imported_modules(tree) if _hits(name, forbidden)]
        if clock:
            found += [f"{rel}:{line} reads the clock ({what})" for line, what in clock_reads(tree)]
    return found


def test_the_scan_sees_every_module() -> None:
    """The scans walk the real packages, sub-packages included, so they cannot pass on an empty list."""
    verifier, ledger = _modules("verifier"), _modules("ledger")
    assert len(verifier) >= 10, verifier
    assert len(ledger) >= 12, ledger
    names = {p.name for p in verifier}
    assert {"__init__.py", "merkle.py", "note.py", "checkpoint.py", "tlogproof.py", "tiles.py", "entry.py"} <= names
    assert all(p.read_text(encoding="utf-8").strip() or p.name == "__init__.py" for p in verifier)


def test_the_detectors_catch_what_they_look_for() -> None:
    """Each kind of forbidden import and clock read is found in a sample; a clean sample passes."""
    bad = ast.parse(
        "import aiohttp\n"
        "import sqlite3 as db\n"
        "from ledger.core import Ledger\n"
        "from urllib import request\n"
        "from .. import portal\n"
        "import importlib\n"
        "m = importlib.import_module('socket')\n"
        "import time\n"
        "from datetime import datetime, date\n"
        "t = time.time()\n"
        "n = datetime.now()\n"
        "d = date.today()\n"
        "import datetime as dt\n"
        "u = datetime.datetime.now\n"
        "from time import monotonic\n"
    )
    names = {n for _, n in imported_modules(bad) if _hits(n, FORBIDDEN_IN_VERIFIER)}
    assert names == {"aiohttp", "sqlite3", "ledger.core", "ledger.core.Ledger", "urllib.request", "..", "socket"}
    assert sorted(w for _, w in clock_reads(bad)) == sorted(
        ["time.time", "datetime.now", "date.today", "datetime.datetime.now", "time.monotonic"]
    )
    good = ast.parse(
        "from datetime import datetime, timedelta\n"
        "import hashlib\n"
        "from verifier.merkle import leaf_hash\n"
        "from . import errors\n"
        "def f(now: datetime) -> datetime:\n"
        "    return now + timedelta(seconds=1)\n"
    )
    assert not [n for _, n in imported_modules(good) if _hits(n, FORBIDDEN_IN_VERIFIER)]
    assert not clock_reads(good)


def test_verifier_is_pure() -> None:
    """verifier/ imports no storage, network, web, ledger or portal module and never reads the clock."""
    assert _violations("verifier", FORBIDDEN_IN_VERIFIER, clock=True) == []


def test_ledger_does_not_depend_on_the_portal() -> None:
    """ledger/ never imports portal/: dependencies run portal -> ledger -> verifier only."""
    assert _violations("ledger", ("portal",), clock=False) == []
