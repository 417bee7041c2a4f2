"""The API a signing platform's backend needs: reading back its envelopes, timelines, documents and
parties by its own references, proofs with their entries and trusted time, one answer shape for every
write, limits per API key, and retries made safe by an Idempotency-Key; and every answer, read or
refused, valid against the OpenAPI document the server publishes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from ledger.access.apikeys import create_key
from ledger.anchoring.anchor import Anchorer, clients_for
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import demo_pdf
from portal.api.openapi import DOCUMENT
from portal.app import create_app
from tests.browser_util import BIN, free_port, start_serve, stop_serve
from tests.conftest import init_database
from verifier.anchored import verify_anchored
from verifier.merkle import leaf_hash
from verifier.note import Ed25519Verifier
from verifier.tlogproof import verify_tlog_proof

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
PDF = demo_pdf("Platform test", "A document uploaded through the API.")
PDF_SHA = hashlib.sha256(PDF).hexdigest()


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def schema_of(path: str, method: str, status: int, content: str = "application/json") -> dict[str, Any]:
    """The schema the OpenAPI document gives an answer, with the document's components to resolve $refs."""
    responses = DOCUMENT["paths"][path][method]["responses"]
    schema = responses[str(status)]["content"][content]["schema"]
    return {**schema, "components": DOCUMENT["components"]}


async def checked(r: aiohttp.ClientResponse, path: str, method: str = "get") -> Any:
    """The answer's JSON, after validating it against the OpenAPI document (errors against Error)."""
    body = await r.json()
    Draft202012Validator(schema_of(path, method, r.status)).validate(body)
    return body


@pytest.fixture
def keys(ledger: Ledger) -> dict[str, str]:
    return {"a": create_key(ledger.log, "tenant-a", ["append", "read"]),
            "b": create_key(ledger.log, "tenant-b", ["append", "read"])}


@pytest.fixture
async def client(aiohttp_client: Client, ledger: Ledger) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(ledger, anchor=False))


async def lifecycle(client: TestClient[Any, Any], key: str, ref: str, *, complete: bool = True) -> None:
    """An envelope through the API, one route of each kind, each answer checked against the document."""
    r = await client.post("/api/v1/envelopes", json={"envelope": ref, "title": "Lease"}, headers=auth(key))
    assert r.status == 201 and len((await checked(r, "/api/v1/envelopes", "post"))["acks"]) == 1
    r = await client.post(f"/api/v1/envelopes/{ref}/documents?document=main&name=lease.pdf&download=code",
                          data=PDF, headers=auth(key, **{"Content-Type": "application/pdf"}))
    (ack,) = (await checked(r, "/api/v1/envelopes/{ref}/documents", "post"))["acks"]
    assert ack["sha256"] == PDF_SHA and ack["size"] == len(PDF) and ack["access_code"]
    for party, role, kind in (("lessor", "signer", "organization"), ("lessee", "signer", "person")):
        r = await client.post(f"/api/v1/envelopes/{ref}/parties", headers=auth(key), json={
            "party": party, "role": role, "name": f"Name of {party}", "kind": kind, "contact": "13800000000"})
        assert r.status == 201, await r.text()
        await checked(r, "/api/v1/envelopes/{ref}/parties", "post")
    events: list[dict[str, Any]] = [{"type": "envelope.sent"}]
    for party in ("lessor", "lessee") if complete else ("lessor",):
        events += [{"type": "party.authenticated", "party": party, "method": "face"},
                   {"type": "party.signed", "party": party, "channel": "app", "document": "main",
                    "signed_sha256": hashlib.sha256(party.encode()).hexdigest()}]
    if complete:
        events.append({"type": "envelope.completed"})
    r = await client.post(f"/api/v1/envelopes/{ref}/events", headers=auth(key), json=events)
    assert r.status == 201, await r.text()
    await checked(r, "/api/v1/envelopes/{ref}/events", "post")
    if complete:
        r = await client.post(f"/api/v1/envelopes/{ref}/copies", headers=auth(key), json={"document": "main"})
        (ack,) = (await checked(r, "/api/v1/envelopes/{ref}/copies", "post"))["acks"]
        assert "#k=" in ack["qr_url"] and ack["code_grouped"]


async def test_every_write_answers_acks_in_one_shape(client: TestClient[Any, Any], keys: dict[str, str]) -> None:
    await lifecycle(client, keys["a"], "E1")
    r = await client.post("/api/v1/events", headers=auth(keys["a"]), json={"type": "envelope.created",
                                                                           "envelope": "E2", "title": "t"})
    assert set(await checked(r, "/api/v1/events", "post")) == {"acks"}


