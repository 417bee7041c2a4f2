"""Refusals at the portal's edges: a document's hash opens no file its tenant did not upload, an upload
that is refused stores nothing, bodies are read whole however they arrive, hostile PDFs and forms are
client errors, every answer (redirects too) carries the security headers, a request the HTTP parser
refuses leaves no header value in the log, and a new ledger's files are its owner's only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ledger.access.apikeys import create_key
from ledger.config import Config, load_config
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import demo_pdf
from ledger.errors import LedgerError, RefusedError
from ledger.storage.schema import DB_NAME
from portal.app import create_app
from portal.serving.server import public_url_elsewhere
from tests.api.test_portal_api import PDF, PDF_SHA, assert_error, auth

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def keys(ledger: Ledger) -> dict[str, str]:
    c = ledger.log
    return {"a": create_key(c, "tenant-a", ["append", "read"]), "b": create_key(c, "tenant-b", ["append", "read"])}


@pytest.fixture
async def client(aiohttp_client: Client, ledger: Ledger) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(ledger))


def blobs(ledger: Ledger) -> set[str]:
    """The documents stored, and any upload left half-way."""
    root = ledger.blobs.root
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


async def upload(client: TestClient[Any, Any], key: str, ref: str, data: bytes, query: str = "document=main&"
                 "name=c.pdf&download=none") -> Any:
    return await client.post(f"/api/v1/envelopes/{ref}/documents?{query}", data=data,
                             headers={**auth(key), "Content-Type": "application/pdf"})


async def print_copy(client: TestClient[Any, Any], key: str, ref: str) -> str:
    r = await client.post(f"/api/v1/envelopes/{ref}/copies", json={"document": "main"}, headers=auth(key))
    assert r.status == 201, await r.text()
    return str((await r.json())["acks"][0]["code"])


# ---- a document's hash is public: it must open nothing ----------------------------------------------


async def test_a_hash_alone_does_not_open_another_tenants_document(client: TestClient[Any, Any], ledger: Ledger,
                                                                   keys: dict[str, str]) -> None:
    secret = demo_pdf("A's contract", "Not for tenant B.")
    sha = hashlib.sha256(secret).hexdigest()
    r = await client.post("/api/v1/envelopes", json={"envelope": "A1", "title": "Secret"}, headers=auth(keys["a"]))
    assert r.status == 201
    r = await upload(client, keys["a"], "A1", secret)  # download "none": nobody may download it
    assert r.status == 201, await r.text()

    for policy in ("public", "code"):  # B names A's file by its (public) hash, to download it
        r = await client.post("/api/v1/events", headers=auth(keys["b"]), json=[
            {"type": "envelope.created", "envelope": f"B-{policy}", "title": "x"},
            {"type": "document.added", "envelope": f"B-{policy}", "document": "main", "sha256": sha, "size": 1,
             "name": "x.pdf", "download": policy}])
        assert r.status == 422, await r.text()
        body = await r.json()
        assert_error(body, "upload_required")
        assert "POST /api/v1/envelopes/{ref}/documents" in body["error"]["message"]

    # by hash with download "none" it is registered, and still opens nothing
    r = await client.post("/api/v1/events", headers=auth(keys["b"]), json=[
        {"type": "envelope.created", "envelope": "B1", "title": "x"},
        {"type": "document.added", "envelope": "B1", "document": "main", "sha256": sha, "size": 1, "name": "x.pdf"},
        {"type": "party.added", "envelope": "B1", "party": "p", "role": "signer", "name": "Bob"},
        {"type": "envelope.sent", "envelope": "B1"}])
    assert r.status == 201, await r.text()
    code = await print_copy(client, keys["b"], "B1")
    r = await client.get(f"/v/{code}/document")
    assert r.status == 404
    assert secret not in await r.read()


async def test_an_internal_mark_cannot_be_sent(client: TestClient[Any, Any], keys: dict[str, str]) -> None:
    """The mark an upload puts on its event is not a field a client can send."""
    r = await client.post("/api/v1/events", headers=auth(keys["b"]), json=[
        {"type": "envelope.created", "envelope": "B2", "title": "x"},
        {"type": "document.added", "envelope": "B2", "document": "main", "sha256": PDF_SHA, "size": 1,
         "name": "x.pdf", "download": "public", "_uploaded": True}])
    assert r.status == 422
    assert "_uploaded" in (await r.json())["error"]["message"]


async def test_an_uploaded_public_document_is_served(client: TestClient[Any, Any], keys: dict[str, str]) -> None:
    await client.post("/api/v1/envelopes", json={"envelope": "P1", "title": "Lease"}, headers=auth(keys["a"]))
    r = await upload(client, keys["a"], "P1", PDF, "document=main&name=lease.pdf&download=public")
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/envelopes/P1/parties", headers=auth(keys["a"]),
                          json={"party": "p1", "role": "signer", "name": "Zhang San"})
    r = await client.post("/api/v1/envelopes/P1/events", headers=auth(keys["a"]), json={"type": "envelope.sent"})
    assert r.status == 201
    code = await print_copy(client, keys["a"], "P1")
    r = await client.get(f"/v/{code}/document")
    assert r.status == 200 and await r.read() == PDF


# ---- a refused upload stores nothing ------------------------------------------------------------------

def _pdf(objs: list[bytes], root: int = 1) -> bytes:
    """A PDF with these objects and a correct cross-reference table (so a reader gets to the objects)."""
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, root, xref)


PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"
HOSTILE = {
    "root is a number": _pdf([b"42", b"<< >>", PAGE]),
    "page count refers to itself": _pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                                         b"<< /Type /Pages /Kids [3 0 R] /Count 4 0 R >>", PAGE, b"4 0 R"]),
    "pages in a reference loop": _pdf([b"<< /Type /Catalog /Pages 4 0 R >>", b"<< >>", PAGE, b"5 0 R", b"4 0 R"]),
    "deeply nested catalog": _pdf([b"<< /Type /Catalog /Pages 2 0 R /X " + b"[" * 100_000 + b"]" * 100_000 + b" >>",
                                   b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE]),
    "no pages": _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]),
    "not a PDF": b"%PDF-no, not really a PDF at all",
    "not even the magic": b"GIF89a....",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_a_hostile_pdf_is_refused_and_not_stored(client: TestClient[Any, Any], ledger: Ledger,
                                                       keys: dict[str, str], kind: str) -> None:
    await client.post("/api/v1/envelopes", json={"envelope": "H1", "title": "x"}, headers=auth(keys["a"]))
    before = blobs(ledger)
    r = await upload(client, keys["a"], "H1", HOSTILE[kind])
    assert r.status == 422, (kind, r.status, await r.text())
    assert_error(await r.json(), "not_pdf")
    assert blobs(ledger) == before, f"{kind}: a refused upload left a file behind"


async def test_an_upload_refused_before_its_bytes_are_read_stores_nothing(
        client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str]) -> None:
    await client.post("/api/v1/envelopes", json={"envelope": "U1", "title": "x"}, headers=auth(keys["a"]))
    cases = [  # (envelope, query, key, status, code)
        ("NOPE", "document=d&name=a.pdf", keys["a"], 404, "unknown_envelope"),
        ("U1", "document=d&name=a.pdf", keys["b"], 404, "unknown_envelope"),  # another tenant's envelope
        ("U1", "document=d&name=a.pdf&download=bogus", keys["a"], 422, "invalid_event"),
        ("U1", "document=bad%20ref&name=a.pdf", keys["a"], 422, "invalid_event"),
        ("U1", "document=d&name=a%01b.pdf", keys["a"], 422, "invalid_event"),
    ]
    for ref, query, key, status, code in cases:
        r = await upload(client, key, ref, PDF, query)
        assert r.status == status, (ref, query, await r.text())
        assert_error(await r.json(), code)
        assert blobs(ledger) == set(), (ref, query)
    # a document reference the envelope has already: refused before the upload is stored
    r = await client.post("/api/v1/envelopes/U1/events", headers=auth(keys["a"]), json=[
        {"type": "document.added", "document": "first", "sha256": PDF_SHA, "size": len(PDF), "name": "c.pdf"}])
    assert r.status == 201, await r.text()
    r = await upload(client, keys["a"], "U1", demo_pdf("Another", "document"), "document=first&name=b.pdf")
    assert r.status == 409, await r.text()
    assert_error(await r.json(), "document_exists")
    assert blobs(ledger) == set()
    # an envelope that is no longer a draft takes no more documents: refused before the upload is stored
    r = await client.post("/api/v1/envelopes/U1/events", headers=auth(keys["a"]), json=[
        {"type": "document.added", "document": "main", "sha256": PDF_SHA, "size": len(PDF), "name": "c.pdf"},
        {"type": "party.added", "party": "p1", "role": "signer", "name": "Zhang San"},
        {"type": "envelope.sent"}])
    assert r.status == 201, await r.text()
    r = await upload(client, keys["a"], "U1", PDF)
    assert r.status == 409, await r.text()
    assert_error(await r.json(), "wrong_state")
    assert blobs(ledger) == set()


# ---- bodies are read whole ----------------------------------------------------------------------------

async def _slowly(data: bytes, pieces: int = 4, pause: float = 0.05) -> AsyncIterator[bytes]:
    step = -(-len(data) // pieces)
    for i in range(0, len(data), step):
        yield data[i:i + step]
        await asyncio.sleep(pause)


async def test_a_body_that_arrives_in_pieces_is_read_whole(client: TestClient[Any, Any], ledger: Ledger,
                                                           keys: dict[str, str]) -> None:
    body = b'{"type":"envelope.created","envelope":"S1","title":"Sent in four pieces"}'
    r = await client.post("/api/v1/events", data=_slowly(body),
                          headers={**auth(keys["a"]), "Content-Type": "application/json"})
    assert r.status == 201, await r.text()
    # a body of about a megabyte (several socket reads) in one piece
    events = b",".join(b'{"type":"envelope.created","envelope":"M%d","title":"%s"}' % (i, b"t" * 400)
                       for i in range(2400))
    r = await client.post("/api/v1/events", data=b"[" + events + b"]",
                          headers={**auth(keys["a"]), "Content-Type": "application/json"})
    assert r.status == 201, await r.text()
    assert len((await r.json())["acks"]) == 2400


async def test_a_body_over_the_limit_is_413_with_or_without_a_length(client: TestClient[Any, Any], ledger: Ledger,
                                                                     keys: dict[str, str]) -> None:
    limit = ledger.config.max_request_bytes
    big = b"[" + b" " * limit + b"]"
    h = {**auth(keys["a"]), "Content-Type": "application/json"}
    for data in (big, _slowly(big, pieces=8, pause=0)):  # Content-Length, then chunked
        r = await client.post("/api/v1/events", data=data, headers=h)
        assert r.status == 413, await r.text()
        assert_error(await r.json(), "too_large")


async def test_a_proof_index_beyond_any_log_is_404(client: TestClient[Any, Any], keys: dict[str, str]) -> None:
    r = await client.get("/api/v1/entries/9999999999999999999/proof", headers=auth(keys["a"]))
    assert r.status == 404
    assert_error(await r.json(), "bad_index")


# ---- the access-code form -------------------------------------------------------------------------------

@pytest.fixture
async def code_copy(client: TestClient[Any, Any], keys: dict[str, str]) -> str:
    await client.post("/api/v1/envelopes", json={"envelope": "C1", "title": "x"}, headers=auth(keys["a"]))
    r = await upload(client, keys["a"], "C1", PDF, "document=main&name=c.pdf&download=code")
    assert r.status == 201, await r.text()
    await client.post("/api/v1/envelopes/C1/parties", headers=auth(keys["a"]),
                      json={"party": "p1", "role": "signer", "name": "Zhang San"})
    await client.post("/api/v1/envelopes/C1/events", headers=auth(keys["a"]), json={"type": "envelope.sent"})
    return await print_copy(client, keys["a"], "C1")


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data", b"x"),  # no boundary
    ("multipart/form-data; boundary=zzz",
     b'--zzz\r\nContent-Disposition: form-data; name="access_code"\r\n\r\nX'),  # cut off
    ("application/x-www-form-urlencoded; charset=bogus", b"access_code=x"),  # unknown charset
])
async def test_a_malformed_access_code_form_is_400(client: TestClient[Any, Any], code_copy: str,
                                                   content_type: str, body: bytes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    r = await client.post(f"/v/{code_copy}/document", data=body, headers={"Content-Type": content_type})
    assert r.status == 400, await r.text()
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


# ---- headers on every answer, nothing of a refused request in the log -------------------------------------

async def test_redirects_carry_the_security_headers(client: TestClient[Any, Any], code_copy: str) -> None:
    for path, status in ((f"/v/{code_copy.lower()}", 301), (f"/lookup?code={code_copy}", 303)):
        r = await client.get(path, allow_redirects=False)
        assert r.status == status, path
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["Referrer-Policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path


async def test_a_request_the_parser_refuses_leaves_no_header_in_the_log(
        client: TestClient[Any, Any], keys: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + keys["a"].encode()
                 + b" " * 9000 + b"\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:80]
    text = "\n".join(rec.getMessage() + str(rec.exc_info or "") + (rec.exc_text or "") for rec in caplog.records)
    assert "refused a malformed HTTP request" in text
    assert keys["a"] not in text and keys["a"].split("_")[1] not in text, "a header value reached the log"


async def test_tsa_requests_are_rate_limited(aiohttp_client: Client, ledger: Ledger) -> None:
    client = await aiohttp_client(create_app(ledger, lookup_rate=0.1, lookup_burst=2))
    statuses = [(await client.post("/tsa", data=b"\x30\x00",
                                   headers={"Content-Type": "application/timestamp-query"})).status
                for _ in range(4)]
    assert statuses[:2] == [200, 200] and statuses[2:] == [429, 429], statuses
    r = await client.post("/tsa", data=b"", headers={"Content-Type": "application/timestamp-query"})
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1


# ---- a new ledger's folder, and its origin -----------------------------------------------------------------

def test_a_new_ledger_is_its_owners_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        led = Ledger.init(tmp_path / "home")
        led.append("t", b'{"type":"envelope.created","envelope":"E","title":"x"}')
        led.close()
    finally:
        os.umask(old)
    home = tmp_path / "home"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for p in home.iterdir():
        if p.name.startswith(DB_NAME):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    there = tmp_path / "there"  # a folder made before, with the usual mode
    there.mkdir(mode=0o755)
    Ledger.init(there).close()
    assert stat.S_IMODE(there.stat().st_mode) == 0o700


def test_init_with_a_bad_origin_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match="cannot name a log"):
        Ledger.init(tmp_path / "home", origin="has space")
    assert list((tmp_path / "home").iterdir()) == []
    Ledger.init(tmp_path / "home").close()  # and the folder is still good for a ledger


def test_a_changed_origin_is_refused_at_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    cfg = home / "config.toml"
    original = load_config(home).origin
    cfg.write_text(cfg.read_text().replace(f'"{original}"', '"other.example/log"'))
    with pytest.raises(RefusedError, match="origin never changes"):
        Ledger.open(home)
    cfg.write_text(cfg.read_text().replace('"other.example/log"', f'"{original}"'))
    Ledger.open(home).close()


def test_init_refuses_a_folder_with_a_key_but_no_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    (home / DB_NAME).unlink()
    with pytest.raises(RefusedError, match="log.key exists but no ledger database"):
        Ledger.init(home)


async def test_every_field_of_an_acknowledgement_is_in_the_openapi_document(
        client: TestClient[Any, Any], keys: dict[str, str]) -> None:
    documented = set((await (await client.get("/api/v1/openapi.json")).json())
                     ["components"]["schemas"]["Ack"]["properties"])
    answers = []
    r = await client.post("/api/v1/envelopes", json={"envelope": "O1", "title": "x"}, headers=auth(keys["a"]))
    answers += (await r.json())["acks"]
    r = await upload(client, keys["a"], "O1", PDF, "document=main&name=c.pdf&download=code")
    answers += (await r.json())["acks"]
    r = await client.post("/api/v1/envelopes/O1/events", headers=auth(keys["a"]), json=[
        {"type": "party.added", "party": "p1", "role": "signer", "name": "Zhang San"}, {"type": "envelope.sent"}])
    answers += (await r.json())["acks"]
    r = await client.post("/api/v1/envelopes/O1/copies", json={"document": "main"}, headers=auth(keys["a"]))
    answers += (await r.json())["acks"]
    seen = set().union(*answers)
    assert {"access_code", "sha256", "size", "code", "qr_url", "code_grouped"} <= seen, seen
    assert seen <= documented, f"undocumented: {seen - documented}"


async def stall(client: TestClient[Any, Any], start: bytes) -> bytes:
    """Send the start of a request and then nothing: the answer, which comes all the same."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(start)
    await writer.drain()
    answer = b""
    while b"request_timeout" not in answer:
        part = await asyncio.wait_for(reader.read(4096), 10)
        assert part, answer
        answer += part
    writer.close()
    return answer


