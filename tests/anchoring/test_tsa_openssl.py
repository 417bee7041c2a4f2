"""Interoperability with OpenSSL: `openssl ts -verify` accepts the local TSA's tokens, and the verifier
accepts tokens made by `openssl ts -reply`, holding both to the critical-EKU rule of RFC 3161 §2.3."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import tsp

from ledger.anchoring.tsa import LocalTsa, build_request, create_local_tsa
from tests.pki import OpenSslTsa, openssl, tsa_dir
from verifier.timestamp import verify_timestamp

pytestmark = pytest.mark.slow

BODY = b"ledger.example/log\n3\nFrK0ww3qkNaFT6tYkW1pMGDuQyZcFNtf4zTaBvVKaws=\n"


def write(directory: Path, **files: bytes) -> None:
    for name, content in files.items():
        (directory / name).write_bytes(content)


def openssl_verify(directory: Path, *extra: str) -> str:
    """`openssl ts -verify` on data.txt and resp.tsr in `directory`; returns its output."""
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", "data.txt", "-in", "resp.tsr", *extra],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_openssl_verifies_local_tsa_tokens(tmp_path: Path, key_type: str) -> None:
    paths = create_local_tsa(tmp_path, key_type=key_type)
    write(tmp_path, **{"data.txt": BODY, "resp.tsr": LocalTsa.load(tmp_path).issue_token(BODY, nonce=12345)})
    assert "Verification: OK" in openssl_verify(tmp_path, "-CAfile", str(paths.root_cert))


def test_openssl_verifies_token_without_certificates_given_untrusted(tmp_path: Path) -> None:
    paths = create_local_tsa(tmp_path)
    write(
        tmp_path, **{"data.txt": BODY, "resp.tsr": LocalTsa.load(tmp_path).issue_token(BODY, cert_req=False)}
    )
    assert "Verification: OK" not in openssl_verify(tmp_path, "-CAfile", str(paths.root_cert))
    output = openssl_verify(tmp_path, "-CAfile", str(paths.root_cert), "-untrusted", str(paths.cert))
    assert "Verification: OK" in output


def test_local_tsa_answers_openssl_query(tmp_path: Path) -> None:
    paths = create_local_tsa(tmp_path)
    write(tmp_path, **{"data.txt": BODY})
    query = openssl("ts", "-query", "-data", "data.txt", "-sha256", "-cert", cwd=tmp_path)
    write(tmp_path, **{"query.tsq": query, "resp.tsr": LocalTsa.load(tmp_path).respond(query)})
    # -queryfile also checks the nonce OpenSSL put in its query
    output = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-queryfile",
            "query.tsq",
            "-in",
            "resp.tsr",
            "-CAfile",
            str(paths.root_cert),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" in output.stdout
    nonce = tsp.TimeStampReq.load(query)["nonce"].native
    report = verify_timestamp(
        (tmp_path / "resp.tsr").read_bytes(),
        data=BODY,
        trusted_roots=[paths.root_cert.read_bytes()],
        nonce=nonce,
    )
    assert report.ok, report.steps


@pytest.mark.parametrize(("ess_alg", "ess_name"), [("sha256", "ESSCertIDv2"), ("sha1", "ESSCertID ")])
def test_verifier_accepts_openssl_tsa_tokens(tmp_path: Path, ess_alg: str, ess_name: str) -> None:
    tsa = OpenSslTsa(tmp_path / "openssl-tsa", ess_alg=ess_alg)
    before = datetime.now(UTC)
    resp = tsa.reply(build_request(BODY, nonce=2**70 + 1, policy=OpenSslTsa.POLICY))
    window = (before - timedelta(seconds=5), datetime.now(UTC) + timedelta(seconds=5))
    report = verify_timestamp(
        resp,
        data=BODY,
        trusted_roots=[tsa.root_pem],
        nonce=2**70 + 1,
        policy=OpenSslTsa.POLICY,
        now_window=window,
    )
    assert report.ok, report.steps
    assert ess_name in report.steps[2].detail
    assert report.tsa_name is not None and "OpenSSL Test TSA" in report.tsa_name
    failed = verify_timestamp(resp, data=BODY + b"!", trusted_roots=[tsa.root_pem]).first_failure()
    assert failed is not None and failed.code == "imprint_mismatch"


def test_verifier_accepts_openssl_query_and_reply(tmp_path: Path) -> None:
    tsa = OpenSslTsa(tmp_path / "openssl-tsa")
    write(tmp_path, **{"data.txt": BODY})
    query = openssl("ts", "-query", "-data", "data.txt", "-sha256", "-cert", cwd=tmp_path)
    resp = tsa.reply(query)
    nonce = tsp.TimeStampReq.load(query)["nonce"].native
    assert verify_timestamp(resp, data=BODY, trusted_roots=[tsa.root_pem], nonce=nonce).ok


def test_non_critical_eku_is_refused_by_openssl_and_the_verifier(tmp_path: Path) -> None:
    # OpenSSL will not even sign with such a certificate (TS_RESP_CTX_set_signer_cert checks the
    # purpose), so the token comes from the local TSA loaded with a non-critical-EKU certificate.
    with pytest.raises(subprocess.CalledProcessError) as refused:
        OpenSslTsa(tmp_path / "openssl-tsa", critical_eku=False).reply(build_request(BODY, nonce=1))
    assert b"invalid signer certificate purpose" in refused.value.stderr

    directory = tsa_dir(tmp_path / "local", eku="non_critical")
    resp = LocalTsa.load(directory).issue_token(BODY)
    report = verify_timestamp(resp, data=BODY, trusted_roots=[(directory / "tsa-root.pem").read_bytes()])
    failed = report.first_failure()
    assert failed is not None and (failed.number, failed.code) == (5, "eku_not_critical")
    write(directory, **{"data.txt": BODY, "resp.tsr": resp})
    assert "Verification: OK" not in openssl_verify(directory, "-CAfile", "tsa-root.pem")