async def test_list_envelopes_filters_and_pages(client: TestClient[Any, Any], ledger: Ledger,
                                                keys: dict[str, str]) -> None:
    for ref in ("L1", "L2", "L3"):
        await lifecycle(client, keys["a"], ref)
    await lifecycle(client, keys["a"], "L4", complete=False)
    await lifecycle(client, keys["b"], "B1")  # another tenant's: never listed for tenant-a
    r = await client.get("/api/v1/envelopes", headers=auth(keys["a"]))
    page = await checked(r, "/api/v1/envelopes")
    assert [e["envelope"] for e in page["envelopes"]] == ["L1", "L2", "L3", "L4"] and page["next_cursor"] is None
    r = await client.get("/api/v1/envelopes?status=sent", headers=auth(keys["a"]))
    assert [e["envelope"] for e in (await checked(r, "/api/v1/envelopes"))["envelopes"]] == ["L4"]
    r = await client.get("/api/v1/envelopes?status=completed,sent&limit=2", headers=auth(keys["a"]))
    seen, page = [], await checked(r, "/api/v1/envelopes")
    while True:
        seen += [e["envelope"] for e in page["envelopes"]]
        if page["next_cursor"] is None:
            break
        assert len(page["envelopes"]) == 2
        r = await client.get(f"/api/v1/envelopes?status=completed,sent&limit=2&cursor={page['next_cursor']}",
                             headers=auth(keys["a"]))
        page = await checked(r, "/api/v1/envelopes")
    assert seen == ["L1", "L2", "L3", "L4"]
    created = {e["envelope"]: e["created"] for e in (await (await client.get(
        "/api/v1/envelopes", headers=auth(keys["a"]))).json())["envelopes"]}
    r = await client.get(f"/api/v1/envelopes?created_after={created['L3']}", headers=auth(keys["a"]))
    assert [e["envelope"] for e in (await r.json())["envelopes"]] == ["L3", "L4"]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await client.get("/api/v1/envelopes", params={"created_before": created["L2"]}, headers=auth(keys["a"]))
    assert [e["envelope"] for e in (await r.json())["envelopes"]] == ["L1"]
    r = await client.get("/api/v1/envelopes", params={"created_after": later}, headers=auth(keys["a"]))
    assert (await r.json())["envelopes"] == []
    for query, code in (("status=finished", "bad_status"), ("limit=0", "bad_limit"), ("limit=1001", "bad_limit"),
                        ("cursor=xyz", "bad_cursor"), ("created_after=yesterday", "bad_time"),
                        ("created_after=2026-01-01T00:00:00", "bad_time"), ("stat=sent", "bad_query"),
                        ("limit=1&limit=2", "bad_query")):
        r = await client.get(f"/api/v1/envelopes?{query}", headers=auth(keys["a"]))
        assert r.status == 400 and (await checked(r, "/api/v1/envelopes"))["error"]["code"] == code, query


async def test_an_envelopes_timeline_with_indexes_and_leaf_hashes(client: TestClient[Any, Any], ledger: Ledger,
                                                                  keys: dict[str, str]) -> None:
    await lifecycle(client, keys["a"], "T1")
    events, cursor = [], ""
    while True:
        r = await client.get(f"/api/v1/envelopes/T1/events?limit=3{cursor}", headers=auth(keys["a"]))
        page = await checked(r, "/api/v1/envelopes/{ref}/events")
        events += page["events"]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    info = ledger.envelope("tenant-a", "T1")
    assert [e["seq"] for e in events] == list(range(info["events"]))
    for e in events:
        raw = ledger.log.entry(e["index"])
        assert e["leaf_hash"] == leaf_hash(raw).hex() and json.loads(raw)["type"] == e["type"]
    signed = [e for e in events if e["type"] == "party.signed"]
    assert [e["refs"] for e in signed] == [{"party": "lessor", "document": "main"},
                                           {"party": "lessee", "document": "main"}]
    r = await client.get("/api/v1/envelopes/T1/events", headers=auth(keys["b"]))
    assert r.status == 404, "another tenant's envelope is unknown"
    r = await client.get("/api/v1/envelopes/T1/events?cursor=-1", headers=auth(keys["a"]))
    assert r.status == 400


