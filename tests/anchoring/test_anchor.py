"""Anchoring checkpoints with RFC 3161 TSAs: the local TSA in-process, an OpenSSL TSA over HTTP.

`HttpTsa` is a real TSA on 127.0.0.1: `openssl ts -reply` (tests.pki.OpenSslTsa) behind a small
aiohttp handler, with a switch to make it hang, fail, send garbage or misbehave. The ledger is
configured with it as a second TSA through `config.toml`, exactly as an operator would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from asn1crypto import tsp

from ledger import cli
from ledger.anchoring.anchor import Anchorer, anchoring_status, clients_for
from ledger.anchoring.tsa import LocalTsa, create_local_tsa
from ledger.config import TsaConfig, load_config
from ledger.envelopes.core import Ledger
from ledger.errors import LedgerError, NotFoundError
from tests.conftest import new_ledger
from tests.pki import OpenSslTsa, make_root, make_tsa_cert, write_tsa_dir
from verifier import cli as verifier_cli
from verifier.anchored import AnchoredBundle, AnchorRecord, parse_anchored, verify_anchored
from verifier.errors import VerificationError
from verifier.note import parse_note
from verifier.timestamp import token_from_response

pytestmark = pytest.mark.slow
Server = Callable[..., Awaitable[TestServer]]


class HttpTsa:
    """An RFC 3161 TSA over HTTP backed by `openssl ts -reply`; `mode` says how it behaves."""

    MODES = ("ok", "hang", "500", "garbage", "wrong_nonce", "other_checkpoint")

    def __init__(self, directory: Path) -> None:
        self.openssl = OpenSslTsa(directory)
        self.root = directory / "ca.pem"
        self.requests = 0
        self._mode = "ok"
        self._healed = asyncio.Event()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        assert mode in self.MODES
        self._mode = mode
        if mode == "hang":
            self._healed.clear()
        else:
            self._healed.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        query = await request.read()
        if self._mode == "hang":
            await asyncio.wait_for(self._healed.wait(), timeout=30)
        if self._mode == "500":
            return web.Response(status=500, text="TSA down")
        if self._mode == "garbage":
            return web.Response(body=b"\x30\x03garbage", content_type="application/timestamp-reply")
        if self._mode in ("wrong_nonce", "other_checkpoint"):
            req = tsp.TimeStampReq.load(query)
            if self._mode == "wrong_nonce":
                req["nonce"] = req["nonce"].native + 1
            else:
                req["message_imprint"]["hashed_message"] = hashlib.sha256(b"another checkpoint").digest()
            query = req.dump(force=True)
        reply = await asyncio.to_thread(self.openssl.reply, query)
        return web.Response(body=reply, content_type="application/timestamp-reply")

    def config(self, url: str, name: str = "openssl", timeout_s: float = 2.0) -> str:
        return TsaConfig(name, url, (str(self.root),), timeout_s=timeout_s, policy=OpenSslTsa.POLICY).to_toml()


async def start_http_tsa(directory: Path, aiohttp_server: Server) -> tuple[HttpTsa, str]:
    tsa = HttpTsa(directory)
    app = web.Application()
    app.router.add_post("/", tsa.handle)
    server = await aiohttp_server(app)
    return tsa, str(server.make_url("/"))


def configure(home: Path, extra: str) -> Ledger:
    """Append `extra` (TOML) to the ledger's config and open it."""
    path = home / "config.toml"
    path.write_text(path.read_text() + "\n" + extra)
    return Ledger.open(home)


def created(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"type": "envelope.created", "envelope": f"e-{i}", "title": f"Contract {i}"} for i in range(start, start + n)]


def body_of(led: Ledger, size: int) -> bytes:
    return parse_note(led.log.checkpoint_at(size)).text.encode()


@pytest.fixture
def home(tmp_path: Path, engine: str) -> Path:
    new_ledger(tmp_path / "home", engine).close()
    return tmp_path / "home"


