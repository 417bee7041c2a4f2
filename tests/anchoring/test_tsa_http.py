"""The local TSA over HTTP: `POST /tsa` (RFC 3161 §3.4), `GET /tsa`, `GET /tsa/certs`.

Through aiohttp's test client, and on a real running app that `openssl ts -query` / `-verify` and
pyHanko's HTTP time-stamp client talk to.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from asn1crypto import pem, tsp
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ledger.anchoring.tsa import MAX_REQUEST_BYTES, build_request
from ledger.anchoring.tsa_client import HttpTsaClient
from ledger.config import TsaConfig
from ledger.envelopes.core import Ledger
from portal.app import create_app
from tests.pki import openssl
from verifier._cms import TimeStampResp
from verifier.note import parse_note
from verifier.timestamp import verify_timestamp

pytestmark = pytest.mark.slow
POLICY = "1.3.6.1.4.1.57264.3161.7"
QUERY = {"Content-Type": "application/timestamp-query"}
Client = Callable[..., Awaitable[TestClient[Any, Any]]]
Server = Callable[..., Awaitable[TestServer]]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    home = tmp_path_factory.mktemp("tsa-http") / "home"
    Ledger.init(home).close()
    (home / "config.toml").write_text((home / "config.toml").read_text().replace(
        "local_tsa_policy = \"1.3.6.1.4.1.57264.3161.1\"", f'local_tsa_policy = "{POLICY}"'))
    led = Ledger.open(home)
    led.append("t", [{"type": "envelope.created", "envelope": f"e-{i}", "title": "x"} for i in range(5)])
    yield led
    led.close()


@pytest.fixture
async def client(aiohttp_client: Client, ledger: Ledger) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(ledger, anchor=False))


def body(ledger: Ledger) -> bytes:
    return parse_note(ledger.log.latest_checkpoint).text.encode()


def root(ledger: Ledger) -> bytes:
    return (ledger.home / "tsa" / "tsa-root.pem").read_bytes()


async def test_post_tsa_grants_a_token(client: TestClient[Any, Any], ledger: Ledger) -> None:
    nonce = 2**64 + 7
    before = datetime.now(UTC)
    resp = await client.post("/tsa", data=build_request(body(ledger), nonce=nonce), headers=QUERY)
    assert resp.status == 200 and resp.content_type == "application/timestamp-reply"
    assert resp.headers["Cache-Control"] == "no-store"
    reply = await resp.read()
    window = (before - timedelta(seconds=2), datetime.now(UTC) + timedelta(seconds=2))
    report = verify_timestamp(reply, data=body(ledger), trusted_roots=[root(ledger)], nonce=nonce, policy=POLICY,
                              now_window=window)
    assert report.ok, report.steps
    assert report.tst_info is not None and report.tst_info.nonce == nonce
    assert report.gen_time is not None and report.gen_time.microsecond % 1000 == 0
    assert "ESSCertIDv2" in report.steps[2].detail
    assert report.tsa_name is not None and "not accredited" in report.tsa_name
    signed_data = tsp.TimeStampResp.load(reply)["time_stamp_token"]["content"]
    assert len(signed_data["certificates"]) == 1
    resp = await client.post("/tsa", data=build_request(body(ledger), nonce=1, cert_req=False), headers=QUERY)
    signed_data = tsp.TimeStampResp.load(await resp.read())["time_stamp_token"]["content"]
    assert signed_data["certificates"].native is None


async def _json_error(resp: aiohttp.ClientResponse, status: int, code: str) -> None:
    assert resp.status == status and resp.content_type == "application/json"
    assert set((await resp.json())["error"]) == {"code", "message"}
    assert (await resp.json())["error"]["code"] == code


async def test_post_tsa_refuses_what_is_not_a_query(client: TestClient[Any, Any], ledger: Ledger) -> None:
    query = build_request(body(ledger), nonce=1)
    await _json_error(await client.post("/tsa", data=query), 415, "unsupported_media_type")
    await _json_error(await client.post("/tsa", data=query, headers={"Content-Type": "application/json"}),
                      415, "unsupported_media_type")
    big = b"\x30" * (MAX_REQUEST_BYTES + 1)
    await _json_error(await client.post("/tsa", data=big, headers=QUERY), 413, "too_large")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(5):
            yield b"\x00" * (MAX_REQUEST_BYTES // 4)

    await _json_error(await client.post("/tsa", data=chunked(), headers=QUERY), 413, "too_large")
    await _json_error(await client.get("/tsa/nothing"), 404, "not_found")


@pytest.mark.parametrize(("query", "fail_info"), [
    (b"", "bad_request"),
    (b"not DER at all", "bad_request"),
    (tsp.TimeStampReq({"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "md5"},
                                                            "hashed_message": hashlib.md5(b"x").digest()}}).dump(),
     "bad_alg"),
    (build_request(b"x", nonce=1, policy="1.2.3.4"), "unaccepted_policy"),
])
async def test_malformed_queries_get_a_rejection_response(client: TestClient[Any, Any], query: bytes,
                                                          fail_info: str) -> None:
    resp = await client.post("/tsa", data=query, headers=QUERY)
    assert resp.status == 200 and resp.content_type == "application/timestamp-reply"
    status = TimeStampResp.load(await resp.read())["status"].native
    assert status["status"] == "rejection" and status["fail_info"] == {fail_info}


async def test_tsa_pages_say_local_not_accredited(client: TestClient[Any, Any], ledger: Ledger) -> None:
    about = await (await client.get("/tsa")).json()
    assert about["local_tsa"]["kind"] == "local TSA, not accredited" and about["local_tsa"]["accredited"] is False
    assert about["local_tsa"]["policy"] == POLICY
    assert [t["tsa"] for t in about["anchoring"]] == ["local"]
    resp = await client.get("/tsa/certs")
    assert resp.content_type == "application/pem-certificate-chain"
    tsa_cert, root_cert = (x509.load_der_x509_certificate(der) for _, _, der in
                           pem.unarmor(await resp.read(), multiple=True))
    eku = tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert tsa_cert.issuer == root_cert.subject and "not accredited" in tsa_cert.subject.rfc4514_string()


async def test_running_app_answers_openssl_and_pyhanko(aiohttp_server: Server, ledger: Ledger,
                                                       tmp_path: Path) -> None:
    server = await aiohttp_server(create_app(ledger))  # with the anchoring loop running
    url = str(server.make_url("/tsa"))
    (tmp_path / "checkpoint.txt").write_bytes(body(ledger))
    (tmp_path / "root.pem").write_bytes(root(ledger))
    query = openssl("ts", "-query", "-data", "checkpoint.txt", "-sha256", "-cert", cwd=tmp_path)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=query, headers=QUERY) as resp:
            (tmp_path / "resp.tsr").write_bytes(await resp.read())
        for check in (["-data", "checkpoint.txt"], ["-queryfile", "/dev/stdin"]):
            out = subprocess.run(["openssl", "ts", "-verify", *check, "-in", "resp.tsr", "-CAfile", "root.pem"],
                                 cwd=tmp_path, input=query, capture_output=True, check=False)
            assert b"Verification: OK" in out.stdout, out.stderr
        config = TsaConfig("portal", url, (str(tmp_path / "root.pem"),), timeout_s=5, policy=POLICY)
        stamp = await HttpTsaClient(config, tmp_path, session, ledger.clock).stamp(body(ledger))
        assert stamp.tsa == "portal" and stamp.serial > 0
    for _ in range(100):  # the loop's first pass anchors the latest checkpoint at start-up
        rows = ledger.log._reader().execute("SELECT size FROM anchors WHERE tsa = 'local'").fetchall()
        if rows:
            break
        await asyncio.sleep(0.02)
    assert (ledger.log.size,) in rows


async def test_a_broken_local_tsa_blocks_nothing_but_itself(aiohttp_client: Client, tmp_path: Path) -> None:
    Ledger.init(tmp_path / "home").close()
    (tmp_path / "home" / "tsa" / "tsa.key").write_text("not a key")
    led = Ledger.open(tmp_path / "home")
    try:
        assert led.local_tsa is None and led.local_tsa_error is not None
        led.append("t", [{"type": "envelope.created", "envelope": "e", "title": "x"}])
        client = await aiohttp_client(create_app(led))
        await _json_error(await client.post("/tsa", data=b"", headers=QUERY), 503, "local_tsa_unavailable")
        (local,) = (await (await client.get("/tsa")).json())["anchoring"]
        assert local["tsa"] == "local" and local["last_error"].startswith("unavailable") and local["unanchored"] == 1
    finally:
        led.close()


async def test_without_local_tsa_there_is_no_tsa_endpoint(aiohttp_client: Client, tmp_path: Path) -> None:
    Ledger.init(tmp_path / "home").close()
    cfg = tmp_path / "home" / "config.toml"
    cfg.write_text(cfg.read_text().replace("local_tsa = true", "local_tsa = false"))
    led = Ledger.open(tmp_path / "home")
    try:
        client = await aiohttp_client(create_app(led))
        await _json_error(await client.post("/tsa", data=b"", headers=QUERY), 404, "no_local_tsa")
        assert (await (await client.get("/tsa")).json()) == {"local_tsa": None, "anchoring": []}
    finally:
        led.close()
