"""The seal registry: a tenant's electronic and physical seals, who may use them, `seal.used` accepted only
for a registered seal from a signer who signed, the uses listed, and the rows held to their notes by audit."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from PIL import Image

from ledger.audit.run import audit
from ledger.documents.sealstamp import png_bytes
from ledger.envelopes import seals
from ledger.envelopes.core import Ledger
from ledger.errors import RefusedError
from tests.browser_util import BIN
from tests.conftest import init_database, new_ledger

T = "tenant-a"
H = hashlib.sha256(b"doc").hexdigest()


def impression(colour: tuple[int, int, int] = (200, 0, 20)) -> bytes:
    """A scan of a physical seal's impression (a red disc on white)."""
    image = Image.new("RGB", (120, 120), (255, 255, 255))
    for x in range(120):
        for y in range(120):
            if (x - 60) ** 2 + (y - 60) ** 2 < 50 ** 2:
                image.putpixel((x, y), colour)
    return png_bytes(image)


def certificate(name: str = "Acme Contract Seal") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM)


def physical_seal(led: Ledger, tenant: str = T, *, roles: tuple[str, ...] = ("signer",),
                  parties: tuple[str, ...] = (), colour: tuple[int, int, int] = (200, 0, 20)) -> str:
    """Register a physical seal for `tenant`; returns its fingerprint."""
    return str(seals.register(led.log, led.blobs, tenant, kind="physical", name="合同专用章", image=impression(colour),
                              roles=roles, parties=parties)["fingerprint"])


def electronic_seal(led: Ledger, tenant: str = T, **kw: Any) -> str:
    kw.setdefault("roles", ("signer",))
    return str(seals.register(led.log, led.blobs, tenant, kind="electronic", name="Acme e-seal",
                              certificate=certificate(), **kw)["fingerprint"])


def ev(type: str, env: str = "E1", **fields: Any) -> dict[str, Any]:
    return {"type": type, "envelope": env, **fields}


def signed_envelope(env: str = "E1") -> list[dict[str, Any]]:
    return [ev("envelope.created", env, title="Contract"),
            ev("document.added", env, document="d", sha256=H, size=10, name="c.pdf"),
            ev("party.added", env, party="a", role="signer", order=1, name="A"),
            ev("party.added", env, party="b", role="signer", order=1, name="B"),
            ev("party.added", env, party="cc", role="cc", name="C"),
            ev("envelope.sent", env),
            ev("party.authenticated", env, party="a", method="ukey"),
            ev("party.signed", env, party="a", channel="ukey", document="d", signed_sha256=H)]


@pytest.fixture
def led(tmp_path: Path, engine: str) -> Iterator[Ledger]:
    ledger = new_ledger(tmp_path / "home", engine)
    yield ledger
    report = audit(ledger.log, blobs=ledger.blobs)
    assert report.ok, report.problems
    ledger.close()


def refused(led: Ledger, events: list[dict[str, Any]], code: str, tenant: str = T) -> str:
    before = led.log.size
    with pytest.raises(RefusedError) as exc:
        led.append(tenant, events)
    assert exc.value.code == code, exc.value
    assert led.log.size == before
    return str(exc.value)


def test_seal_used_needs_a_registered_seal_and_a_signer_who_signed(led: Ledger) -> None:
    led.append(T, signed_envelope())
    stamp, digital = physical_seal(led), electronic_seal(led, parties=("b",), roles=())
    message = refused(led, [ev("seal.used", party="a", seal=H, kind="physical")], "unknown_seal")
    assert "not registered" in message and "event 0 (seal.used on 'E1')" in message
    refused(led, [ev("seal.used", party="a", seal=stamp, kind="electronic")], "seal_wrong_kind")
    refused(led, [ev("seal.used", party="b", seal=stamp, kind="physical")], "seal_before_signing")
    refused(led, [ev("seal.used", party="cc", seal=stamp, kind="physical")], "not_a_signer")
    refused(led, [ev("seal.used", party="a", seal=digital, kind="electronic")], "seal_not_allowed")
    led.append(T, [ev("seal.used", party="a", seal=stamp, kind="physical")])
    # b authenticates, signs and seals in one request
    led.append(T, [ev("party.authenticated", party="b", method="face"),
                   ev("party.signed", party="b", channel="app", document="d", signed_sha256=H),
                   ev("seal.used", party="b", seal=digital.upper(), kind="electronic")])
    # another tenant cannot use this tenant's seal
    led.append("tenant-b", signed_envelope())
    refused(led, [ev("seal.used", party="a", seal=stamp, kind="physical")], "unknown_seal", tenant="tenant-b")
    listed = {s["fingerprint"]: s for s in seals.list_seals(led.log.conn, T)}
    assert [u["party"] for u in listed[stamp]["uses"]] == ["a"]
    assert [(u["envelope"], u["party"]) for u in listed[digital]["uses"]] == [("E1", "b")]
    assert listed[digital]["certificate"]["subject"] == "O=Acme Contract Seal"
    assert listed[stamp]["image_sha256"] == stamp and listed[stamp]["name"] == "合同专用章"
    assert seals.list_seals(led.log.conn, "tenant-b") == []


