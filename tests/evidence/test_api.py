"""`GET /api/v1/envelopes/{ref}/evidence`: the `export` scope, tenant isolation, the streamed zip that verifies,
and the `evidence.exported` event it records."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import demo_pdf
from portal.api.openapi import DOCUMENT
from portal.app import create_app
from tests.evidence.conftest import verify
from verifier.evidence.manifest import parse_manifest

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
PDF = demo_pdf("API evidence", "A document uploaded through the API, then exported.")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(ledger: Ledger) -> dict[str, str]:
    return {"write": create_key(ledger.log, "tenant-a", ["append", "read"]),
            "export": create_key(ledger.log, "tenant-a", ["export"]),
            "other": create_key(ledger.log, "tenant-b", ["export", "append"])}


@pytest.mark.parametrize("anchoring", [True, False])
async def test_the_evidence_route(aiohttp_client: Client, ledger: Ledger, keys: dict[str, str],
                                  anchoring: bool) -> None:
    """With the server's anchoring loop, and without one (the route anchors with a short-lived anchorer)."""
    client = await aiohttp_client(create_app(ledger, anchor=anchoring))
    w = auth(keys["write"])
    assert (await client.post("/api/v1/envelopes", json={"envelope": "E1", "title": "Lease"}, headers=w)).status == 201
    r = await client.post("/api/v1/envelopes/E1/documents?document=main&name=lease.pdf&download=public", data=PDF,
                          headers={**w, "Content-Type": "application/pdf"})
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/envelopes/E1/parties", headers=w,
                          json={"party": "p1", "role": "signer", "name": "Zhang San"})
    assert r.status == 201
    r = await client.post("/api/v1/envelopes/E1/events", headers=w, json=[{"type": "envelope.sent"}])
    assert r.status == 201
    url = "/api/v1/envelopes/E1/evidence"
    # no key, a key without the scope, another tenant's key
    r = await client.get(url)
    assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    r = await client.get(url, headers=w)
    assert r.status == 403 and "export" in (await r.json())["error"]["message"]
    r = await client.get(url, headers=auth(keys["other"]))
    assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_envelope"
    r = await client.get(url + "?lang=fr", headers=auth(keys["export"]))
    assert r.status == 400 and (await r.json())["error"]["code"] == "bad_lang"
    r = await client.get(url + "?language=en", headers=auth(keys["export"]))
    assert r.status == 400 and (await r.json())["error"]["code"] == "bad_query"
    # the bundle, streamed
    r = await client.get(url + "?lang=en", headers=auth(keys["export"]))
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == "application/zip"
    assert r.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.headers
    assert 'filename="E1-evidence.zip"' in r.headers["Content-Disposition"]
    assert r.headers["Ledger-Self-Check"] == "passed"
    index = int(r.headers["Ledger-Index"])
    data = await r.read()
    rep = verify(data)
    assert rep.ok, [c.line() for c in rep.failures()]
    m = parse_manifest(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    assert m.interim and m.envelope.status == "sent" and m.envelope.tenant == "tenant-a"
    assert any(v.file and v.sha256 == hashlib.sha256(PDF).hexdigest() for d in m.documents for v in d.versions)
    # the export is on the envelope's record, and in the bundle
    r = await client.get("/api/v1/envelopes/E1/events", headers=w)
    events = (await r.json())["events"]
    assert events[-1]["type"] == "evidence.exported" and events[-1]["index"] == index == m.entries[-1].index
    # refused requests logged nothing: one export only
    assert [e["type"] for e in events].count("evidence.exported") == 1


def test_the_route_is_in_the_openapi_document() -> None:
    op = DOCUMENT["paths"]["/api/v1/envelopes/{ref}/evidence"]["get"]
    assert op["security"] == [{"apiKey": ["export"]}] and "application/zip" in op["responses"]["200"]["content"]
