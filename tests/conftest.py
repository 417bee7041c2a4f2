from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
# The shared public vectors sit beside the repository; CI lays a copy there too.
VECTORS = Path(os.environ.get("LEDGER_VECTORS", ROOT.parent / "shared" / "vectors"))

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.fail(f"test vectors not found at {VECTORS}; set LEDGER_VECTORS")
    return VECTORS
