"""The JSON API /api/v1: authorisation matrix, tenant isolation on every route, one error shape,
durable acknowledgements, PDF uploads, and an OpenAPI document that matches the routes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import demo_pdf
from portal.api.openapi import DOCUMENT
from portal.app import create_app

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
PDF = demo_pdf("API test", "A document uploaded through the API.")
PDF_SHA = hashlib.sha256(PDF).hexdigest()


@pytest.fixture
def keys(ledger: Ledger) -> dict[str, str]:
    c = ledger.log
    return {
        "a_append": create_key(c, "tenant-a", ["append", "read"]),
        "a_read": create_key(c, "tenant-a", ["read"]),
        "a_export": create_key(c, "tenant-a", ["export"]),
        "b_admin": create_key(c, "tenant-b", ["admin"]),
    }


@pytest.fixture
async def client(aiohttp_client: Client, ledger: Ledger) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(ledger))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def setup_envelope(client: TestClient[Any, Any], key: str, ref: str = "E1") -> None:
    r = await client.post("/api/v1/envelopes", json={"envelope": ref, "title": "Lease"}, headers=auth(key))
    assert r.status == 201, await r.text()
    r = await client.post(f"/api/v1/envelopes/{ref}/documents?document=main&name=lease.pdf&download=public",
                          data=PDF, headers={**auth(key), "Content-Type": "application/pdf"})
    assert r.status == 201, await r.text()
    assert (await r.json())["acks"][0]["sha256"] == PDF_SHA
    r = await client.post(f"/api/v1/envelopes/{ref}/parties", headers=auth(key),
                          json={"party": "p1", "role": "signer", "name": "Zhang San"})
    assert r.status == 201, await r.text()
    r = await client.post(f"/api/v1/envelopes/{ref}/events", headers=auth(key), json=[
        {"type": "envelope.sent"},
        {"type": "party.authenticated", "party": "p1", "method": "face"},
        {"type": "party.signed", "party": "p1", "channel": "app", "document": "main", "signed_sha256": PDF_SHA},
        {"type": "envelope.completed"}])
    assert r.status == 201, await r.text()


def assert_error(body: Any, code: str | None = None) -> None:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body


async def test_write_is_acknowledged_durably(client: TestClient[Any, Any], ledger: Ledger,
                                             keys: dict[str, str]) -> None:
    await setup_envelope(client, keys["a_append"])
    r = await client.post("/api/v1/envelopes/E1/copies", json={"document": "main"}, headers=auth(keys["a_append"]))
    (ack,) = (await r.json())["acks"]  # every write answers {"acks": [...]}
    assert r.status == 201
    assert ack["checkpoint_size"] == ledger.log.size and ack["index"] == ledger.log.size - 1
    assert ack["leaf_hash"] == hashlib.sha256(b"\x00" + ledger.log.entry(ack["index"])).hexdigest()
    assert "#k=" in ack["qr_url"] and f"d={PDF_SHA[:32]}" in ack["qr_url"]
    r = await client.get("/api/v1/envelopes/E1", headers=auth(keys["a_read"]))
    assert (await r.json())["status"] == "completed"


@pytest.mark.parametrize("method, path, scope", [
    ("POST", "/api/v1/events", "append"),
    ("POST", "/api/v1/envelopes", "append"),
    ("GET", "/api/v1/envelopes/E1", "read"),
    ("POST", "/api/v1/envelopes/E1/events", "append"),
    ("POST", "/api/v1/envelopes/E1/parties", "append"),
    ("POST", "/api/v1/envelopes/E1/copies", "append"),
    ("POST", "/api/v1/envelopes/E1/documents?document=d2&name=x.pdf", "append"),
    ("GET", "/api/v1/entries/0/proof", "read"),
])
async def test_authorisation_matrix(client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str],
                                    method: str, path: str, scope: str) -> None:
    """No key, a bad key, a revoked key and a key without the scope are refused; nothing is written."""
    await setup_envelope(client, keys["a_append"])
    size = ledger.log.size
    body = json.dumps({"type": "envelope.sent", "envelope": "E1"}).encode()
    for headers, status, code in [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer el_0000000000000000_" + "A" * 43}, 401, "unauthorized"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthorized"),
        (auth(keys["a_export"]), 403, "forbidden"),
        (auth(keys["a_read"] if scope == "append" else keys["a_export"]), 403, "forbidden"),
    ]:
        r = await client.request(method, path, data=body, headers={**headers, "Content-Type": "application/json"})
        assert r.status == status, (path, headers, await r.text())
        assert_error(await r.json(), code)
        if status == 401:
            assert r.headers["WWW-Authenticate"].startswith("Bearer "), "a 401 names the scheme it wants"
    assert ledger.log.size == size


@pytest.mark.parametrize("method, path, payload", [
    ("GET", "/api/v1/envelopes/E1", None),
    ("POST", "/api/v1/envelopes/E1/events", {"type": "envelope.withdrawn"}),
    ("POST", "/api/v1/envelopes/E1/parties", {"party": "x", "role": "cc", "name": "Intruder"}),
    ("POST", "/api/v1/envelopes/E1/copies", {"document": "main"}),
    ("POST", "/api/v1/events", {"type": "void.requested", "envelope": "E1", "party": "p1"}),
    ("GET", "/api/v1/entries/0/proof", None),
])
async def test_tenants_never_see_each_other(client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str],
                                            method: str, path: str, payload: Any) -> None:
    """Tenant B, even with the admin scope, cannot read or change tenant A's envelope on any route."""
    await setup_envelope(client, keys["a_append"])
    size = ledger.log.size
    r = await client.request(method, path, json=payload, headers=auth(keys["b_admin"]))
    assert r.status == 404, await r.text()
    assert_error(await r.json())
    assert "Lease" not in await r.text()
    assert ledger.log.size == size