def test_a_retired_seal_is_refused_and_keeps_its_uses(led: Ledger) -> None:
    led.append(T, signed_envelope())
    stamp = physical_seal(led)
    led.append(T, [ev("seal.used", party="a", seal=stamp, kind="physical")])
    seals.retire(led.log, T, stamp)
    refused(led, [ev("seal.used", party="a", seal=stamp, kind="physical")], "seal_retired")
    (shown,) = seals.list_seals(led.log.conn, T)
    assert shown["retired"] and len(shown["uses"]) == 1
    with pytest.raises(RefusedError, match="no seal"):
        seals.retire(led.log, T, stamp)


@pytest.mark.parametrize(("kw", "code"), [
    ({"kind": "physical", "name": "x", "roles": ("signer",)}, "seal_bad_image"),
    ({"kind": "electronic", "name": "x", "roles": ("signer",)}, "seal_bad_certificate"),
    ({"kind": "electronic", "name": "x", "roles": ("signer",), "certificate": b"not a cert"}, "seal_bad_certificate"),
    ({"kind": "physical", "name": "x", "roles": ("signer",), "image": b"GIF89a...."}, "seal_bad_image"),
    ({"kind": "physical", "name": "x", "roles": (), "image": None}, "seal_no_users"),
    ({"kind": "physical", "name": "a\u202eb", "roles": ("signer",)}, "seal_bad_name"),
    ({"kind": "physical", "name": "", "roles": ("signer",)}, "seal_bad_name"),
    ({"kind": "physical", "name": "x", "roles": ("notary",)}, "seal_bad_role"),
    ({"kind": "physical", "name": "x", "parties": ("../a",)}, "seal_bad_party"),
    ({"kind": "round", "name": "x", "roles": ("signer",)}, "seal_bad_kind"),
])
def test_bad_registrations_are_refused(led: Ledger, kw: dict[str, Any], code: str) -> None:
    if kw.get("kind") == "physical" and "image" not in kw and code != "seal_bad_image":
        kw = {**kw, "image": impression()}
    if kw.get("image") is None:
        kw.pop("image", None)
    with pytest.raises(RefusedError) as exc:
        seals.register(led.log, led.blobs, T, **kw)
    assert exc.value.code == code and exc.value.status == 422, exc.value
    assert seals.list_seals(led.log.conn, T) == []


def test_registering_twice_is_refused(led: Ledger) -> None:
    physical_seal(led)
    with pytest.raises(RefusedError) as exc:
        physical_seal(led)
    assert exc.value.code == "seal_exists" and exc.value.status == 409


def test_audit_names_a_changed_or_deleted_registration(tmp_path: Path, engine: str) -> None:
    led = new_ledger(tmp_path / "home", engine)
    try:
        led.append(T, signed_envelope())
        stamp = physical_seal(led, parties=("a",), roles=())
        led.append(T, [ev("seal.used", party="a", seal=stamp, kind="physical")])
        assert audit(led.log, blobs=led.blobs).ok
        conn = led.log.conn
        conn.execute("UPDATE seals SET roles = ? WHERE fingerprint = ?", (json.dumps(["cc", "signer"]), stamp))
        problems = audit(led.log, blobs=led.blobs).problems
        assert any("seals row tenant=tenant-a" in p and "differs from what its note states" in p for p in problems)
        # and a use is refused while the row does not match its note
        refused(led, [ev("seal.used", party="a", seal=stamp, kind="physical")], "seal_row_tampered")
        conn.execute("DELETE FROM seals WHERE fingerprint = ?", (stamp,))
        problems = audit(led.log, blobs=led.blobs).problems
        assert any("seal.used names seal" in p and "not in tenant 'tenant-a'" in p for p in problems), problems
        conn.execute("DELETE FROM seal_uses")
        assert any("seal_uses table holds 0 rows" in p for p in audit(led.log, blobs=led.blobs).problems)
    finally:
        led.close()