async def test_documents_and_parties_by_the_platforms_references(client: TestClient[Any, Any],
                                                                 keys: dict[str, str]) -> None:
    await lifecycle(client, keys["a"], "D1")
    r = await client.get("/api/v1/envelopes/D1/parties", headers=auth(keys["a"]))
    parties = (await checked(r, "/api/v1/envelopes/{ref}/parties"))["parties"]
    assert [(p["party"], p["kind"], p["name"], p["signed"]) for p in parties] == [
        ("lessor", "organization", "Name of lessor", True), ("lessee", "person", "Name of lessee", True)]
    r = await client.get("/api/v1/envelopes/D1/documents", headers=auth(keys["a"]))
    (doc,) = (await checked(r, "/api/v1/envelopes/{ref}/documents"))["documents"]
    assert (doc["document"], doc["name"], doc["sha256"], doc["copies"]) == ("main", "lease.pdf", PDF_SHA, 1)
    assert [v["party"] for v in doc["signed_versions"]] == ["lessor", "lessee"]
    r = await client.get("/api/v1/envelopes/D1/documents", headers=auth(keys["b"]))
    assert r.status == 404


async def test_an_entry_with_its_proof_and_its_anchored_proof(client: TestClient[Any, Any], ledger: Ledger,
                                                              keys: dict[str, str]) -> None:
    await lifecycle(client, keys["a"], "P1")
    vkey = Ed25519Verifier.from_string(ledger.verifier_key)
    r = await client.get("/api/v1/entries/2/proof?entry=1", headers=auth(keys["a"]))
    body = await checked(r, "/api/v1/entries/{index}/proof")
    assert base64.b64decode(body["entry"]) == ledger.log.entry(2)
    verify_tlog_proof(body["proof"], base64.b64decode(body["entry"]), vkey)
    r = await client.get("/api/v1/entries/2/proof", headers=auth(keys["a"]))
    assert r.content_type == "text/plain"
    r = await client.get("/api/v1/entries/2/proof?entry=yes", headers=auth(keys["a"]))
    assert r.status == 400
    r = await client.get("/api/v1/entries/2/anchored", headers=auth(keys["a"]))
    assert r.status == 404 and (await checked(r, "/api/v1/entries/{index}/anchored"))["error"]["code"] == "not_anchored"
    async with aiohttp.ClientSession() as session:
        (outcome,) = await Anchorer(ledger, clients_for(ledger, session)).anchor_now()
    assert outcome.ok, outcome
    r = await client.get("/api/v1/entries/2/anchored", headers=auth(keys["a"]))
    bundle = await checked(r, "/api/v1/entries/{index}/anchored")
    assert ledger.local_tsa is not None
    report = verify_anchored(json.dumps(bundle), vkey, [ledger.local_tsa.root_der], at=datetime.now(UTC))
    assert report.ok and report.trusted_time is not None
    r = await client.get("/api/v1/entries/2/anchored?tsa=local", headers=auth(keys["a"]))
    assert r.status == 200
    for query, status in (("?tsa=elsewhere", 404), ("?at=now", 400)):
        r = await client.get(f"/api/v1/entries/2/anchored{query}", headers=auth(keys["a"]))
        assert r.status == status
    r = await client.get("/api/v1/entries/2/anchored", headers=auth(keys["b"]))
    assert r.status == 404, "another tenant's entry"


