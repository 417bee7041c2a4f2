"""The tamper matrix: one changed byte in each kind of file of a bundle, a file dropped, a file added, two
entries swapped, a proof of another entry. Each fails, with a reason that names the file. Each is tried
twice: as it is, and by a forger who also rewrites manifest.json's hashes (who cannot reseal the report,
whose embedded manifest then names the forgery)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable

import pytest

from tests.evidence.conftest import World, verify
from verifier.evidence.result import Report

Files = dict[str, bytes]


def unzip(data: bytes) -> Files:
    z = zipfile.ZipFile(io.BytesIO(data))
    return {n: z.read(n) for n in z.namelist()}


def rezip(files: Files) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def rehash(files: Files) -> Files:
    """manifest.json with every file's hash and size made to fit (a forger's manifest)."""
    m = json.loads(files["manifest.json"])
    m["files"] = [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                  for p, d in sorted(files.items()) if p != "manifest.json"]
    return {**files, "manifest.json": json.dumps(m, indent=2, sort_keys=True).encode()}


def flip(data: bytes, at: float = 0.5) -> bytes:
    n = int(len(data) * at)
    return data[:n] + bytes([data[n] ^ 0x01]) + data[n + 1:]


def first(files: Files, prefix: str, suffix: str = "") -> str:
    return sorted(n for n in files if n.startswith(prefix) and n.endswith(suffix))[0]


def _entries(files: Files) -> list[str]:
    return sorted((n for n in files if n.startswith("entries/")), key=lambda n: int(n[8:-5]))


def one_byte(prefix: str, suffix: str = "", at: float = 0.5) -> Callable[[Files], tuple[Files, str]]:
    def change(files: Files) -> tuple[Files, str]:
        name = first(files, prefix, suffix)
        return {**files, name: flip(files[name], at)}, name
    return change


def dropped(files: Files) -> tuple[Files, str]:
    name = _entries(files)[1]
    return {k: v for k, v in files.items() if k != name}, name


def added(files: Files) -> tuple[Files, str]:
    return {**files, "documents/extra.pdf": b"%PDF-1.4 a file slipped in"}, "documents/extra.pdf"


def swapped(files: Files) -> tuple[Files, str]:
    a, b = _entries(files)[2:4]
    return {**files, a: files[b], b: files[a]}, a


def other_proof(files: Files) -> tuple[Files, str]:
    entries = _entries(files)
    a, b = (f"proofs/{n[8:-5]}.tlog-proof" for n in entries[1:3])
    return {**files, a: files[b]}, a


def changed_manifest(files: Files) -> tuple[Files, str]:
    m = json.loads(files["manifest.json"])
    m["envelope"]["status"] = "withdrawn"
    return {**files, "manifest.json": json.dumps(m).encode()}, "manifest.json"


TAMPERS: dict[str, Callable[[Files], tuple[Files, str]]] = {
    "entry": one_byte("entries/", ".json"),
    "opening": one_byte("openings/", ".json", 0.4),
    "proof": one_byte("proofs/", ".tlog-proof", 0.1),
    "checkpoint": one_byte("checkpoints/", ".txt", 0.2),
    "checkpoint body": one_byte("checkpoints/", ".body", 0.5),
    "anchor": one_byte("anchors/", ".tsr", 0.7),
    "certificate": one_byte("certs/tsa-", ".pem", 0.5),
    "document": one_byte("documents/", ".pdf", 0.5),
    "report": one_byte("report.pdf", "", 0.3),
    "manifest": changed_manifest,
    "VERIFY.md": one_byte("VERIFY.md", "", 0.5),
    "dropped file": dropped,
    "added file": added,
    "swapped entries": swapped,
    "proof of another entry": other_proof,
}


def names(rep: Report, name: str) -> bool:
    return any(c.file == name or name in c.detail for c in rep.failures())


@pytest.fixture(scope="module")
def original(world: World) -> Files:
    return unzip(world.export("completed"))


@pytest.mark.parametrize("kind", TAMPERS)
def test_a_tampered_bundle_fails_naming_the_file(original: Files, kind: str) -> None:
    files, name = TAMPERS[kind](original)
    rep = verify(rezip(files))
    assert not rep.ok, kind
    assert names(rep, name), (kind, name, [c.line() for c in rep.failures()])
    assert rep.verdict().startswith("NOT VERIFIED")


@pytest.mark.parametrize("kind", [k for k in TAMPERS if k not in ("manifest", "report")])
def test_a_forged_manifest_does_not_hide_it(original: Files, kind: str) -> None:
    files, name = TAMPERS[kind](original)
    rep = verify(rezip(rehash(files)))
    assert not rep.ok, kind
    failed = {c.name for c in rep.failures()}
    assert "report manifest" in failed, failed  # the sealed report names the forgery
    assert names(rep, "manifest.json")


def test_the_untouched_bundle_passes(original: Files) -> None:
    """The matrix's baseline: unzipped and zipped again, the bundle still verifies."""
    rep = verify(rezip(original))
    assert rep.ok, [c.line() for c in rep.failures()]
