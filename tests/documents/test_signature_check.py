"""The portal's signature check of a PDF (`POST /check/signatures`, portal/pages/routes.py) over HTTP.

A ledger with its own seal CA (`<home>/seal`) seals a PDF, time-stamped by its local TSA; another PDF is
signed by a throw-away CA the ledger does not trust (tests/pki.py, as in test_pdfsig.py). The file is
checked in the checker process and never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from ledger.anchoring.tsa import LocalTsa
from ledger.documents.seal import LocalTsaTimeStamper, Sealer, seal_pdf
from ledger.documents.sealca import load_seal
from ledger.envelopes.core import Ledger, uploaded
from ledger.envelopes.events import parse_events
from portal.app import create_app
from portal.pages.i18n import TEXT
from tests.documents.test_pdfsig import Pki, add_content, encrypted_pdf, sign, unsigned_pdf

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
TENANT = "acme"
ORGANISATION = "某某科技有限公司"
PDF = {"Content-Type": "application/pdf"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class Files:
    def __init__(self, led: Ledger) -> None:
        self.pki = Pki()
        seal = load_seal(led.home / "seal")  # the platform's seal, made by `ledger init`
        stamper = LocalTsaTimeStamper(LocalTsa.load(led.home / "tsa"))
        self.original = unsigned_pdf("Contract 12: the parties agree.")
        self.sealed = seal_pdf(self.original, Sealer.from_local_seal(seal), timestamper=stamper, level="B-T")
        self.untrusted = sign(unsigned_pdf("Contract 13."), self.pki.signer(self.pki.alice))
        self.changed = add_content(self.sealed)


def register_signed(led: Ledger, original: bytes, signed: bytes) -> None:
    """An envelope whose party signed `signed`: its `party.signed` names that file's SHA-256."""
    sha, size = led.blobs.put(original)
    events = [
        {"type": "envelope.created", "envelope": "SEALED-1", "title": "Sealed contract"},
        {"type": "document.added", "envelope": "SEALED-1", "document": "main", "sha256": sha, "size": size,
         "name": "contract.pdf", "download": "none"},
        {"type": "party.added", "envelope": "SEALED-1", "party": "buyer", "role": "signer", "order": 1,
         "name": "Wang Wu"},
        {"type": "envelope.sent", "envelope": "SEALED-1"},
        {"type": "party.viewed", "envelope": "SEALED-1", "party": "buyer"},
        {"type": "party.authenticated", "envelope": "SEALED-1", "party": "buyer", "method": "sms"},
        {"type": "party.signed", "envelope": "SEALED-1", "party": "buyer", "channel": "app", "document": "main",
         "signed_sha256": hashlib.sha256(signed).hexdigest()},
    ]
    led.append(TENANT, [uploaded(e) if e.type == "document.added" else e for e in parse_events(events)])


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, Files]]:
    home = tmp_path_factory.mktemp("sigcheck") / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(f'organisation = "{ORGANISATION}"\n')
    led = Ledger.init(home)
    files = Files(led)
    register_signed(led, files.original, files.sealed)
    yield led, files
    led.close()


@pytest.fixture
async def client(aiohttp_client: Client, ledger: tuple[Ledger, Files]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(ledger[0], anchor=False))


def leftovers(led: Ledger) -> list[Path]:
    """Temporary files the check left in the blob store's folder."""
    return list(led.blobs.root.glob(".upload-*"))


async def check(client: TestClient[Any, Any], pdf: bytes, **headers: str) -> tuple[int, Any]:
    r = await client.post("/check/signatures", data=pdf, headers={**PDF, **headers})
    return r.status, await (r.json() if r.content_type == "application/json" else r.text())