async def test_upload_limits_are_per_api_key(aiohttp_client: Client, ledger: Ledger) -> None:
    """Eleven uploads in a second from one platform's backend pass; keys behind one address each have
    their own bucket, so one platform's burst does not hold back another."""
    a, b = create_key(ledger.log, "tenant-a", ["append"]), create_key(ledger.log, "tenant-b", ["append"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    for key in (a, b):
        for n in range(12):
            await client.post("/api/v1/envelopes", json={"envelope": f"U{n}", "title": "t"}, headers=auth(key))

    async def upload(key: str, n: int) -> int:
        r = await client.post(f"/api/v1/envelopes/U{n}/documents?document=d&name=x.pdf", data=PDF,
                              headers=auth(key, **{"Content-Type": "application/pdf"}))
        return r.status

    assert [await upload(a, n) for n in range(11)] == [201] * 11
    tight = ledger.config.replace(upload_rate=0.01, upload_burst=2)
    ledger.config = tight
    client2 = await aiohttp_client(create_app(ledger, anchor=False))
    statuses_a = [(await client2.post(f"/api/v1/envelopes/U{n}/documents?document=e&name=x.pdf", data=PDF,
                                      headers=auth(a, **{"Content-Type": "application/pdf"}))).status for n in range(3)]
    statuses_b = [(await client2.post(f"/api/v1/envelopes/U{n}/documents?document=e&name=x.pdf", data=PDF,
                                      headers=auth(b, **{"Content-Type": "application/pdf"}))).status for n in range(2)]
    assert statuses_a == [201, 201, 429] and statuses_b == [201, 201], (statuses_a, statuses_b)


async def test_a_retry_with_an_idempotency_key_appends_nothing(client: TestClient[Any, Any], ledger: Ledger,
                                                               keys: dict[str, str]) -> None:
    h = auth(keys["a"], **{"Idempotency-Key": "create-R1"})
    r1 = await client.post("/api/v1/envelopes", json={"envelope": "R1", "title": "t"}, headers=h)
    first = await checked(r1, "/api/v1/envelopes", "post")
    size = ledger.log.size
    r2 = await client.post("/api/v1/envelopes", json={"envelope": "R1", "title": "t"}, headers=h)
    assert r2.status == 201 and r2.headers["Idempotent-Replayed"] == "true"
    assert await checked(r2, "/api/v1/envelopes", "post") == first and ledger.log.size == size
    # the same key with another request is refused; another API key's same Idempotency-Key is its own
    r3 = await client.post("/api/v1/envelopes", json={"envelope": "R2", "title": "t"}, headers=h)
    assert r3.status == 422 and (await r3.json())["error"]["code"] == "idempotency_mismatch"
    r4 = await client.post("/api/v1/envelopes", json={"envelope": "R1", "title": "t"},
                           headers=auth(keys["b"], **{"Idempotency-Key": "create-R1"}))
    assert r4.status == 201 and "Idempotent-Replayed" not in r4.headers
    # twins sent at once: one is appended, both get its answer
    size = ledger.log.size
    twins = [client.post("/api/v1/envelopes/R1/parties", json={"party": "p", "role": "cc", "name": "n"},
                         headers=auth(keys["a"], **{"Idempotency-Key": "k"})) for _ in range(2)]
    answers = [await r.json() for r in await asyncio.gather(*twins)]
    assert answers[0] == answers[1] and ledger.log.size == size + 1, answers
    # an upload retried: the same acknowledgement, one document
    up = auth(keys["a"], **{"Content-Type": "application/pdf", "Idempotency-Key": "upload-1"})
    r5 = await client.post("/api/v1/envelopes/R2/documents?document=d&name=x.pdf", data=PDF, headers=up)
    assert r5.status == 404  # no envelope R2 yet: a refusal is not kept
    await client.post("/api/v1/envelopes", json={"envelope": "R2", "title": "t"}, headers=auth(keys["a"]))
    r6 = await client.post("/api/v1/envelopes/R2/documents?document=d&name=x.pdf", data=PDF, headers=up)
    r7 = await client.post("/api/v1/envelopes/R2/documents?document=d&name=x.pdf", data=PDF, headers=up)
    assert r6.status == r7.status == 201 and await r6.json() == await r7.json()
    assert (await r7.json())["acks"][0]["sha256"] == PDF_SHA
    bad = await client.post("/api/v1/envelopes", json={"envelope": "R3", "title": "t"},
                            headers=auth(keys["a"], **{"Idempotency-Key": "has space"}))
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_idempotency_key"


def test_a_retry_through_the_writer_link_appends_nothing(tmp_path: Path, engine: str) -> None:
    """With `ledger serve --workers 2` the key travels with the events to the writer, and its answer is
    kept in the transaction that makes them durable."""
    home = tmp_path / "home"
    subprocess.run([str(BIN / "ledger"), "--home", str(home), "init", *init_database(engine)], check=True,
                   capture_output=True)
    key = subprocess.run([str(BIN / "ledger"), "--home", str(home), "keys", "create", "--tenant", "t",
                          "--scopes", "append,read"], check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    proc = start_serve(home, port, tmp_path / "serve.log", workers=2)
    try:
        answers = []
        for _ in range(6):  # new connections, spread over both workers
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/envelopes", method="POST",
                                         data=json.dumps({"envelope": "W1", "title": "t"}).encode(),
                                         headers=auth(key, **{"Content-Type": "application/json",
                                                              "Idempotency-Key": "w1"}))
            with urllib.request.urlopen(req, timeout=10) as r:
                answers.append(json.loads(r.read()))
        assert all(a == answers[0] for a in answers)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert json.loads(r.read())["size"] == 1
    finally:
        stop_serve(proc)