async def test_a_client_that_stalls_mid_body_gets_408(client: TestClient[Any, Any], ledger: Ledger,
                                                      keys: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from portal import body

    monkeypatch.setattr(body, "IDLE_S", 0.3)
    await client.post("/api/v1/envelopes", json={"envelope": "T1", "title": "x"}, headers=auth(keys["a"]))
    for path, ctype, start in (("/api/v1/events", "application/json", b'{"type":'),
                               ("/api/v1/envelopes/T1/documents?document=main&name=c.pdf", "application/pdf", PDF[:100])):
        answer = await stall(client, f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {keys['a']}\r\n"
                                     f"Content-Type: {ctype}\r\nContent-Length: 100000\r\n\r\n".encode() + start)
        assert answer.split(b"\r\n", 1)[0].endswith(b" 408 Request Timeout"), answer[:200]
        assert b'"request_timeout"' in answer
    assert blobs(ledger) == set(), "the stalled upload's temporary file is gone"


def _slow_pdf(free_entries: int) -> bytes:
    """A valid one-page PDF whose cross-reference table also lists many free entries: cheap to send,
    slow for a reader (about 3 s a 10 MB file on this machine)."""
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                           PAGE], 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    size = 4 + free_entries
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"0000000000 00000 f \n" * free_entries
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)