async def test_a_sealed_time_stamped_pdf_is_trusted_intact_and_named(client: TestClient[Any, Any],
                                                                      ledger: tuple[Ledger, Files]) -> None:
    led, files = ledger
    status, body = await check(client, files.sealed)
    assert status == 200, body
    assert body["ok"] is True and body["sha256"] == hashlib.sha256(files.sealed).hexdigest()
    (s,) = body["signatures"]
    assert s["intact"] and s["trusted"] and not s["changed_after_signing"], s
    assert ORGANISATION in s["signer"], s["signer"]
    assert "not accredited" in s["issuer"] and int(s["serial"]) > 0
    assert s["timestamp_ok"] is True and s["tsa"] and s["tsa_time"], s
    assert body["registered"] == [{"kind": "signed", "document": 1, "party": 1}], "the whole file is the signed PDF"
    assert s["registered"] == [{"kind": "signed", "document": 1, "party": 1}], "and so is the signed revision"
    assert body["at"].endswith("Z")
    assert leftovers(led) == []
    assert not led.blobs.path(body["sha256"]).exists(), "the checked file is never stored"


async def test_a_signer_the_ledger_does_not_trust_is_intact_but_not_trusted(
        client: TestClient[Any, Any], ledger: tuple[Ledger, Files]) -> None:
    led, files = ledger
    status, body = await check(client, files.untrusted)
    assert status == 200 and body["ok"] is False
    (s,) = body["signatures"]
    assert s["intact"] and not s["trusted"] and s["signer"] == "Common Name: Alice Signer", s
    assert s["timestamp_ok"] is None and body["registered"] == [] and s["registered"] == []
    # the same root listed in signature_roots (a path relative to the ledger folder) is trusted
    (led.home / "roots").mkdir(exist_ok=True)
    (led.home / "roots" / "partner.pem").write_bytes(files.pki.root.pem)
    before = led.config
    led.config = before.replace(signature_roots=("roots/partner.pem",))
    try:
        status, body = await check(client, files.untrusted)
    finally:
        led.config = before
    assert status == 200 and body["ok"] is True and body["signatures"][0]["trusted"], body


async def test_a_pdf_changed_after_sealing_says_so_and_names_the_signed_revision(
        client: TestClient[Any, Any], ledger: tuple[Ledger, Files]) -> None:
    led, files = ledger
    status, body = await check(client, files.changed)
    assert status == 200 and body["ok"] is False
    (s,) = body["signatures"]
    assert s["intact"] and s["trusted"] and s["changed_after_signing"], s
    assert body["registered"] == [], "the changed file is no registered version"
    assert s["revision_sha256"] == hashlib.sha256(files.sealed).hexdigest()
    assert s["registered"] == [{"kind": "signed", "document": 1, "party": 1}], "what was signed is still named"
    assert leftovers(led) == []


async def test_an_unsigned_pdf_has_no_signatures(client: TestClient[Any, Any], ledger: tuple[Ledger, Files]) -> None:
    led, files = ledger
    status, body = await check(client, files.original)
    assert status == 200 and body["ok"] is False and body["signatures"] == []
    assert body["registered"] == [{"kind": "original", "document": 1}]
    assert body["verdict"].startswith("NOT VERIFIED")