@pytest.fixture
async def http_tsa(tmp_path: Path, aiohttp_server: Server) -> AsyncIterator[tuple[HttpTsa, str]]:
    tsa, url = await start_http_tsa(tmp_path / "openssl-tsa", aiohttp_server)
    yield tsa, url
    tsa.mode = "ok"  # release any hanging handler before the server closes


async def anchor(led: Ledger) -> list[Any]:
    async with aiohttp.ClientSession() as session:
        return await Anchorer(led, clients_for(led, session)).anchor_now()


def test_init_creates_a_local_tsa_and_open_loads_it(home: Path) -> None:
    assert {p.name for p in (home / "tsa").iterdir()} >= {"tsa-root.pem", "tsa.pem", "tsa.key", "tsa-serial"}
    led = Ledger.open(home)
    try:
        assert led.local_tsa is not None and "not accredited" in led.local_tsa.name
        assert led.local_tsa.policy_oid == led.config.local_tsa_policy
    finally:
        led.close()


def test_a_ledger_without_a_local_tsa_gets_one_at_open(home: Path) -> None:
    for f in (home / "tsa").iterdir():
        f.unlink()
    (home / "tsa").rmdir()
    Ledger.open(home).close()
    assert (home / "tsa" / "tsa.key").exists()


async def test_a_process_with_an_older_tree_anchors_a_true_checkpoint_and_the_health_stays(home: Path) -> None:
    """Another process appended meanwhile: this one anchors the (published) checkpoint it holds; the
    anchor is kept, and the TSA's anchored size does not go back."""
    stale = Ledger.open(home)
    stale.append("t", created(1))
    other = Ledger.open(home)
    try:
        other.append("t", created(2, start=1))  # the log grows elsewhere; `stale` still holds size 1
        async with aiohttp.ClientSession() as session:
            late = Anchorer(stale, clients_for(stale, session))  # made before the other process anchors
            assert all(o.ok and o.size == 3 for o in await anchor(other))
            (outcome,) = await late.anchor_now()
        assert outcome.ok and outcome.size == 1, outcome
        sizes = [r[0] for r in stale.log.conn.execute("SELECT size FROM anchors ORDER BY size")]
        assert sizes == [1, 3]
        assert stale.log.conn.execute("SELECT anchored_size FROM tsa_status").fetchone() == (3,)
        assert stale.log.size == 3, "the older process caught up with the log when it wrote"
    finally:
        stale.close()
        other.close()


def test_tsa_tables_in_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('anchor_interval_s = 5\nlocal_tsa = false\n[[tsa]]\nname = "qualified"\n'
                   'url = "https://tsa.example/"\nroots = ["roots/qualified.pem"]\nusername = "u"\n'
                   'password_env = "TSA_PASSWORD"\nheaders = { "X-Api-Key" = "k" }\n')
    config = load_config(tmp_path)
    assert config.anchor_interval_s == 5.0 and config.local_tsa is False
    (tsa,) = config.tsa
    assert (tsa.name, tsa.roots, tsa.headers, tsa.timeout_s) == ("qualified", ("roots/qualified.pem",),
                                                                 (("X-Api-Key", "k"),), 10.0)
    cfg.write_text(config.to_toml())
    assert load_config(tmp_path) == config
    for bad, why in [('[[tsa]]\nname = "local"\nurl = "http://x/"\nroots = ["r.pem"]\n', "reserved"),
                     ('[[tsa]]\nname = "a"\nurl = "http://x/"\nroots = ["r.pem"]\nroot = "typo"\n', "unknown key"),
                     ('[[tsa]]\nname = "a"\nurl = "http://x/"\n', "roots"),
                     ('[[tsa]]\nname = "a"\nurl = "ftp://x/"\nroots = ["r.pem"]\n', "url"),
                     ('[[tsa]]\nname = "a"\nurl = "https://u:secret@x/"\nroots = ["r.pem"]\n', "credentials"),
                     ('[[tsa]]\nname = "a"\nurl = "http://x/"\nroots = ["r"]\n' * 2, "same name"),
                     ('[[tsa]]\nname = "a"\nurl = "http://x/"\nroots = ["r"]\nusername = "u"\n', "https"),
                     ("local_tsa = 1\n", "bool"), ("anchor_interval_s = 0\n", "positive")]:
        cfg.write_text(bad)
        with pytest.raises(LedgerError, match=why):
            load_config(tmp_path)