async def test_upload_refuses_non_pdf_oversized_and_wrong_type(client: TestClient[Any, Any], ledger: Ledger,
                                                               keys: dict[str, str]) -> None:
    h = auth(keys["a_append"])
    await client.post("/api/v1/envelopes", json={"envelope": "U1", "title": "t"}, headers=h)
    size = ledger.log.size
    url = "/api/v1/envelopes/U1/documents?document=d&name=n.pdf"
    r = await client.post(url, data=b"hello", headers={**h, "Content-Type": "application/pdf"})
    assert r.status == 422
    assert_error(await r.json(), "not_pdf")
    r = await client.post(url, data=b"%PDF-1.7\ngarbage", headers={**h, "Content-Type": "application/pdf"})
    assert r.status == 422
    assert_error(await r.json(), "not_pdf")
    r = await client.post(url, data=PDF, headers={**h, "Content-Type": "text/plain"})
    assert r.status == 415
    big = b"%PDF-1.7\n" + b"0" * (ledger.config.max_document_bytes + 1)
    r = await client.post(url, data=big, headers={**h, "Content-Type": "application/pdf"})
    assert r.status == 413
    assert_error(await r.json())
    assert ledger.log.size == size
    assert not list((ledger.home / "blobs").glob(".upload-*")), "aborted uploads leave no temp files"


@pytest.mark.parametrize("body, status", [
    (b"{", 400), (b'{"type": "envelope.created", "envelope": "X", "title": 1.5}', 422), (b"[]", 422),
    (b'{"type": "nope", "envelope": "X"}', 422), (b'\xff', 400), (b'{"a":1,"a":2}', 400),
])
async def test_bad_bodies_get_the_error_shape_never_500(client: TestClient[Any, Any], keys: dict[str, str],
                                                        body: bytes, status: int) -> None:
    r = await client.post("/api/v1/events", data=body,
                          headers={**auth(keys["a_append"]), "Content-Type": "application/json"})
    assert r.status in (status, 400, 422), await r.text()
    assert r.status < 500
    assert_error(await r.json())


async def test_lifecycle_refusal_is_409(client: TestClient[Any, Any], keys: dict[str, str]) -> None:
    await setup_envelope(client, keys["a_append"])
    r = await client.post("/api/v1/envelopes/E1/events", json={"type": "envelope.withdrawn"},
                          headers=auth(keys["a_append"]))
    assert r.status == 409
    assert_error(await r.json(), "withdraw_after_completion")


async def test_openapi_matches_the_routes(client: TestClient[Any, Any]) -> None:
    r = await client.get("/api/v1/openapi.json")
    doc = await r.json()
    assert doc == json.loads(json.dumps(DOCUMENT)) and doc["openapi"].startswith("3.1")
    served = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/api/v1") and route.method != "HEAD":
            served.add((route.method.lower(), path.replace("{index:\\d{1,19}}", "{index}")))
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented


async def test_proof_route_returns_a_verifiable_tlog_proof(client: TestClient[Any, Any], ledger: Ledger,
                                                           keys: dict[str, str]) -> None:
    from verifier.note import Ed25519Verifier
    from verifier.tlogproof import verify_tlog_proof

    await setup_envelope(client, keys["a_append"])
    r = await client.get("/api/v1/entries/2/proof", headers=auth(keys["a_read"]))
    assert r.status == 200
    verify_tlog_proof(await r.text(), ledger.log.entry(2), Ed25519Verifier.from_string(ledger.verifier_key))


async def test_a_revoked_key_is_refused(client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.access.apikeys import revoke_key
    from portal.api import routes as api

    monkeypatch.setattr(api, "KEY_CACHE_S", 0.0)  # in service a revocation takes effect within 5 s
    r = await client.get("/api/v1/envelopes/none", headers=auth(keys["a_read"]))
    assert r.status == 404
    revoke_key(ledger.log, keys["a_read"].split("_")[1])
    r = await client.get("/api/v1/envelopes/none", headers=auth(keys["a_read"]))
    assert r.status == 401
    assert_error(await r.json(), "unauthorized")