async def test_a_pdf_that_takes_too_long_to_check_is_refused_and_the_next_upload_is_checked(
        client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str]) -> None:
    from portal.keys import PDF_CHECKER

    checker = client.app[PDF_CHECKER]
    await client.post("/api/v1/envelopes", json={"envelope": "K1", "title": "x"}, headers=auth(keys["a"]))
    r = await upload(client, keys["a"], "K1", _slow_pdf(20))  # the reader's answer is checked: it reads it
    assert r.status == 201, await r.text()
    await client.post("/api/v1/envelopes", json={"envelope": "K2", "title": "x"}, headers=auth(keys["a"]))
    first = checker._proc
    checker.timeout_s = 0.3
    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await upload(client, keys["a"], "K2", _slow_pdf(400_000))  # about 8 MB
    assert r.status == 422, await r.text()
    body = await r.json()
    assert_error(body, "not_pdf")
    assert "could not be checked within 0.3 s" in body["error"]["message"]
    assert loop.time() - started < 3, "the portal waited for the reader"
    assert first is not None and first.returncode is not None, "the busy checker was stopped"
    checker.timeout_s = None
    r = await upload(client, keys["a"], "K2", PDF)  # a new checker takes the next upload
    assert r.status == 201, await r.text()
    assert checker._proc is not None and checker._proc is not first
    assert len(blobs(ledger)) == 2, "the refused upload left nothing behind"


