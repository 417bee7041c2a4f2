"""RFC 3161 tokens from the local TSA: every good token verifies, every named defect is refused with its code."""

from __future__ import annotations

import ast
import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import algos, cms, tsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.anchoring.tsa import DEFAULT_POLICY, MAX_REQUEST_BYTES, LocalTsa, build_request, create_local_tsa
from tests.conftest import ROOT
from tests.pki import OTHER_ROOT_CN, make_root, make_tsa_cert, tsa_dir, write_tsa_dir
from verifier._cms import TimeStampResp, signed_attrs_der
from verifier.errors import FormatError, TimestampError
from verifier.timestamp import TimestampReport, TstInfo, token_from_response, verify_timestamp

GEN = datetime(2026, 11, 27, 18, 0, 0, 123456, tzinfo=UTC)
GEN_MS = GEN.replace(microsecond=123000)
BODY = b"ledger.example/log\n12\nq5o1bSeFHTG/8dBPS0KvEDsbuW/ZoBL/n7Ygyw+UKrM=\n"


def fixed_clock(moment: datetime = GEN):
    return lambda: moment


def load(directory: Path, moment: datetime = GEN) -> LocalTsa:
    return LocalTsa.load(directory, clock=fixed_clock(moment))


@pytest.fixture(scope="module", params=["ec", "rsa"])
def local_tsa(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LocalTsa:
    directory = tmp_path_factory.mktemp(f"tsa-{request.param}")
    create_local_tsa(directory, key_type=request.param, now=GEN - timedelta(days=1))
    return load(directory)


@pytest.fixture(scope="module")
def ec_tsa(tmp_path_factory: pytest.TempPathFactory) -> LocalTsa:
    directory = tmp_path_factory.mktemp("tsa-ec")
    create_local_tsa(directory, now=GEN - timedelta(days=1))
    return load(directory)


def check(tsa: LocalTsa, resp: bytes, data: bytes = BODY, **kwargs: object) -> TimestampReport:
    kwargs.setdefault("trusted_roots", [tsa.paths.root_cert.read_bytes()])
    return verify_timestamp(resp, data=data, **kwargs)  # type: ignore[arg-type]


def failure(report: TimestampReport) -> tuple[int, str]:
    assert not report.ok
    step = report.first_failure()
    assert step is not None
    return step.number, step.code


def redump(resp: bytes, edit) -> bytes:
    """Re-encode a response after `edit(signed_data)` changes an unsigned or re-signed part."""
    parsed = tsp.TimeStampResp.load(resp)
    edit(parsed["time_stamp_token"]["content"])
    edited = parsed.dump()  # asn1crypto re-encodes only the mutated parts
    assert edited != resp
    return bytes(edited)


def test_local_tsa_token_verifies(local_tsa: LocalTsa) -> None:
    report = check(local_tsa, local_tsa.issue_token(BODY), policy=DEFAULT_POLICY)
    assert report.ok, report.steps
    assert [step.number for step in report.steps] == list(range(1, 10))
    assert report.gen_time == GEN_MS
    assert report.policy == DEFAULT_POLICY
    assert report.tsa_name is not None and "Local TSA (not accredited)" in report.tsa_name
    assert report.signer_cert_der == local_tsa.cert_der
    assert report.require_valid() is report


def test_gen_time_has_millisecond_precision(ec_tsa: LocalTsa) -> None:
    token = token_from_response(ec_tsa.issue_token(BODY))
    assert b"20261127180000.123Z" in token
    info = TstInfo.from_der(bytes(cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"]))
    assert info.gen_time == GEN_MS and info.accuracy == timedelta(seconds=1) and info.version == 1


def test_bare_token_verifies(ec_tsa: LocalTsa) -> None:
    report = check(ec_tsa, token_from_response(ec_tsa.issue_token(BODY)))
    assert report.ok and "bare" in report.steps[0].detail


def test_other_data_is_refused(ec_tsa: LocalTsa) -> None:
    report = check(ec_tsa, ec_tsa.issue_token(BODY), data=BODY + b"x")
    assert failure(report) == (7, "imprint_mismatch")
    with pytest.raises(TimestampError, match=r"\(7\) message imprint") as raised:
        report.require_valid()
    assert raised.value.code == "imprint_mismatch"


def test_flipped_signature_byte_is_refused(local_tsa: LocalTsa) -> None:
    resp = local_tsa.issue_token(BODY)
    signature = tsp.TimeStampResp.load(resp)["time_stamp_token"]["content"]["signer_infos"][0][
        "signature"
    ].native
    at = resp.index(signature) + len(signature) // 2
    tampered = resp[:at] + bytes([resp[at] ^ 0x01]) + resp[at + 1 :]
    assert failure(check(local_tsa, tampered)) == (4, "bad_signature")


@pytest.mark.parametrize(
    ("eku", "code"),
    [("non_critical", "eku_not_critical"), ("absent", "eku_missing"), ("extra", "eku_not_exclusive")],
)
def test_tsa_certificate_without_sole_critical_eku_is_refused(tmp_path: Path, eku: str, code: str) -> None:
    tsa = load(tsa_dir(tmp_path, eku=eku))
    assert failure(check(tsa, tsa.issue_token(BODY))) == (5, code)


def test_chain_to_untrusted_root_is_refused(ec_tsa: LocalTsa) -> None:
    report = check(ec_tsa, ec_tsa.issue_token(BODY), trusted_roots=[make_root(OTHER_ROOT_CN).pem])
    assert failure(report) == (6, "untrusted_root")
    assert failure(check(ec_tsa, ec_tsa.issue_token(BODY), trusted_roots=[])) == (6, "untrusted_root")


@pytest.mark.parametrize(
    ("moment", "code"),
    [
        (datetime(2022, 6, 1, tzinfo=UTC), "cert_expired"),
        (datetime(2019, 6, 1, tzinfo=UTC), "cert_not_yet_valid"),
    ],
)
def test_certificate_invalid_at_gen_time_is_refused(tmp_path: Path, moment: datetime, code: str) -> None:
    directory = tsa_dir(
        tmp_path, not_before=datetime(2020, 1, 1, tzinfo=UTC), not_after=datetime(2021, 1, 1, tzinfo=UTC)
    )
    tsa = load(directory, moment)
    report = check(tsa, tsa.issue_token(BODY))
    assert failure(report) == (6, code)
    assert [step.number for step in report.steps if not step.ok] == [6]


def test_nonce_is_echoed_and_checked(ec_tsa: LocalTsa) -> None:
    nonce = 2**64 + 5
    resp = ec_tsa.issue_token(BODY, nonce=nonce)
    report = check(ec_tsa, resp, nonce=nonce)
    assert report.ok and report.tst_info is not None and report.tst_info.nonce == nonce
    assert failure(check(ec_tsa, resp, nonce=nonce + 1)) == (8, "nonce_mismatch")
    assert failure(check(ec_tsa, ec_tsa.issue_token(BODY), nonce=nonce)) == (8, "nonce_mismatch")


def test_wrong_policy_is_refused(ec_tsa: LocalTsa) -> None:
    assert failure(check(ec_tsa, ec_tsa.issue_token(BODY), policy="1.2.3.4")) == (8, "policy_mismatch")


def test_gen_time_outside_window_is_refused(ec_tsa: LocalTsa) -> None:
    resp = ec_tsa.issue_token(BODY)
    assert check(ec_tsa, resp, now_window=(GEN - timedelta(seconds=5), GEN + timedelta(seconds=5))).ok
    # genTime ± 1 s accuracy may still fall in a window that ends half a second before genTime
    assert check(ec_tsa, resp, now_window=(GEN - timedelta(seconds=5), GEN - timedelta(seconds=0.5))).ok
    late = (GEN + timedelta(seconds=2), GEN + timedelta(hours=1))
    assert failure(check(ec_tsa, resp, now_window=late)) == (9, "time_out_of_window")
    with pytest.raises(ValueError, match="timezone-aware"):
        check(ec_tsa, resp, now_window=(datetime(2026, 1, 1), datetime(2027, 1, 1)))


@pytest.mark.parametrize(
    "blob", [b"", b"garbage", b"\x30\x03\x02\x01\x00", b"\x30\x80" + b"\x00" * 40, b"\x06\x01"]
)
def test_garbage_is_a_failed_step_not_an_exception(ec_tsa: LocalTsa, blob: bytes) -> None:
    report = check(ec_tsa, blob)
    assert failure(report) in {(1, "malformed"), (2, "malformed")}
    with pytest.raises(TimestampError):
        report.require_valid()
    with pytest.raises(TimestampError):
        token_from_response(blob)
    with pytest.raises(FormatError):
        TstInfo.from_der(blob)


def _md5_request() -> bytes:
    imprint = {"hash_algorithm": {"algorithm": "md5"}, "hashed_message": hashlib.md5(BODY).digest()}
    return tsp.TimeStampReq({"version": "v1", "message_imprint": imprint}).dump()


@pytest.mark.parametrize(
    ("request_der", "fail_info"),
    [
        (b"not a request", "bad_request"),
        (build_request(BODY, nonce=1) + b"\x00", "bad_request"),
        (
            b"\x30\x84" + (MAX_REQUEST_BYTES + 10).to_bytes(4, "big") + b"\x00" * (MAX_REQUEST_BYTES + 10),
            "bad_request",
        ),
        (_md5_request(), "bad_alg"),
        (build_request(BODY, nonce=1, policy="1.2.3.4"), "unaccepted_policy"),
    ],
)
def test_bad_requests_get_a_rejection(ec_tsa: LocalTsa, request_der: bytes, fail_info: str) -> None:
    resp = ec_tsa.respond(request_der)
    status = TimeStampResp.load(resp)["status"].native
    assert status["status"] == "rejection" and status["fail_info"] == {fail_info}
    assert failure(check(ec_tsa, resp)) == (1, "not_granted")
    with pytest.raises(TimestampError) as raised:
        token_from_response(resp)
    assert raised.value.code == "not_granted"


def test_own_policy_is_accepted(ec_tsa: LocalTsa) -> None:
    resp = ec_tsa.respond(build_request(BODY, nonce=None, policy=DEFAULT_POLICY))
    assert check(ec_tsa, resp, policy=DEFAULT_POLICY).ok


def test_without_cert_req_the_tsa_certificate_must_come_from_extra_certs(ec_tsa: LocalTsa) -> None:
    resp = ec_tsa.issue_token(BODY, cert_req=False)
    signed_data = tsp.TimeStampResp.load(resp)["time_stamp_token"]["content"]
    assert signed_data["certificates"].native is None
    assert failure(check(ec_tsa, resp)) == (2, "signer_not_found")
    # the root alone does not stand in for the signer: the signer is found by its identifier
    assert failure(check(ec_tsa, resp, extra_certs=[ec_tsa.root_der])) == (2, "signer_not_found")
    assert check(ec_tsa, resp, extra_certs=[ec_tsa.paths.cert.read_bytes()]).ok


def test_signer_is_found_by_identifier_not_position(ec_tsa: LocalTsa) -> None:
    root = cms.CertificateChoices({"certificate": cms.Certificate.load(ec_tsa.root_der)})

    def root_first(signed_data: cms.SignedData) -> None:
        signed_data["certificates"] = [root, *signed_data["certificates"]]

    assert check(ec_tsa, redump(ec_tsa.issue_token(BODY), root_first)).ok


def test_signer_found_by_subject_key_identifier(ec_tsa: LocalTsa) -> None:
    ski = cms.Certificate.load(ec_tsa.cert_der).key_identifier

    def use_ski(signed_data: cms.SignedData) -> None:
        signed_data["signer_infos"][0]["sid"] = cms.SignerIdentifier({"subject_key_identifier": ski})

    assert check(ec_tsa, redump(ec_tsa.issue_token(BODY), use_ski)).ok


def test_reissued_certificate_with_same_serial_fails_ess_check(tmp_path: Path) -> None:
    root = make_root()
    original = make_tsa_cert(root, serial=77)
    tsa = load(write_tsa_dir(tmp_path, root=root, tsa=original))
    resp = tsa.issue_token(BODY, cert_req=False)
    assert check(tsa, resp, extra_certs=[original.der]).ok
    # same key, issuer and serial, different certificate: only ESSCertIDv2 tells them apart
    impostor = make_tsa_cert(root, key=original.key, serial=77, not_after=datetime(2039, 1, 1, tzinfo=UTC))
    assert failure(check(tsa, resp, extra_certs=[impostor.der])) == (3, "ess_cert_mismatch")


def test_rsa_pss_signature_verifies(tmp_path: Path) -> None:
    tsa = load(tsa_dir(tmp_path, key_type="rsa"))
    key = serialization.load_pem_private_key(tsa.paths.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    pss = algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
                "salt_length": 32,
            },
        }
    )

    def resign_with_pss(signed_data: cms.SignedData) -> None:
        signer_info = signed_data["signer_infos"][0]
        pss_padding = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signer_info["signature_algorithm"] = pss
        signer_info["signature"] = key.sign(signed_attrs_der(signer_info), pss_padding, hashes.SHA256())

    report = check(tsa, redump(tsa.issue_token(BODY), resign_with_pss))
    assert report.ok and "rsassa_pss" in report.steps[3].detail


def test_serials_unique_across_instances_threads_and_restarts(tmp_path: Path) -> None:
    create_local_tsa(tmp_path, now=GEN - timedelta(days=1))
    first, second = load(tmp_path), load(tmp_path)

    def serial(tsa: LocalTsa) -> int:
        token = token_from_response(tsa.issue_token(BODY))
        return TstInfo.from_der(
            bytes(cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"])
        ).serial

    with ThreadPoolExecutor(max_workers=8) as pool:
        serials = list(pool.map(serial, [first, second] * 15))
    assert len(set(serials)) == len(serials) == 30
    assert serial(load(tmp_path)) > max(serials)


def test_create_local_tsa_layout(tmp_path: Path) -> None:
    paths = create_local_tsa(tmp_path / "tsa")
    assert paths.key.stat().st_mode & 0o777 == 0o600
    assert b"not accredited" in LocalTsa.load(paths.directory).name.encode()
    with pytest.raises(FileExistsError):
        create_local_tsa(paths.directory)


async def test_verify_inside_a_running_event_loop(ec_tsa: LocalTsa) -> None:
    assert check(ec_tsa, ec_tsa.issue_token(BODY)).ok


@pytest.fixture(scope="module")
def valid_response(ec_tsa: LocalTsa) -> bytes:
    return ec_tsa.issue_token(BODY, nonce=99)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_tokens_never_crash(ec_tsa: LocalTsa, valid_response: bytes, data: st.DataObject) -> None:
    blob = bytearray(valid_response)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    report = check(ec_tsa, bytes(blob), nonce=99)
    assert isinstance(report, TimestampReport)
    try:
        report.require_valid()
    except TimestampError:
        assert not report.ok


VERIFIER_MODULES = [ROOT / "verifier" / name for name in ("timestamp.py", "_cms.py")]


@pytest.mark.parametrize("module", VERIFIER_MODULES, ids=lambda p: p.name)
def test_timestamp_verifier_is_pure(module: Path) -> None:
    tree = ast.parse(module.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    roots = {name.split(".")[0] for name in imported}
    assert not roots & {"aiohttp", "sqlite3", "sqlite_utils", "ledger", "portal", "time", "socket", "urllib"}
    calls = {f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}  # fmt: skip
    assert not calls & {"datetime.now", "datetime.utcnow", "time.time", "date.today"}
