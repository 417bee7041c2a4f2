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
        "from ledger.envelopes.core import Ledger\n"
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
    assert names == {"aiohttp", "sqlite3", "ledger.envelopes.core", "ledger.envelopes.core.Ledger", "urllib.request", "..", "socket"}
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


# ---- the import graph of the three packages: layers that only point down, and no circle ---------------

# From the bottom up. A module may import modules of its own layer or of a lower one, never of a higher
# one; within a layer the graph must have no circle, so that inside a package the arrows run from the
# orchestrating module to the ones it uses. A module's layer is that of the longest prefix naming it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("verifier",),
    ("notary",),
    ("ledger.errors", "ledger.clock", "ledger.config"),
    ("ledger.storage",),
    ("ledger.access",),
    ("ledger.anchoring",),
    ("ledger.documents",),
    ("ledger.envelopes",),
    ("ledger.audit",),
    ("ledger.evidence",),
    ("ledger.cli",),
    ("portal.keys", "portal.body", "portal.ratelimit", "portal.caching", "portal.pdfcheck"),
    ("portal.pages", "portal.api", "portal.tlog"),
    ("portal.app",),
    ("portal.serving",),
    ("portal.cli",),
)
PACKAGES = ("verifier", "notary", "ledger", "portal")
MAX_MODULES_IN_A_FOLDER = 13  # "about a dozen": a folder that outgrows it gets sub-packages


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in _modules(pkg)}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module an imported name is (or is in): `ledger.storage.log.TileLog` -> `ledger.storage.log`."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(known: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {project module it imports: line}, every import counted: at the top, inside a function,
    under `if TYPE_CHECKING`, relative or absolute."""
    graph: dict[str, dict[str, int]] = {}
    for mod, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" for a in node.names] or [base]
            for n in names:
                target = _resolve(n, known)
                if target is not None and target != mod:
                    edges.setdefault(target, node.lineno)
        graph[mod] = edges
    return graph


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), i)
    return None if best is None else best[1]


def upward_imports(graph: dict[str, dict[str, int]], known: dict[str, Path]) -> list[str]:
    found = []
    for mod, edges in graph.items():
        for target, line in edges.items():
            lo, lt = layer_of(mod), layer_of(target)
            if lo is not None and lt is not None and lt > lo:
                found.append(f"{known[mod].relative_to(ROOT)}:{line} imports {target}, a layer above it")
    return sorted(found)


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One circle of imports (`a -> b -> ... -> a`), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph.get(m, {})):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (c := visit(t)) is not None:
                return c
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)) is not None:
            return c
    return None


def test_every_module_has_a_layer() -> None:
    """A new module cannot slip past the layer check: each one falls in a layer of LAYERS."""
    known = all_modules()
    assert len(known) >= 60, sorted(known)
    unplaced = [m for m in known if layer_of(m) is None and m not in PACKAGES]
    assert unplaced == []


def test_no_module_imports_a_layer_above_it() -> None:
    """portal -> ledger -> verifier, and inside ledger/ and portal/ from the orchestrating layers down."""
    known = all_modules()
    assert upward_imports(import_graph(known), known) == []


def test_no_circle_of_imports() -> None:
    """No module imports itself through others: no `core -> witness -> core`, not even for type checking
    or inside a function."""
    assert find_cycle(import_graph(all_modules())) is None


def test_the_graph_checks_catch_what_they_look_for() -> None:
    """The walk counts imports inside functions and under TYPE_CHECKING, and relative ones; the checks
    name an upward import and a circle."""
    known = {"ledger.storage.log": ROOT / "x.py", "ledger.envelopes.core": ROOT / "y.py",
             "ledger.anchoring.witness": ROOT / "z.py"}
    graph = {"ledger.storage.log": {"ledger.envelopes.core": 3}, "ledger.envelopes.core": {"ledger.anchoring.witness": 5},
             "ledger.anchoring.witness": {"ledger.envelopes.core": 7}}
    assert upward_imports(graph, known) == ["x.py:3 imports ledger.envelopes.core, a layer above it",
                                            "z.py:7 imports ledger.envelopes.core, a layer above it"]
    assert find_cycle(graph) == ["ledger.anchoring.witness", "ledger.envelopes.core", "ledger.anchoring.witness"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None
    # the walk itself, on a real module of ours: core's imports include the anchoring it orchestrates
    real = all_modules()
    assert {"ledger.anchoring.witness", "ledger.storage.log", "verifier.lifecycle"} <= set(
        import_graph(real)["ledger.envelopes.core"])


def test_the_walk_sees_imports_hidden_in_functions_and_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "ledger" / "storage"
    pkg.mkdir(parents=True)
    (pkg / "log.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ledger.envelopes import core\n"
                                "def f():\n    from . import schema\n")
    (pkg / "schema.py").write_text("")
    (tmp_path / "ledger" / "envelopes").mkdir()
    (tmp_path / "ledger" / "envelopes" / "core.py").write_text("")
    known = {"ledger.storage.log": pkg / "log.py", "ledger.storage.schema": pkg / "schema.py",
             "ledger.envelopes.core": tmp_path / "ledger" / "envelopes" / "core.py"}
    graph = import_graph(known)
    assert graph["ledger.storage.log"] == {"ledger.envelopes.core": 3, "ledger.storage.schema": 5}


def test_no_folder_holds_more_than_about_a_dozen_modules() -> None:
    """Each folder of code (and of tests) stays small enough to read: about a dozen modules at most."""
    folders: dict[Path, int] = {}
    for top in (*PACKAGES, "tests", "bench"):
        for p in (ROOT / top).rglob("*.py"):
            if p.name != "__init__.py":
                folders[p.parent] = folders.get(p.parent, 0) + 1
    big = {str(f.relative_to(ROOT)): n for f, n in folders.items() if n > MAX_MODULES_IN_A_FOLDER}
    assert big == {}


def test_each_package_says_what_it_holds_and_imports_nothing() -> None:
    """Every `__init__.py` of ledger/ and portal/ is a docstring that says what the package holds and what
    it may import; it imports nothing, so importing a package never drags in its neighbours."""
    for top in ("ledger", "portal"):
        for init in (ROOT / top).rglob("__init__.py"):
            tree = ast.parse(init.read_text(encoding="utf-8"))
            doc = ast.get_docstring(tree)
            rel = init.relative_to(ROOT)
            assert doc and len(doc.split()) >= 12, f"{rel} says nothing of what it holds"
            assert "import" in doc, f"{rel} does not say what it may import"
            assert all(isinstance(n, ast.Expr) for n in tree.body), f"{rel} holds code"
