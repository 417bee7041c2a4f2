"""Notaries as witnesses: consistency proofs for them, their cosignatures kept, served and shown."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import create_demo
from ledger.errors import LedgerError
from ledger.storage.signer import LogSigner
from portal.app import create_app
from portal.pages.i18n import TEXT
from tests.conftest import new_ledger
from verifier.checkpoint import verify_checkpoint
from verifier.merkle import verify_consistency
from verifier.note import CosignatureSigner, parse_note, sign_note

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
NOTARY = CosignatureSigner("notary.example/w1", Ed25519PrivateKey.generate())
STRANGER = CosignatureSigner("stranger.example/w", Ed25519PrivateKey.generate())


@pytest.fixture
def led(tmp_path: Path, engine: str) -> Iterator[Ledger]:
    ledger = new_ledger(tmp_path / "home", engine)
    ledger.config = ledger.config.replace(witnesses=(NOTARY.verifier.to_string(),))
    yield ledger
    ledger.close()


def cosign(note: str, *witnesses: CosignatureSigner) -> str:
    n = parse_note(note)
    for w in witnesses:
        n = n.with_signature(w.sign(n.text, int(time.time())))
    return n.to_text()


async def test_a_notary_checks_growth_cosigns_and_the_page_names_it(aiohttp_client: Client, led: Ledger,
                                                                     tmp_path: Path) -> None:
    codes = {d["status"]: d["code"] for d in create_demo(led)}
    client = await aiohttp_client(create_app(led))
    old = await (await client.get("/checkpoint")).text()
    led.append("t", [{"type": "envelope.created", "envelope": "more", "title": "x"}])
    new = await (await client.get("/checkpoint")).text()
    key = led.verifier
    cp_old, cp_new = verify_checkpoint(old, key).checkpoint, verify_checkpoint(new, key).checkpoint
    # the notary's check: the new checkpoint extends the one it kept
    r = await client.get(f"/proof/consistency/{cp_old.size}/{cp_new.size}")
    assert r.status == 200 and r.content_type == "text/plain"
    verify_consistency(cp_old.size, cp_new.size, cp_old.root, cp_new.root,
                       [base64.b64decode(line) for line in (await r.text()).split()])
    page = await (await client.get(f"/v/{codes['voided']}")).text()
    assert TEXT["en"]["no_witness"] in page
    r = await client.post("/witness/cosign", data=cosign(new, NOTARY, STRANGER))
    assert r.status == 200, await r.text()
    assert await r.json() == {"size": cp_new.size, "accepted": ["notary.example/w1"]}
    served = await (await client.get(f"/checkpoint/{cp_new.size}")).text()
    verify_checkpoint(served, key, witnesses=[NOTARY.verifier], witness_quorum=1)
    assert "stranger.example" not in served, "only configured witnesses are kept"
    # posting again keeps the first cosignature, once
    assert (await client.post("/witness/cosign", data=cosign(new, NOTARY))).status == 200
    assert (await (await client.get(f"/checkpoint/{cp_new.size}")).text()).count("notary.example/w1") == 1
    page = await (await client.get(f"/v/{codes['voided']}")).text()  # the cached page is refreshed
    assert "notary.example/w1: cosigned at" in page and f"a checkpoint of {cp_new.size} entries" in page
    v = await (await client.get(f"/v/{codes['voided']}.json")).json()
    assert [w["witness"] for w in v["witnesses"]] == ["notary.example/w1"] and v["witnesses"][0]["size"] == cp_new.size
    # proofs of events carry the cosigned checkpoint (DESIGN: tlog-proof with a cosigned checkpoint)
    from verifier.tlogproof import verify_tlog_proof

    proof = led.prove(0, cp_new.size).to_text()
    verify_tlog_proof(proof, led.log.entry(0), key, witnesses=[NOTARY.verifier], witness_quorum=1)
    import subprocess
    import sys

    (tmp_path / "proof").write_text(proof)
    (tmp_path / "entry").write_bytes(led.log.entry(0))

    def verify(*witness: str) -> subprocess.CompletedProcess[str]:
        args = [a for w in witness for a in ("--witness", w)]
        return subprocess.run([str(Path(sys.executable).parent / "verifier"), "proof", str(tmp_path / "proof"),
                               "--entry", str(tmp_path / "entry"), "--key", led.verifier_key, *args],
                              capture_output=True, text=True, timeout=60)

    ok = verify(NOTARY.verifier.to_string())
    assert ok.returncode == 0 and "cosigned by at least 1 of 1 witnesses" in ok.stdout, ok.stdout + ok.stderr
    missing = verify(NOTARY.verifier.to_string(), STRANGER.verifier.to_string())
    assert missing.returncode == 1 and "1 valid witness cosignatures, 2 needed" in missing.stdout, missing.stdout
    # and the operator sees how far each witness has got
    from ledger.anchoring.witness import witness_status

    led.config = led.config.replace(witnesses=(NOTARY.verifier.to_string(), STRANGER.verifier.to_string()))
    status = {w["witness"]: w for w in witness_status(led)}
    assert status["notary.example/w1"]["size"] == cp_new.size and status["notary.example/w1"]["time"]
    assert status["stranger.example/w"] == {"witness": "stranger.example/w", "size": 0, "time": None}


async def test_what_a_witness_endpoint_refuses(aiohttp_client: Client, led: Ledger) -> None:
    led.append("t", [{"type": "envelope.created", "envelope": "E", "title": "x"}])
    client = await aiohttp_client(create_app(led))
    cp = led.log.latest_checkpoint
    text = parse_note(cp).text

    async def refused(body: str | bytes, status: int, code: str) -> None:
        r = await client.post("/witness/cosign", data=body)
        got = await r.json()
        assert (r.status, got["error"]["code"]) == (status, code), got

    await refused(cosign(cp, STRANGER), 422, "unknown_witness")
    await refused(cp, 422, "unknown_witness")  # the log's own signature is no cosignature
    bad = parse_note(cosign(cp, NOTARY))
    sig = bad.signatures[-1]
    forged = type(sig)(sig.name, sig.key_id, sig.signature[:8] + bytes(64))
    await refused(parse_note(cp).with_signature(forged).to_text(), 400, "bad_cosignature")
    # a checkpoint this log never published, even under its own key: a fork, refused and logged
    lines = text.split("\n")
    other = "\n".join([lines[0], lines[1], base64.b64encode(b"\x07" * 32).decode(), *lines[3:]])
    await refused(cosign(sign_note(other, led.log.signer).to_text(), NOTARY), 409, "not_published")
    await refused(cosign(sign_note(text.replace("\n1\n", "\n9\n", 1), led.log.signer).to_text(), NOTARY), 409,
                  "not_published")
    await refused(b"not a note", 400, "bad_checkpoint")
    await refused(cosign(sign_note("other.example/log\n1\n" + lines[2] + "\n", led.log.signer).to_text(), NOTARY),
                  400, "bad_checkpoint")
    await refused(b"x" * 70_000, 413, "too_large")
    for path, status in (("/checkpoint/99", 404), ("/proof/consistency/1/99", 404), ("/proof/consistency/0/1", 400),
                         ("/checkpoint/abc", 404)):
        r = await client.get(path)
        assert r.status == status, path
    assert led.log.conn.execute("SELECT count(*) FROM cosignatures").fetchone() == (0,)


def test_witness_keys_in_the_config_are_checked(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    cfg = home / "config.toml"
    cfg.write_text(f'witnesses = ["{NOTARY.verifier.to_string()}"]\n')
    assert load_config(home).witness_verifiers()[0].name == "notary.example/w1"
    for text, word in ((f'witnesses = "{NOTARY.verifier.to_string()}"\n', "list"),
                       ('witnesses = ["nope"]\n', "name\\+hexkeyid"),
                       (f'witnesses = ["{led_key()}"]\n', "witness key"),
                       (f'witnesses = ["{NOTARY.verifier.to_string()}", "{NOTARY.verifier.to_string()}"]\n',
                        "same name")):
        cfg.write_text(text)
        with pytest.raises(LedgerError, match=word):
            load_config(home)


def led_key() -> str:
    return LogSigner.generate("log.example/x").verifier_key  # an Ed25519 note key, not a witness key


async def test_the_notary_tools_make_a_key_and_a_cosignature_the_log_keeps(aiohttp_client: Client, led: Ledger,
                                                                          tmp_path: Path) -> None:
    import subprocess
    import sys

    def verifier(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "verifier"), *args], capture_output=True,
                              text=True, timeout=60)

    made = verifier("witness-key", "notary.example/cli", str(tmp_path / "notary.key"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "notary.key").stat().st_mode & 0o777 == 0o600
    again = verifier("witness-key", "notary.example/cli", str(tmp_path / "notary.key"))
    assert again.returncode == 2 and "exists" in again.stderr, "an existing key is never overwritten"
    led.config = led.config.replace(witnesses=(made.stdout.strip(),))
    led.append("t", [{"type": "envelope.created", "envelope": "E", "title": "x"}])
    (tmp_path / "cp").write_text(led.log.latest_checkpoint)
    now = datetime.now(UTC).isoformat()
    signed = verifier("cosign", str(tmp_path / "cp"), "--key", led.verifier_key, "--witness-key",
                      str(tmp_path / "notary.key"), "--at", now)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    client = await aiohttp_client(create_app(led))
    r = await client.post("/witness/cosign", data=signed.stdout)
    assert r.status == 200 and (await r.json())["accepted"] == ["notary.example/cli"]
    # a notary never cosigns a checkpoint the log key did not sign
    forger = LogSigner.generate(led.log.origin)
    (tmp_path / "forged").write_text(sign_note(parse_note(led.log.latest_checkpoint).text, forger).to_text())
    refused = verifier("cosign", str(tmp_path / "forged"), "--key", led.verifier_key, "--witness-key",
                       str(tmp_path / "notary.key"), "--at", now)
    assert refused.returncode == 1 and "NOT VERIFIED" in refused.stdout

