from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from ledger.envelopes.core import Ledger
from tests.pg import ENGINES, database_for

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


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs twice: on SQLite and on PostgreSQL (a throwaway cluster, tests/pg.py)."""
    return str(request.param)


@pytest.fixture
def database(engine: str) -> str:
    """The `database` setting of a new ledger on `engine`: "" (SQLite) or a fresh PostgreSQL database's URL."""
    return database_for(engine)


@pytest.fixture
def pg_database() -> str:
    """A fresh PostgreSQL database's URL (for the tests of what only PostgreSQL does)."""
    return database_for("postgresql")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A new ledger in this test's own folder (a module may define its own `ledger` instead)."""
    led = Ledger.init(tmp_path / "home")
    yield led
    led.close()