async def test_a_checker_that_died_while_idle_is_started_again(client: TestClient[Any, Any],
                                                             keys: dict[str, str]) -> None:
    from portal.keys import PDF_CHECKER

    checker = client.app[PDF_CHECKER]
    for n in (1, 2, 3):
        await client.post("/api/v1/envelopes", json={"envelope": f"D{n}", "title": "x"}, headers=auth(keys["a"]))
        r = await upload(client, keys["a"], f"D{n}", PDF)
        assert r.status == 201, await r.text()
        proc = checker._proc
        assert proc is not None
        proc.kill()  # gone between two uploads (an operator, the OOM killer)
        if n == 2:
            await proc.wait()  # and noticed, or not, before the next upload


async def test_a_stalled_access_code_form_gets_408(client: TestClient[Any, Any], code_copy: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from portal import body

    monkeypatch.setattr(body, "IDLE_S", 0.3)
    answer = await stall(client, f"POST /v/{code_copy}/document HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
                                 "access_cod".encode())
    assert answer.split(b"\r\n", 1)[0].endswith(b" 408 Request Timeout"), answer[:200]


@pytest.mark.parametrize("url", ["example.com", "ftp://example.com", "https://user:pw@example.com",
                                 "https://example.com/?a=1", "https://example.com/#x", "https://example.com:99999",
                                 "https://", "https://verify.exa\tmple.com", "https://verify example.com"])
def test_a_public_url_that_cannot_head_a_qr_url_is_refused(tmp_path: Path, url: str) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace('public_url = "http://127.0.0.1:8080"', f"public_url = {json.dumps(url)}"))
    with pytest.raises(LedgerError, match="public_url") as e:
        load_config(home)
    assert e.value.code == "bad_config"


