"""The platform's seal as config.toml's `[seal]` table sets it: a PKCS#12 file, a PKCS#11 token
(SoftHSM2) whose key never leaves it, a registered seal image, and an external TSA's time-stamp; and
clear errors when the table, a file or a secret is wrong."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    load_der_public_key,
    pkcs12,
)
from PIL import Image

from ledger.config import load_config
from ledger.documents.sealca import create_seal_ca, load_seal
from ledger.documents.sealstamp import png_bytes
from ledger.envelopes.core import Ledger
from ledger.envelopes.sealing import seal_bytes
from ledger.errors import LedgerError
from tests.anchoring.test_anchor import start_http_tsa
from tests.documents.test_seal import SOFTHSM_MODULE, is_blue, make_pdf, render, softhsm  # noqa: F401 - the fixture
from verifier.documents.pdfsig import check_pdf

Server = Callable[..., Awaitable[TestServer]]
ORG = "Acme Seal Co"


def configured(home: Path, table: str) -> Ledger:
    if not home.exists():
        Ledger.init(home).close()
    (home / "config.toml").write_text((home / "config.toml").read_text() + "\n" + table)
    return Ledger.open(home)


def own_ca(home: Path) -> Path:
    """An organisation's own seal CA (standing in for a commercial one), beside the ledger's folder."""
    ca = home.parent / "acme-ca"
    create_seal_ca(ca, organisation=ORG, now=datetime.now(UTC))
    return ca


def blue_png() -> bytes:
    return png_bytes(Image.new("RGBA", (200, 200), (0, 60, 220, 255)))


def blue_pixels(pdf: bytes) -> int:
    pages = len(pdfium.PdfDocument(pdf))
    image = render(pdf, pages - 1)
    return sum(1 for x in range(image.width) for y in range(image.height) if is_blue(image.getpixel((x, y))))


def test_pkcs12_seal_with_its_image_and_validation_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    ca = own_ca(home)
    seal = load_seal(ca)
    p12 = pkcs12.serialize_key_and_certificates(b"acme", seal.key, seal.cert, [seal.root],
                                                BestAvailableEncryption(b"p12 secret"))
    (home / "acme.p12").write_bytes(p12)
    (home / "acme.png").write_bytes(blue_png())
    led = configured(home, f'[seal]\nkey = "pkcs12"\npkcs12 = "acme.p12"\npassphrase_env = "ACME_P12"\n'
                           f'chain = ["{ca}/seal-root.pem"]\nroots = ["{ca}/seal-root.pem"]\n'
                           f'crls = ["{ca}/seal-ca.crl"]\nlevel = "B-LT"\nimage = "acme.png"\n')
    try:
        assert "p12 secret" not in (home / "config.toml").read_text()
        with pytest.raises(LedgerError, match="ACME_P12"):
            seal_bytes(led, make_pdf(2))
        monkeypatch.setenv("ACME_P12", "p12 secret")
        pdf, certificate = seal_bytes(led, make_pdf(2))
        assert certificate == hashlib.sha256(seal.cert.public_bytes(Encoding.DER)).hexdigest()
        tsa_root = (home / "tsa" / "tsa-root.pem").read_bytes()
        report = check_pdf(pdf, roots=[seal.root.public_bytes(Encoding.PEM)], tsa_roots=[tsa_root], at=datetime.now(UTC))
        (sig,) = report.signatures
        assert report.ok and sig.intact and sig.trusted and sig.timestamp_ok, report.lines()
        assert ORG in sig.signer
        assert blue_pixels(pdf) > 1000, "the registered image is the seal's appearance"
        assert blue_pixels(make_pdf(2)) == 0
        # the portal's signature check trusts the [seal] roots
        from portal.pages.routes import trust_roots

        signers, _ = trust_roots(led)
        assert seal.root.public_bytes(Encoding.DER) in signers
    finally:
        led.close()


def test_pkcs11_seal_from_config_key_never_leaves_the_token(tmp_path: Path, softhsm: Path,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    from ledger.documents.sealca import certify_seal_key

    with pkcs11.lib(SOFTHSM_MODULE).get_token(token_label="seal").open(rw=True, user_pin="12345678") as rw:
        params = rw.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        public, private = params.generate_keypair(store=True, label="platform-seal", mechanism=Mechanism.EC_KEY_PAIR_GEN)
        assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
        public_key = load_der_public_key(encode_ec_public_key(public))
    home = tmp_path / "home"
    Ledger.init(home).close()
    ca = own_ca(home)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    cert = certify_seal_key(ca, public_key, organisation=ORG, now=datetime.now(UTC))
    (home / "token-cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    monkeypatch.setenv("SEAL_PIN", "12345678")
    led = configured(home, f'[seal]\nkey = "pkcs11"\npkcs11_module = "{SOFTHSM_MODULE}"\npkcs11_token = "seal"\n'
                           f'pkcs11_key = "platform-seal"\npin_env = "SEAL_PIN"\ncert = "token-cert.pem"\n'
                           f'chain = ["{ca}/seal-root.pem"]\nroots = ["{ca}/seal-root.pem"]\n'
                           f'crls = ["{ca}/seal-ca.crl"]\nlevel = "B-LT"\n')
    try:
        pdf, certificate = seal_bytes(led, make_pdf(1))
        assert certificate == hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        report = check_pdf(pdf, roots=[(ca / "seal-root.pem").read_bytes()],
                           tsa_roots=[(home / "tsa" / "tsa-root.pem").read_bytes()], at=datetime.now(UTC))
        assert report.ok and report.signatures[0].trusted, report.lines()
        with pkcs11.lib(SOFTHSM_MODULE).get_token(token_label="seal").open(user_pin="12345678") as s:
            assert list(s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: "platform-seal"}))
        monkeypatch.setenv("SEAL_PIN", "00000000")
        with pytest.raises(LedgerError, match="cannot open PKCS#11 token 'seal'") as exc:
            seal_bytes(led, make_pdf(1))
        assert "00000000" not in str(exc.value)
    finally:
        led.close()


async def test_seal_time_stamped_by_an_external_tsa(tmp_path: Path, aiohttp_server: Server) -> None:
    tsa, url = await start_http_tsa(tmp_path / "openssl-tsa", aiohttp_server)
    home = tmp_path / "home"
    Ledger.init(home).close()
    shutil.copy(tsa.root, home / "ext-root.pem")
    config = home / "config.toml"
    config.write_text(config.read_text().replace("local_tsa = true", "local_tsa = false"))
    led = configured(home, f'[[tsa]]\nname = "ext"\nurl = "{url}"\nroots = ["ext-root.pem"]\n'
                           f'\n[seal]\ntsa = "ext"\n')
    try:
        pdf, _ = await asyncio.to_thread(seal_bytes, led, make_pdf(1))
        report = check_pdf(pdf, roots=[(home / "seal" / "seal-root.pem").read_bytes()],
                           tsa_roots=[tsa.root.read_bytes()], at=datetime.now(UTC))
        (sig,) = report.signatures
        assert report.ok and sig.timestamp_ok and sig.tsa, report.lines()
        local = (home / "tsa" / "tsa-root.pem").read_bytes()
        assert not check_pdf(pdf, roots=[(home / "seal" / "seal-root.pem").read_bytes()], tsa_roots=[local],
                             at=datetime.now(UTC)).signatures[0].timestamp_ok, "the external TSA's, not the local one's"
    finally:
        led.close()


@pytest.mark.parametrize(("table", "message"), [
    ('key = "hsm"', "key must be one of local, pkcs12, pkcs11"),
    ('key = "pkcs11"\npkcs11_module = "/x.so"', "needs pkcs11_module, pkcs11_token, pkcs11_key, pin_env, cert"),
    ('key = "pkcs12"\nlevel = "B-LT"\npkcs12 = "a.p12"', "needs roots"),
    ('level = "B-B"', "level must be"),
    ('tsa = "nowhere"', "names no [[tsa]] table"),
    ('roots = "one.pem"', "roots must be a list of file paths"),
    ('pin = "1234"', "unknown key(s) pin"),
])
def test_bad_seal_tables_are_refused(tmp_path: Path, table: str, message: str) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    (home / "config.toml").write_text((home / "config.toml").read_text() + "\n[seal]\n" + table + "\n")
    with pytest.raises(LedgerError) as exc:
        load_config(home)
    assert message in str(exc.value) and "[seal]" in str(exc.value)


def test_a_missing_seal_file_is_named(tmp_path: Path) -> None:
    led = configured(tmp_path / "home", '[seal]\nimage = "no-such.png"\n')
    try:
        with pytest.raises(LedgerError, match="cannot read the seal image .*no-such.png"):
            seal_bytes(led, make_pdf(1))
    finally:
        led.close()

