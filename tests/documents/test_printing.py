"""Print-ready copies through the API and `ledger print`, and downloads with the tenant's watermark and
the VOID mark: the QR code on the paper opens the copy's page, with its pins."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import demo_pdf
from portal.app import create_app
from tests.browser_util import BIN
from tests.conftest import init_database, new_ledger
from tests.documents.test_stamp import decoded, render

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
PDF = demo_pdf("Print test", "A contract to print.")


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def text_of(pdf: bytes, tmp: Path) -> str:
    (tmp / "t.pdf").write_bytes(pdf)
    return subprocess.run(["pdftotext", str(tmp / "t.pdf"), "-"], capture_output=True, text=True, check=True).stdout


async def completed(client: TestClient[Any, Any], key: str, ref: str, *, upload: bool = True) -> None:
    await client.post("/api/v1/envelopes", json={"envelope": ref, "title": "t"}, headers=auth(key))
    if upload:
        r = await client.post(f"/api/v1/envelopes/{ref}/documents?document=main&name=lease.pdf&download=public",
                              data=PDF, headers=auth(key, **{"Content-Type": "application/pdf"}))
    else:
        r = await client.post(f"/api/v1/envelopes/{ref}/events", headers=auth(key), json={
            "type": "document.added", "document": "main", "sha256": hashlib.sha256(PDF).hexdigest(),
            "size": len(PDF), "name": "lease.pdf"})
    assert r.status == 201, await r.text()
    r = await client.post(f"/api/v1/envelopes/{ref}/events", headers=auth(key), json=[
        {"type": "party.added", "party": "a", "role": "signer", "name": "Zhang San"},
        {"type": "envelope.sent"}, {"type": "party.authenticated", "party": "a", "method": "face"},
        {"type": "party.signed", "party": "a", "channel": "app", "document": "main",
         "signed_sha256": hashlib.sha256(b"signed").hexdigest()},
        {"type": "envelope.completed"}])
    assert r.status == 201, await r.text()


async def test_a_print_ready_copy_over_the_api(aiohttp_client: Client, ledger: Ledger, tmp_path: Path) -> None:
    key = create_key(ledger.log, "t", ["append", "read"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    await completed(client, key, "P1")
    r = await client.post("/api/v1/envelopes/P1/copies", json={"document": "main"},
                          headers=auth(key, Accept="application/pdf"))
    assert r.status == 201 and r.content_type == "application/pdf", await r.text()
    pdf = await r.read()
    assert pdf.startswith(PDF), "the stored version, byte for byte, then the stamp as an incremental update"
    assert "lease-copy-1.pdf" in r.headers["Content-Disposition"]
    code = r.headers["Ledger-Code"]
    (url,) = set(decoded(render(pdf, 0)))
    assert url == ledger.qr_url(code) and "#k=" in url and "&d=" in url
    page = await client.get(f"{urlsplit(url).path}.json")
    view = await page.json()
    assert view["status"] == "completed" and view["copy"] == 1
    words = text_of(pdf, tmp_path)
    assert "copy 1, printed" in words and code[:5] in words
    # JSON callers: the acknowledgement, plus the copy number and an SVG of the QR code
    r = await client.post("/api/v1/envelopes/P1/copies", json={"document": "main"}, headers=auth(key))
    (ack,) = (await r.json())["acks"]
    assert ack["copy"] == 2 and "<svg" in ack["qr_svg"] and "path" in ack["qr_svg"]


async def test_a_document_registered_by_hash_only_prints_nothing(aiohttp_client: Client, ledger: Ledger) -> None:
    key = create_key(ledger.log, "t", ["append", "read"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    await completed(client, key, "H1", upload=False)
    size = ledger.log.size
    r = await client.post("/api/v1/envelopes/H1/copies", json={"document": "main"},
                          headers=auth(key, Accept="application/pdf"))
    assert r.status == 409 and (await r.json())["error"]["code"] == "no_bytes"
    assert ledger.log.size == size, "no copy is logged that cannot be printed"


async def test_watermarks_on_copies_and_downloads_and_void_on_downloads(aiohttp_client: Client, tmp_path: Path,
                                                                        engine: str) -> None:
    home = tmp_path / "home"
    new_ledger(home, engine).close()
    with open(home / "config.toml", "a") as f:
        f.write('\n[[printing]]\ntenant = "t"\nwatermark = "机密 CONFIDENTIAL"\nwatermark_tiled = false\n'
                'watermark_angle = 0.0\npages = "last"\n')
    led = Ledger.open(home)
    try:
        key = create_key(led.log, "t", ["append", "read"])
        client = await aiohttp_client(create_app(led, anchor=False))
        await completed(client, key, "W1")
        r = await client.post("/api/v1/envelopes/W1/copies", json={"document": "main"},
                              headers=auth(key, Accept="application/pdf"))
        printed = await r.read()
        assert "CONFIDENTIAL" in text_of(printed, tmp_path) and "机密" in text_of(printed, tmp_path)
        code = r.headers["Ledger-Code"]
        download = await (await client.get(f"/v/{code}/document")).read()
        assert download.startswith(PDF) and "CONFIDENTIAL" in text_of(download, tmp_path)
        assert "VOID" not in text_of(download, tmp_path)
        r = await client.post("/api/v1/envelopes/W1/events", headers=auth(key), json=[
            {"type": "void.requested", "party": "a", "reason": "error"}, {"type": "envelope.voided"}])
        assert r.status == 201, await r.text()
        void = await (await client.get(f"/v/{code}/document")).read()
        # the mark is diagonal: poppler reads it a glyph or two a line, so compare without white space
        (tmp_path / "v.pdf").write_bytes(void)
        raw = subprocess.run(["pdftotext", "-raw", str(tmp_path / "v.pdf"), "-"], capture_output=True, text=True,
                             check=True).stdout
        flat = "".join(raw.split())
        assert void.startswith(PDF) and "作废/VOID" in flat and "voidsince" in flat, flat
    finally:
        led.close()


def test_ledger_print_writes_print_ready_copies(tmp_path: Path, engine: str) -> None:
    home = tmp_path / "home"
    subprocess.run([str(BIN / "ledger"), "--home", str(home), "init", *init_database(engine)], check=True,
                   capture_output=True)
    subprocess.run([str(BIN / "ledger"), "--home", str(home), "demo"], check=True, capture_output=True)
    out = tmp_path / "out"
    run = subprocess.run([str(BIN / "ledger"), "--home", str(home), "print", "DEMO-COMPLETED", "--tenant", "demo",
                          "--document", "main", "--copies", "2", "-o", str(out)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    files = sorted(out.glob("*.pdf"))
    assert len(files) == 2 and len(run.stdout.splitlines()) == 2
    urls = [set(decoded(render(f.read_bytes(), 0))) for f in files]
    assert [u.pop() for u in urls] == [line.split()[-1] for line in run.stdout.splitlines()]
    bad = subprocess.run([str(BIN / "ledger"), "--home", str(home), "print", "DEMO-COMPLETED", "--tenant", "demo",
                          "--document", "nope", "-o", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "no document 'nope'" in bad.stderr and len(bad.stderr.splitlines()) == 1


async def test_a_hash_never_opens_another_tenants_file(aiohttp_client: Client, ledger: Ledger, tmp_path: Path) -> None:
    """Every SHA-256 in the log is public. A tenant who registers another tenant's document by its hash, as
    its own document or as a party's signed version, prints and exports only its own bytes, never theirs."""
    from ledger.evidence.bundle import export, write_file

    owner, other = create_key(ledger.log, "owner", ["append", "read"]), create_key(ledger.log, "other", ["append", "read"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    secret = PDF + b"\n% owner's confidential contract\n"
    r = await client.post("/api/v1/envelopes", json={"envelope": "O1", "title": "t"}, headers=auth(owner))
    r = await client.post("/api/v1/envelopes/O1/documents?document=main&name=secret.pdf&download=none",
                          data=secret, headers=auth(owner, **{"Content-Type": "application/pdf"}))
    assert r.status == 201, await r.text()
    sha = hashlib.sha256(secret).hexdigest()
    # the other tenant registers the same hash, by an event, as its document ...
    await client.post("/api/v1/envelopes", json={"envelope": "X1", "title": "t"}, headers=auth(other))
    r = await client.post("/api/v1/envelopes/X1/events", headers=auth(other), json=[
        {"type": "document.added", "document": "main", "sha256": sha, "size": len(secret), "name": "x.pdf"},
        {"type": "party.added", "party": "a", "role": "signer", "name": "A"}, {"type": "envelope.sent"},
        {"type": "party.authenticated", "party": "a", "method": "sms"},
        {"type": "party.signed", "party": "a", "channel": "web", "document": "main", "signed_sha256": sha}])
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/envelopes/X1/copies", json={"document": "main"},
                          headers=auth(other, Accept="application/pdf"))
    assert r.status == 409 and (await r.json())["error"]["code"] == "no_bytes"
    # ... and its evidence export lists the versions without their bytes
    out = tmp_path / "x1.zip"
    write_file(await asyncio.to_thread(export, ledger, "other", "X1", lang="en"), out)
    with zipfile.ZipFile(out) as z:
        assert not any(secret == z.read(n) for n in z.namelist()), "another tenant's file is in the bundle"
    # the owner prints its own document
    r = await client.post("/api/v1/envelopes/O1/events", headers=auth(owner), json=[
        {"type": "party.added", "party": "a", "role": "signer", "name": "A"}, {"type": "envelope.sent"}])
    r = await client.post("/api/v1/envelopes/O1/copies", json={"document": "main"},
                          headers=auth(owner, Accept="application/pdf"))
    assert r.status == 201 and (await r.read()).startswith(secret)