def test_ledger_seals_from_the_command_line(tmp_path: Path, engine: str) -> None:
    home = tmp_path / "home"
    ledger = [str(BIN / "ledger"), "--home", str(home)]
    subprocess.run([*ledger, "init", *init_database(engine)], check=True, capture_output=True)
    (tmp_path / "stamp.png").write_bytes(impression())
    (tmp_path / "seal.pem").write_bytes(certificate())

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ledger, "seals", *args], capture_output=True, text=True)

    r = run("add", "--tenant", T, "--kind", "physical", "--name", "合同专用章", "--image", str(tmp_path / "stamp.png"),
            "--role", "signer")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    stamp = json.loads(r.stdout)["fingerprint"]
    assert stamp == hashlib.sha256((tmp_path / "stamp.png").read_bytes()).hexdigest()
    r = run("add", "--tenant", T, "--kind", "electronic", "--name", "Acme e-seal", "--certificate",
            str(tmp_path / "seal.pem"), "--party", "legal-1")
    assert r.returncode == 0, r.stderr
    r = run("add", "--tenant", T, "--kind", "electronic", "--name", "x", "--certificate", str(tmp_path / "stamp.png"),
            "--role", "signer")
    assert r.returncode != 0 and "seal certificate cannot be read" in r.stderr and "Traceback" not in r.stderr
    r = run("list", "--tenant", T)
    assert r.returncode == 0, r.stderr
    listed = {s["kind"]: s for s in json.loads(r.stdout)}
    assert len(listed) == 2 and listed["electronic"]["parties"] == ["legal-1"]
    r = run("retire", "--tenant", T, stamp)
    assert r.returncode == 0, r.stderr
    assert {s["kind"]: s for s in json.loads(run("list", "--tenant", T).stdout)}["physical"]["retired"]


async def test_seals_over_the_api_and_on_the_copy_page(aiohttp_client: Any, tmp_path: Path, engine: str) -> None:
    from ledger.access.apikeys import create_key
    from portal.app import create_app
    from tests.api.test_api_platform import auth, checked

    led = new_ledger(tmp_path / "home", engine)
    try:
        key, other = create_key(led.log, T, ["append", "read"]), create_key(led.log, "tenant-b", ["read"])
        client = await aiohttp_client(create_app(led, anchor=False))
        stamp = physical_seal(led, parties=("a",), roles=())
        r = await client.post("/api/v1/events", headers=auth(key), json=[
            {**e, "envelope": "E1"} for e in signed_envelope()]
            + [{"type": "seal.used", "envelope": "E1", "party": "a", "seal": stamp, "kind": "physical"}])
        assert r.status == 201, await r.text()
        r = await client.post("/api/v1/envelopes/E1/events", headers=auth(key), json={
            "type": "seal.used", "party": "b", "seal": stamp, "kind": "physical"})
        assert r.status == 409 and "must authenticate and sign before" in (await r.json())["error"]["message"]
        body = await checked(await client.get("/api/v1/seals", headers=auth(key)), "/api/v1/seals")
        (seal,) = body["seals"]
        assert seal["fingerprint"] == stamp and [(u["envelope"], u["party"]) for u in seal["uses"]] == [("E1", "a")]
        assert (await checked(await client.get("/api/v1/seals", headers=auth(other)), "/api/v1/seals")) == {"seals": []}
        assert (await client.get("/api/v1/seals")).status == 401
        assert (await client.get("/api/v1/seals?limit=0", headers=auth(key))).status == 400
        r = await client.post("/api/v1/envelopes/E1/copies", headers=auth(key), json={"document": "d"})
        (ack,) = (await r.json())["acks"]
        page = await (await client.get(f"/v/{ack['code']}", headers={"Accept-Language": "en"})).text()
        assert 'id="seals"' in page and "合同专用章" in page and stamp[:16] in page and "physical seal" in page
        view = await (await client.get(f"/v/{ack['code']}.json")).json()
        assert view["seals"] == [{"index": view["seals"][0]["index"], "party": view["parties"][0]["name"],
                                  "kind": "physical", "fingerprint": stamp, "name": "合同专用章"}]
    finally:
        led.close()