@pytest.mark.parametrize(("what", "status", "code"), [
    ("text", 422, "not_pdf"), ("encrypted", 422, "not_pdf"), ("truncated", 422, "not_pdf"),
    ("oversized", 413, "too_large"), ("wrong type", 415, "unsupported_media_type"),
])
async def test_refusals_are_clear_4xx_errors_and_leave_nothing(
        client: TestClient[Any, Any], ledger: tuple[Ledger, Files], what: str, status: int, code: str) -> None:
    led, files = ledger
    before = led.config
    body, headers = {
        "text": (b"Dear Sir, this is no PDF.\n" * 100, PDF),
        "encrypted": (encrypted_pdf(), PDF),
        "truncated": (files.sealed[: len(files.sealed) // 3], PDF),
        "oversized": (files.sealed, PDF),
        "wrong type": (files.sealed, {"Content-Type": "text/plain"}),
    }[what]
    led.blobs.max_size = len(files.sealed) - 1 if what == "oversized" else before.max_document_bytes
    try:
        r = await client.post("/check/signatures", data=body, headers=headers)
        answer = await r.json()
    finally:
        led.blobs.max_size = before.max_document_bytes
    assert r.status == status and answer["error"]["code"] == code, answer
    assert leftovers(led) == []
    if what == "encrypted":
        assert "encrypted" in answer["error"]["message"]


async def test_the_temporary_file_is_there_only_during_the_check(
        client: TestClient[Any, Any], ledger: tuple[Ledger, Files], monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker reads the file from the blob store's folder; when it fails, the file goes all the same."""
    led, files = ledger
    seen: list[bytes] = []

    async def failing(self: Any, path: Path, *args: Any) -> Any:
        seen.append(path.read_bytes())
        assert path.parent == led.blobs.root and path.name.startswith(".upload-")
        raise RuntimeError("the checker broke")

    monkeypatch.setattr("portal.pdfcheck.PdfChecker.signatures", failing)
    r = await client.post("/check/signatures", data=files.sealed, headers=PDF)
    assert r.status == 500
    assert seen == [files.sealed], "the checker was given the whole file"
    assert leftovers(led) == [], "the temporary file is removed even when the check fails"


async def test_a_form_without_javascript_gets_a_page_in_the_readers_language(
        client: TestClient[Any, Any], ledger: tuple[Ledger, Files]) -> None:
    led, files = ledger
    for lang in ("zh-CN", "en"):
        t = TEXT[lang]
        form = aiohttp.FormData()
        form.add_field("pdf", files.sealed, filename="contract.pdf", content_type="application/pdf")
        r = await client.post(f"/check/signatures?lang={lang}", data=form, headers=BROWSER)
        html = await r.text()
        assert r.status == 200 and r.content_type == "text/html", html
        assert r.headers["Content-Language"] == lang and r.headers["Cache-Control"] == "no-store"
        assert f'<html lang="{lang}">' in html and t["sig_all_ok"] in html
        assert t["file_kind_signed"].format(n=1) in html and ORGANISATION in html
        assert 'data-ok="true"' in html and t["sig_not_ok"] not in html
    r = await client.post("/check/signatures", data=files.untrusted, headers={**PDF, **BROWSER, "Accept-Language": "en"})
    html = await r.text()
    assert r.status == 200 and TEXT["en"]["sig_not_ok"] in html and 'data-ok="false"' in html
    assert TEXT["en"]["sig_not_registered"] in html
    assert leftovers(led) == []


async def test_a_refusal_to_a_browser_is_a_page_in_its_language(client: TestClient[Any, Any],
                                                                 ledger: tuple[Ledger, Files]) -> None:
    led, _ = ledger
    r = await client.post("/check/signatures", data=b"no pdf here" * 10,
                          headers={**PDF, **BROWSER, "Accept-Language": "zh-CN"})
    html = await r.text()
    assert r.status == 422 and r.content_type == "text/html", html
    assert TEXT["zh-CN"]["error_not_pdf"] in html and "no pdf here" not in html
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.7", filename="x.pdf", content_type="application/pdf")
    r = await client.post("/check/signatures?lang=en", data=form, headers=BROWSER)
    assert r.status == 400 and TEXT["en"]["error_bad_form"] in await r.text()
    assert leftovers(led) == []


async def test_the_check_is_rate_limited(aiohttp_client: Client, ledger: tuple[Ledger, Files]) -> None:
    led, files = ledger
    client = await aiohttp_client(create_app(led, anchor=False, lookup_rate=0.001, lookup_burst=1))
    assert (await client.post("/check/signatures", data=files.original, headers=PDF)).status == 200
    r = await client.post("/check/signatures", data=files.original, headers=PDF)
    assert r.status == 429 and (await r.json())["error"]["code"] == "rate_limited"
    assert "Retry-After" in r.headers


async def test_the_home_page_offers_the_check_with_and_without_javascript(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/?lang=zh-CN")).text()
    assert 'action="/check/signatures?lang=zh-CN"' in html and 'enctype="multipart/form-data"' in html
    assert 'name="pdf"' in html and TEXT["zh-CN"]["sig_check"] in html and TEXT["zh-CN"]["sig_check_help"] in html