async def test_local_anchors_prove_each_entrys_time(home: Path) -> None:
    led = Ledger.open(home)
    try:
        assert await anchor(led) == []  # an empty tree is not anchored
        led.append("t", created(3))
        (first,) = await anchor(led)
        assert first.ok and first.tsa == "local" and first.size == 3
        assert await anchor(led) == []  # already anchored
        led.append("t", created(2, start=3))
        (second,) = await anchor(led)
        assert second.ok and second.size == 5
        rows = led.log.conn.execute("SELECT id, size, tsa, serial, renews FROM anchors ORDER BY id").fetchall()
        assert rows == [(1, 3, "local", "1", None), (2, 5, "local", "2", None)]
        root = (home / "tsa" / "tsa-root.pem").read_bytes()
        at = datetime.now(UTC) + timedelta(days=1)
        for index, size in [(0, 3), (2, 3), (3, 5), (4, 5)]:
            bundle = led.prove_anchored(index)
            report = verify_anchored(bundle.to_text(), led.log.signer.verifier, [root], at=at,
                                     entry=led.log.entry(index))
            assert report.ok and report.proof.checkpoint.checkpoint.size == size
            assert report.trusted_by is not None and report.trusted_by.local
            assert "local TSA, not accredited" in report.lines()[1]
        led.append("t", created(1, start=5))
        with pytest.raises(NotFoundError, match="entry 5 is not anchored yet"):
            led.prove_anchored(5)
        # a token of another checkpoint does not anchor this one
        early, late = led.prove_anchored(0), led.prove_anchored(4)
        swapped = AnchoredBundle(late.index, late.entry, late.tlog_proof, early.anchors)
        report = verify_anchored(swapped.to_text(), led.log.signer.verifier, [root], at=at)
        assert not report.ok and "imprint" in report.anchors[0].detail
        with pytest.raises(VerificationError, match="no anchor"):
            report.require_valid()
        with pytest.raises(VerificationError, match="different entry"):
            verify_anchored(late.to_text(), led.log.signer.verifier, [root], at=at, entry=b"other")
    finally:
        led.close()