def test_serve_warns_when_qr_codes_name_a_local_port_it_does_not_listen_on() -> None:
    assert public_url_elsewhere("http://127.0.0.1:8080", "127.0.0.1", 8080) is None
    assert "port 18555" in (public_url_elsewhere("http://127.0.0.1:8080", "127.0.0.1", 18555) or "")
    assert public_url_elsewhere("https://verify.example.com", "127.0.0.1", 8080) is None, "a proxy's address"
    assert "listens on 0.0.0.0" in (public_url_elsewhere("http://127.0.0.1:8080", "0.0.0.0", 8080) or "")


@pytest.mark.parametrize("url, shown", [("https://Verify.Example.com:443/", "verify.example.com"),
                                        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
                                        ("http://[::1]:80/portal", "[::1]")])
def test_the_page_names_the_public_url_as_an_address_bar_shows_it(url: str, shown: str) -> None:
    assert Config(public_url=url).public_host == shown


# ---- whose fault: a full disk and a failing checker are 503, a file the reader cannot open is 422 ---------

async def test_an_upload_the_disk_cannot_hold_is_503_and_leaves_nothing(
        client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str]) -> None:
    """On a real full disk (a small tmpfs holds the store): too large for the volume, or a volume already
    full, the upload is a 503 storage error, with no temporary file or part of it left; with space back,
    the same upload is stored."""
    from tests.storage.tmpfs import fill, tmpfs

    await client.post("/api/v1/envelopes", json={"envelope": "F1", "title": "x"}, headers=auth(keys["a"]))
    with tmpfs(ledger.blobs.root, "256k"):
        r = await upload(client, keys["a"], "F1", b"%PDF-1.7\n" + b"0" * (1 << 20))  # four times the volume
        assert r.status == 503, await r.text()
        body = await r.json()
        assert_error(body, "storage_error")
        assert "nothing was stored" in body["error"]["message"]
        assert blobs(ledger) == set(), "the upload left a file behind"
        filler = fill(ledger.blobs.root)
        r = await upload(client, keys["a"], "F1", PDF)  # fits in a write buffer: fails when flushed
        assert r.status == 503, await r.text()
        assert_error(await r.json(), "storage_error")
        assert blobs(ledger) == {filler.name}, "the upload left a file behind"
        filler.unlink()
        r = await upload(client, keys["a"], "F1", PDF)
        assert r.status == 201, await r.text()
        assert blobs(ledger) == {PDF_SHA}


