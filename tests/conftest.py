from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from ledger.config import load_config
from ledger.envelopes.core import Ledger
from tests.pg import ENGINES, copy_database, database_for

ROOT = Path(__file__).resolve().parent.parent
# The public vectors the verifier is tested against, each with its source and licence (tests/vectors/README.md).
VECTORS = ROOT / "tests" / "vectors"

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.fail(f"test vectors not found at {VECTORS}; they are part of the repository: restore tests/vectors/")
    return VECTORS


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs twice: on SQLite and on PostgreSQL (a throwaway cluster, tests/pg.py).

    Module-scoped, so that a module's own module-scoped ledger is made once per engine (pytest runs a
    module's tests on one engine, then on the other). A test that cannot apply to PostgreSQL (the SQLite
    file, its WAL, a ledger older than PostgreSQL support) takes no engine, and says why in a comment.
    """
    return str(request.param)


def new_ledger(home: Path, engine: str, **kwargs: Any) -> Ledger:
    """`Ledger.init(home, **kwargs)` on `engine`: the SQLite file in `home`, or a fresh PostgreSQL database
    (its URL written into home/config.toml, so that `Ledger.open(home)` finds it again)."""
    return Ledger.init(home, database=database_for(engine) or None, **kwargs)


def init_database(engine: str) -> list[str]:
    """The arguments `ledger init` needs to make a ledger on `engine`: none, or `--database` a fresh URL."""
    database = database_for(engine)
    return ["--database", database] if database else []


def copy_home(template: Path, home: Path) -> Path:
    """A copy of the ledger folder `template` (closed) at `home`; on PostgreSQL a copy of its database too,
    which the copy's config.toml names."""
    shutil.copytree(template, home)
    url = load_config(home).database
    if url:
        cfg = home / "config.toml"
        cfg.write_text(cfg.read_text().replace(f'"{url}"', f'"{copy_database(url)}"'))
    return home


@pytest.fixture
def database(engine: str) -> str:
    """The `database` setting of a new ledger on `engine`: "" (SQLite) or a fresh PostgreSQL database's URL."""
    return database_for(engine)


@pytest.fixture
def pg_database() -> str:
    """A fresh PostgreSQL database's URL (for the tests of what only PostgreSQL does)."""
    return database_for("postgresql")


@pytest.fixture
def ledger(tmp_path: Path, engine: str) -> Iterator[Ledger]:
    """A new ledger in this test's own folder, on each engine (a module may define its own `ledger` instead)."""
    led = new_ledger(tmp_path / "home", engine)
    yield led
    led.close()