def test_anchors_are_append_only(home: Path) -> None:
    led = Ledger.open(home)
    try:
        led.append("t", created(1))
        asyncio.run(anchor(led))
        for sql in ("UPDATE anchors SET tsa = 'forged'", "DELETE FROM anchors"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                led.log.conn.execute(sql)
    finally:
        led.close()


async def test_openssl_tsa_over_http_anchors_too(home: Path, http_tsa: tuple[HttpTsa, str],
                                                 tmp_path: Path) -> None:
    tsa, url = http_tsa
    led = configure(home, tsa.config(url))
    try:
        led.append("t", created(4))
        outcomes = await anchor(led)
        assert sorted((o.tsa, o.ok, o.size) for o in outcomes) == [("local", True, 4), ("openssl", True, 4)]
        bundle = led.prove_anchored(1)
        assert sorted(a.tsa for a in bundle.anchors) == ["local", "openssl"]
        local_root = (home / "tsa" / "tsa-root.pem").read_bytes()
        at = datetime.now(UTC) + timedelta(days=1)
        both = verify_anchored(bundle.to_text(), led.log.signer.verifier, [local_root, tsa.root.read_bytes()], at=at)
        assert both.ok and all(a.ok for a in both.anchors)
        assert [a.local for a in both.anchors if a.tsa == "openssl"] == [False]
        # trusting only the OpenSSL root: the local anchor is refused, the OpenSSL one carries the proof
        only = verify_anchored(bundle.to_text(), led.log.signer.verifier, [tsa.root.read_bytes()], at=at)
        assert only.ok and only.trusted_by is not None and only.trusted_by.tsa == "openssl"
        local = next(a for a in only.anchors if a.tsa == "local")
        assert not local.ok and "no path to a trusted root" in local.detail
        assert led.prove_anchored(1, tsa="openssl").anchors == bundle.anchors
        # every stored token passes `openssl ts -verify` over the checkpoint body
        (tmp_path / "checkpoint.txt").write_bytes(body_of(led, 4))
        roots = {"local": home / "tsa" / "tsa-root.pem", "openssl": tsa.root}
        for a in bundle.anchors:
            (tmp_path / "anchor.tst").write_bytes(a.token)
            out = subprocess.run(["openssl", "ts", "-verify", "-data", "checkpoint.txt", "-token_in", "-in",
                                  "anchor.tst", "-CAfile", str(roots[a.tsa])], cwd=tmp_path, capture_output=True,
                                 text=True, check=False)
            assert "Verification: OK" in out.stdout, (a.tsa, out.stdout, out.stderr)
    finally:
        led.close()


@pytest.mark.parametrize(("mode", "code"), [("wrong_nonce", "nonce_mismatch"),
                                            ("other_checkpoint", "imprint_mismatch")])
async def test_misbehaving_tsa_tokens_are_not_stored(home: Path, http_tsa: tuple[HttpTsa, str],
                                                     mode: str, code: str) -> None:
    tsa, url = http_tsa
    led = configure(home, tsa.config(url))
    try:
        led.append("t", created(2))
        tsa.mode = mode
        outcomes = {o.tsa: o for o in await anchor(led)}
        assert outcomes["local"].ok and not outcomes["openssl"].ok
        assert f"TimestampError ({code})" in outcomes["openssl"].detail
        assert led.log.conn.execute("SELECT count(*) FROM anchors WHERE tsa = 'openssl'").fetchone() == (0,)
        status = {s["tsa"]: s for s in anchoring_status(led)}["openssl"]
        assert status["consecutive_failures"] == 1 and "fails verification" in status["last_error"]
        assert status["unanchored"] == 2
        tsa.mode = "ok"
        (fixed,) = await anchor(led)
        assert fixed.ok and fixed.tsa == "openssl"
        status = {s["tsa"]: s for s in anchoring_status(led)}["openssl"]
        assert status["consecutive_failures"] == 0 and status["unanchored"] == 0
    finally:
        led.close()


async def test_renewal_keeps_an_expiring_anchor_verifiable(home: Path, http_tsa: tuple[HttpTsa, str]) -> None:
    now = datetime.now(UTC)
    root = make_root()  # a local TSA whose certificate expires in ten days
    write_tsa_dir(home / "tsa", root=root, tsa=make_tsa_cert(root, not_before=now - timedelta(days=1),
                                                            not_after=now + timedelta(days=10)))
    tsa, url = http_tsa
    led = configure(home, tsa.config(url))
    try:
        led.append("t", created(2))
        assert all(o.ok for o in await anchor(led))
        async with aiohttp.ClientSession() as session:
            anchorer = Anchorer(led, clients_for(led, session))
            assert await anchorer.renew(timedelta(days=5)) == []  # nothing expires that soon
            outcomes = {o.tsa: o for o in await anchorer.renew(timedelta(days=30))}
            assert outcomes["openssl"].ok and not outcomes["local"].ok
            assert "no later than" in outcomes["local"].detail
            assert await anchorer.renew(timedelta(days=30)) == []  # renewed once is enough
        rows = led.log.conn.execute("SELECT id, tsa, renews, size FROM anchors ORDER BY id").fetchall()
        local_id = next(i for i, t, r, _ in rows if t == "local")
        assert (3, "openssl", local_id, 2) in rows
        bundle = led.prove_anchored(0)
        by_id = {a.id: a for a in bundle.anchors}
        (renewal,) = [a for a in bundle.anchors if a.renews is not None]
        (home.parent / "anchor.tst").write_bytes(by_id[renewal.renews].token)  # type: ignore[index]
        (home.parent / "renewal.tst").write_bytes(renewal.token)
        out = subprocess.run(["openssl", "ts", "-verify", "-data", "anchor.tst", "-token_in", "-in", "renewal.tst",
                              "-CAfile", str(tsa.root)], cwd=home.parent, capture_output=True, text=True, check=False)
        assert "Verification: OK" in out.stdout, out.stderr
        key, roots = led.log.signer.verifier, [root.pem]
        later = now + timedelta(days=20)  # the local TSA certificate has expired by then
        report = verify_anchored(bundle.to_text(), key, roots + [tsa.root.read_bytes()], at=later)
        local = next(a for a in report.anchors if a.tsa == "local")
        assert local.ok and local.renewed_by == (3,) and "renewed before then" in local.detail
        # without the renewal the local anchor no longer stands
        bare = AnchoredBundle(bundle.index, bundle.entry, bundle.tlog_proof,
                              tuple(a for a in bundle.anchors if a.renews is None))
        report = verify_anchored(bare.to_text(), key, roots, at=later)
        local = next(a for a in report.anchors if a.tsa == "local")
        assert not report.ok and "no standing renewal" in local.detail
        # before expiry it stands on its own
        assert verify_anchored(bare.to_text(), key, roots, at=now + timedelta(days=1)).ok
        # a renewal made after the certificate expired does not save it
        late_dir = home.parent / "late-tsa"
        create_local_tsa(late_dir, now=now)
        late_tsa = LocalTsa.load(late_dir, clock=lambda: now + timedelta(days=15))
        old = next(a for a in bundle.anchors if a.tsa == "local")
        late_token = token_from_response(late_tsa.issue_token(old.token))
        late = AnchoredBundle(bundle.index, bundle.entry, bundle.tlog_proof,
                              (*bare.anchors, AnchorRecord(9, "late", late_token, old.id)))
        report = verify_anchored(late.to_text(), key, roots + [late_tsa.root_der], at=later)
        local = next(a for a in report.anchors if a.tsa == "local")
        assert not report.ok and "no standing renewal" in local.detail
    finally:
        led.close()


def test_cli_anchor_prove_status_and_verifier(home: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    led = Ledger.open(home)
    led.append("t", created(3))
    key = led.verifier_key
    led.close()
    assert cli.main(["--home", str(home), "anchor"]) == 0
    assert "local (local TSA, not accredited): ok: anchored size 3" in capsys.readouterr().out
    assert cli.main(["--home", str(home), "anchor"]) == 0
    assert "every TSA has anchored" in capsys.readouterr().out
    assert cli.main(["--home", str(home), "status", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)["tsas"]
    assert status["kind"] == "local TSA, not accredited" and status["anchored_size"] == 3
    assert cli.main(["--home", str(home), "status"]) == 0
    assert "local (local TSA, not accredited): anchored up to size 3" in capsys.readouterr().out
    assert cli.main(["--home", str(home), "prove", "1", "--anchored"]) == 0
    bundle = tmp_path / "e1.json"
    bundle.write_text(capsys.readouterr().out)
    assert parse_anchored(bundle.read_bytes()).index == 1
    (tmp_path / "e1.b64").write_text(json.loads(bundle.read_text())["entry"])
    args = ["anchored", str(bundle), "--key", key, "--root", str(home / "tsa" / "tsa-root.pem"),
            "--entry", str(tmp_path / "e1.b64"), "--entry-base64"]
    assert verifier_cli.main([*args, "--at", "2030-01-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "VERIFIED entry 1 existed no later than" in out and "a local TSA, not accredited" in out
    assert verifier_cli.main([*args, "--at", "2040-01-01T00:00:00Z"]) == 1  # certificate expired, not renewed
    assert "no standing renewal" in capsys.readouterr().out
    (tmp_path / "e1.b64").write_text(base64.b64encode(b"another entry").decode())
    assert verifier_cli.main([*args, "--at", "2030-01-01T00:00:00Z"]) == 1
    assert cli.main(["--home", str(home), "prove", "5", "--anchored"]) == 2  # not found: refused
    assert "not in the log" in capsys.readouterr().err
    assert cli.main(["--home", str(home), "anchor", "--renew", "--within", "1"]) == 0
    assert "nothing to renew" in capsys.readouterr().out