# 27 bytes the reader seeks before the start of (an OSError of the reader, on these bytes), and others
UNREADABLE = {
    "startxref -5": b"%PDF-1.4\nstartxref -5\n%%EOF",
    "startxref 0 after a trailer": b"%PDF-1.4\ntrailer<<>>\nstartxref 0\n%%EOF",
    "startxref -1 after a trailer with a root": b"%PDF-1.4\ntrailer<</Root 1 0 R>>\nstartxref -1\n%%EOF",
    "startxref past the end": b"%PDF-1.4\nstartxref 999999\n%%EOF",
    "startxref of 20 digits": b"%PDF-1.4\nstartxref 99999999999999999999\n%%EOF",
    "startxref beyond any file": b"%%PDF-1.4\nstartxref %d\n%%%%EOF" % ((1 << 62) + 1),
    "startxref at an object": PDF[: PDF.rindex(b"startxref")] + b"startxref\n9\n%%EOF\n",
    "half a PDF": PDF[: len(PDF) // 2],
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
async def test_a_pdf_the_reader_cannot_open_is_422_not_a_storage_error(
        client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str], kind: str) -> None:
    await client.post("/api/v1/envelopes", json={"envelope": "R1", "title": "x"}, headers=auth(keys["a"]))
    r = await upload(client, keys["a"], "R1", UNREADABLE[kind])
    assert r.status == 422, (kind, r.status, await r.text())
    body = await r.json()
    assert_error(body, "not_pdf")
    assert "not a readable PDF" in body["error"]["message"], body
    assert blobs(ledger) == set(), f"{kind}: a refused upload left a file behind"


def test_whatever_the_reader_makes_of_a_damaged_pdf_it_is_a_refusal(tmp_path: Path) -> None:
    """Any PDF cut short, with a byte changed, or with another `startxref`: the reader accepts it or the
    check refuses it (RefusedError, 422); never an OSError or another error that would be a 500 or 503."""
    from hypothesis import given
    from hypothesis import strategies as st

    from portal.pdfcheck import check_pdf

    path = tmp_path / "upload.pdf"
    tail = PDF.rindex(b"startxref")

    @given(st.one_of(
        st.integers(0, len(PDF)).map(lambda n: PDF[:n]),
        st.tuples(st.integers(0, len(PDF) - 1), st.integers(0, 255)).map(
            lambda p: PDF[: p[0]] + bytes([p[1]]) + PDF[p[0] + 1:]),
        st.integers(-(1 << 70), 1 << 70).map(lambda x: PDF[:tail] + b"startxref\n%d\n%%%%EOF\n" % x),
        st.binary(max_size=64).map(lambda b: b"%PDF-1.4\n" + b)))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            check_pdf(path)
        except RefusedError as e:
            assert e.code == "not_pdf" and e.status == 422

    check()


async def test_a_checker_that_cannot_start_or_exits_by_itself_is_503(
        client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker's own failures are this server's: 503, nothing stored. A file that gets the reader
    killed twice stays the file's fault (422); the next upload gets a working checker."""
    import sys

    from portal.keys import PDF_CHECKER

    checker = client.app[PDF_CHECKER]
    await client.post("/api/v1/envelopes", json={"envelope": "X1", "title": "x"}, headers=auth(keys["a"]))
    exits, killed = tmp_path / "exits", tmp_path / "killed-reader"
    exits.write_text("#!/bin/sh\nexit 3\n")  # a checker broken from the start
    killed.write_text("#!/bin/sh\nread line\nkill -KILL $$\n")  # a reader killed by the file it reads
    exits.chmod(0o755)
    killed.chmod(0o755)
    python = sys.executable
    for program, status, code, says in (
            (str(tmp_path / "no-such-python"), 503, "storage_error", "could not be started"),
            (str(exits), 503, "storage_error", "exited by itself (status 3)"),
            (str(killed), 422, "not_pdf", "killed (signal 9)")):
        monkeypatch.setattr(sys, "executable", program)
        r = await upload(client, keys["a"], "X1", PDF)
        assert r.status == status, (program, await r.text())
        body = await r.json()
        assert_error(body, code)
        assert says in body["error"]["message"], body
        assert blobs(ledger) == set(), f"{program}: the upload left a file behind"
    monkeypatch.setattr(sys, "executable", python)
    with pytest.raises(LedgerError) as info:  # the checker cannot read the stored upload
        await checker.check(tmp_path / "gone.pdf")
    assert info.value.status == 503 and "could not read the stored upload" in str(info.value)
    r = await upload(client, keys["a"], "X1", PDF)
    assert r.status == 201, await r.text()
