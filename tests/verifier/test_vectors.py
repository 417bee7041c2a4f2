"""The public RFC 6962 proof vectors: every happy path verifies, every mutation is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from verifier.errors import VerificationError
from verifier.merkle import verify_consistency, verify_inclusion


def _b64(s: str | None) -> bytes:
    return base64.b64decode(s or "")


def _cases(vectors: Path, kind: str) -> list[Path]:
    files = sorted((vectors / "rfc6962-proofs" / kind).rglob("*.json"))
    assert len(files) > 20, f"too few {kind} vectors found"
    return files


def test_the_vectors_are_in_the_repository_with_their_source_and_licence(vectors: Path) -> None:
    """A fresh clone runs the vector tests: nothing outside it, no variable to set."""
    from tests import conftest

    root = Path(conftest.__file__).resolve().parent.parent
    assert vectors.resolve().is_relative_to(root), f"the vectors are outside the repository: {vectors}"
    assert "LEDGER_VECTORS" not in Path(conftest.__file__).read_text()
    here = vectors / "rfc6962-proofs"
    assert "Apache License" in (here / "LICENSE").read_text()
    readme = " ".join((here / "README.md").read_text().split())
    assert "transparency-dev/merkle" in readme and "Apache-2.0" in readme


def test_inclusion_vectors(vectors: Path) -> None:
    seen_err = seen_ok = 0
    for f in _cases(vectors, "inclusion"):
        v = json.loads(f.read_text())
        proof = [_b64(p) for p in v["proof"] or []]
        args = (v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), proof, _b64(v["root"]))
        if v["wantErr"]:
            with pytest.raises(VerificationError):
                verify_inclusion(*args)
            seen_err += 1
        else:
            verify_inclusion(*args)
            seen_ok += 1
    assert seen_ok >= 5 and seen_err >= 50


def test_consistency_vectors(vectors: Path) -> None:
    seen_err = seen_ok = 0
    for f in _cases(vectors, "consistency"):
        v = json.loads(f.read_text())
        proof = [_b64(p) for p in v["proof"] or []]
        args = (v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)
        if v["wantErr"]:
            with pytest.raises(VerificationError):
                verify_consistency(*args)
            seen_err += 1
        else:
            verify_consistency(*args)
            seen_ok += 1
    assert seen_ok >= 5 and seen_err >= 50


def test_classic_eight_leaf_root() -> None:
    from tests.naive_merkle import mth
    from verifier.merkle import leaf_hash, root_of_hashes

    leaves = [bytes.fromhex(h) for h in [
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
        "606162636465666768696a6b6c6d6e6f"]]
    want = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert mth(leaves).hex() == want
    assert root_of_hashes([leaf_hash(x) for x in leaves]).hex() == want
