"""VERIFY.md's steps run exactly as written: each fenced shell block of a generated VERIFY.md, in the folder
the bundle is unzipped into, with real OpenSSL and Python; the `verifier verify` block beside the zip.
The bundle used has every kind of step: cosignatures, a consistency proof, an anchor and its renewal."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from verifier.evidence.manifest import parse_manifest

BIN = Path(sys.executable).parent


def blocks(md: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", md, re.S)


def run(block: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def unpack(data: bytes, folder: Path) -> Path:
    folder.mkdir()
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)  # the bundle is the project's own: safe to extract
    return folder


def test_every_step_of_verify_md_runs_as_written(renewed: bytes, tmp_path: Path) -> None:
    assert shutil.which("openssl"), "the steps need OpenSSL (scripts/system-deps installs it)"
    m = parse_manifest(zipfile.ZipFile(io.BytesIO(renewed)).read("manifest.json"))
    assert any(a.renews is not None for a in m.log.anchors) and m.log.consistency
    folder = unpack(renewed, tmp_path / "bundle")
    md = (folder / "VERIFY.md").read_text()
    steps = blocks(md)
    assert len(steps) >= 9
    zip_name = re.search(r"verifier verify (\S+\.zip)", md)
    assert zip_name is not None and zip_name.group(1) == f"{m.envelope.ref}-evidence.zip"
    (tmp_path / zip_name.group(1)).write_bytes(renewed)
    outputs = []
    for block in steps:
        where = tmp_path if "verifier verify" in block else folder
        r = run(block, where, tmp_path)
        assert r.returncode == 0, f"{block}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
        outputs.append(r.stdout + r.stderr)
    text = "\n".join(outputs)
    assert text.count("Signature Verified Successfully") >= 3  # two checkpoints, one cosignature
    assert text.count("Verification: OK") == len(m.log.anchors)  # the anchor and its renewal
    assert f"OK {len(m.entries)} entries: one chain" in text and "VERIFIED bundle" in text
    assert "extends the tree of size" in text and "files have the SHA-256 manifest.json lists" in text


@pytest.mark.parametrize("target", ["entries/", "anchors/", "documents/"])
def test_the_steps_catch_a_change(renewed: bytes, tmp_path: Path, target: str) -> None:
    """A changed file stops the step that reads it, even past step 1 (run as an expert would, in order)."""
    folder = unpack(renewed, tmp_path / "bundle")
    victim = sorted(p for p in folder.rglob("*") if p.is_file() and str(p.relative_to(folder)).startswith(target))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    failed = [b for b in blocks((folder / "VERIFY.md").read_text()) if "verifier verify" not in b
              and run(b, folder, tmp_path).returncode != 0]
    assert len(failed) >= 2, target  # step 1 (the hashes), and the step of that kind of file
