"""The platform's e-seal on an envelope's documents: made by `ledger init`, applied on completion, on
request (`POST .../documents/{document}/seal`, `ledger seal`), registered as a version of the document,
and valid under the seal CA's and the local TSA's roots with nothing fetched."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from ledger.access.apikeys import create_key
from ledger.audit.run import audit_home
from ledger.envelopes.core import Ledger
from portal.app import create_app
from tests.browser_util import BIN
from tests.conftest import init_database
from tests.documents.test_printing import PDF, auth, completed
from verifier.documents.pdfsig import check_pdf

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def roots(home: Path) -> list[bytes]:
    return [(home / "seal" / "seal-root.pem").read_bytes(), (home / "tsa" / "tsa-root.pem").read_bytes()]


async def test_a_completed_envelope_is_sealed_and_the_seal_validates(aiohttp_client: Client, ledger: Ledger) -> None:
    assert (ledger.home / "seal" / "seal.pem").exists(), "ledger init makes the platform's seal"
    key = create_key(ledger.log, "t", ["append", "read"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    await completed(client, key, "S1")
    r = await client.get("/api/v1/envelopes/S1/documents", headers=auth(key))
    (doc,) = (await r.json())["documents"]
    (sealed,) = doc["sealed_versions"]
    pdf = ledger.blobs.path(sealed["sha256"]).read_bytes()
    assert pdf.startswith(PDF), "the seal is an incremental update of the version it seals"
    report = check_pdf(pdf, roots=roots(ledger.home), at=datetime.now(UTC))
    (sig,) = report.signatures
    assert report.ok and sig.intact and sig.trusted and sig.timestamp_ok, report.lines()
    assert "Evidence Ledger (demo)" in sig.signer
    answer = await (await client.get(f"/d/{sealed['sha256']}")).json()
    assert answer["versions"] == [{"kind": "sealed", "document": 1}]
    # on request, again: a newer sealed version of the latest version
    r = await client.post("/api/v1/envelopes/S1/documents/main/seal", headers=auth(key, **{"Idempotency-Key": "s"}))
    (ack,) = (await r.json())["acks"]
    assert r.status == 201 and ack["type"] == "document.sealed" and ack["sha256"] != sealed["sha256"]
    again = await client.post("/api/v1/envelopes/S1/documents/main/seal", headers=auth(key, **{"Idempotency-Key": "s"}))
    assert (await again.json())["acks"] == [ack] and again.headers["Idempotent-Replayed"] == "true"
    rep = audit_home(ledger.home)
    assert rep.ok, rep.problems


async def test_document_sealed_is_refused_from_a_platform(aiohttp_client: Client, ledger: Ledger) -> None:
    key = create_key(ledger.log, "t", ["append", "read"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    await completed(client, key, "S2")
    r = await client.post("/api/v1/envelopes/S2/events", headers=auth(key), json={
        "type": "document.sealed", "document": "main", "sha256": "0" * 64, "certificate": "1" * 64})
    assert r.status == 422 and "made by the ledger itself" in (await r.json())["error"]["message"]
    r = await client.post("/api/v1/envelopes/S2/documents/nope/seal", headers=auth(key))
    assert r.status == 404


def test_ledger_seal_from_the_command_line(tmp_path: Path, engine: str) -> None:
    home = tmp_path / "home"
    subprocess.run([str(BIN / "ledger"), "--home", str(home), "init", *init_database(engine)], check=True,
                   capture_output=True)
    subprocess.run([str(BIN / "ledger"), "--home", str(home), "demo"], check=True, capture_output=True)
    out = tmp_path / "sealed.pdf"
    r = subprocess.run([str(BIN / "ledger"), "--home", str(home), "seal", "DEMO-COMPLETED", "--tenant", "demo",
                        "--document", "main", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    ack = json.loads(r.stdout)
    assert ack["type"] == "document.sealed" and ack["size"] == out.stat().st_size
    assert check_pdf(out.read_bytes(), roots=roots(home), at=datetime.now(UTC)).ok


async def test_a_copy_printed_from_the_sealed_version_keeps_its_seal(aiohttp_client: Client, ledger: Ledger,
                                                                     tmp_path: Path) -> None:
    """Printing stamps the latest version, here the sealed one, in an incremental update: the seal stays
    intact and trusted for pyHanko, and pdfsig reads it as valid."""
    key = create_key(ledger.log, "t", ["append", "read"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    await completed(client, key, "S3")  # sealed on completion
    r = await client.post("/api/v1/envelopes/S3/copies", json={"document": "main"},
                          headers=auth(key, Accept="application/pdf"))
    printed = await r.read()
    report = check_pdf(printed, roots=roots(ledger.home), at=datetime.now(UTC))
    (sig,) = report.signatures
    assert sig.intact and sig.trusted and sig.revision_bytes < len(printed), report.lines()
    (tmp_path / "p.pdf").write_bytes(printed)
    out = subprocess.run(["pdfsig", "-nocert", str(tmp_path / "p.pdf")], capture_output=True, text=True).stdout
    assert "Signature is Valid" in out, out
