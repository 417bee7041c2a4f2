"""Verification of RFC 3161 time-stamp tokens (the ledger's checkpoint anchors).

What it does: take a TimeStampResp (RFC 3161 §2.4.2) or a bare TimeStampToken, the time-stamped
data, trusted root certificates and, optionally, the expected nonce, policy and a time window, and
return a `TimestampReport` with one line per numbered check, in the order of DESIGN.md §3 "Anchor":

 (1) status granted (RFC 3161 §2.4.2)
 (2) one SignerInfo over id-ct-TSTInfo, its certificate found by sid (RFC 3161 §2.4.2, RFC 5652 §5.3)
 (3) ESSCertID / ESSCertIDv2 match the signer (RFC 2634 §5.4, RFC 5816 §2.2.1)
 (4) message-digest and signature over the signed attributes (RFC 5652 §5.4, §11.2)
 (5) extended key usage timeStamping, critical and alone (RFC 3161 §2.3)
 (6) certificate path to a trusted root, valid at genTime (RFC 5280 §6, RFC 3161 §4 item 3)
 (7) message imprint algorithm and value (RFC 3161 §2.4.2)
 (8) nonce and policy as requested (RFC 3161 §2.4.2)
 (9) genTime, widened by its accuracy, overlaps the caller's window (RFC 3161 §2.4.2)

What it does not do: I/O, network, revocation fetching, or reading a clock. Time comes only from the
caller (`now_window`) and from the token (genTime). Malformed input never raises: it is a failed step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from asn1crypto import cms, core, tsp, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    RevokedError,
    ValidationError,
)

from verifier import _cms
from verifier._cms import CheckFailed, is_present
from verifier.errors import FormatError, TimestampError

_T = TypeVar("_T")


@dataclass(frozen=True)
class Step:
    """One numbered check; `code` names the failure (empty when `ok`)."""

    number: int
    name: str
    ok: bool
    detail: str
    code: str = ""


@dataclass(frozen=True)
class TstInfo:
    """The fields of an RFC 3161 §2.4.2 TSTInfo, parsed."""

    version: int
    policy: str
    hash_algorithm: str
    hashed_message: bytes
    serial: int
    gen_time: datetime
    accuracy: timedelta | None
    ordering: bool
    nonce: int | None
    tsa: str | None

    @classmethod
    def from_der(cls, der: bytes) -> TstInfo:
        """Parse DER TSTInfo. Raises `FormatError` if it is not one."""
        try:
            return cls._from_asn1(tsp.TSTInfo.load(der, strict=True))
        except FormatError:
            raise
        except Exception as exc:  # asn1crypto raises many exception types on hostile input
            raise FormatError(f"not a TSTInfo: {exc}") from exc

    @classmethod
    def _from_asn1(cls, tst: tsp.TSTInfo) -> TstInfo:
        gen_time = tst["gen_time"].native
        if not isinstance(gen_time, datetime) or gen_time.utcoffset() != timedelta(0):
            raise FormatError("genTime is not a UTC GeneralizedTime (RFC 3161 §2.4.2)")
        accuracy = None
        if is_present(tst["accuracy"]):
            parts = tst["accuracy"].native
            accuracy = timedelta(
                seconds=parts["seconds"] or 0,
                milliseconds=parts["millis"] or 0,
                microseconds=parts["micros"] or 0,
            )
        imprint = tst["message_imprint"]
        return cls(
            version=int(tst["version"]),
            policy=tst["policy"].dotted,
            hash_algorithm=imprint["hash_algorithm"]["algorithm"].native,
            hashed_message=imprint["hashed_message"].native,
            serial=tst["serial_number"].native,
            gen_time=gen_time,
            accuracy=accuracy,
            ordering=bool(tst["ordering"].native),
            nonce=tst["nonce"].native,
            tsa=_cms.general_name_text(tst["tsa"]) if is_present(tst["tsa"]) else None,
        )


@dataclass(frozen=True)
class TimestampReport:
    """The outcome of `verify_timestamp`: every step that ran, and the token's main fields."""

    steps: tuple[Step, ...]
    ok: bool
    gen_time: datetime | None = None
    serial: int | None = None
    tsa_name: str | None = None
    policy: str | None = None
    signer_cert_der: bytes | None = None
    tst_info: TstInfo | None = None

    def first_failure(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)

    def require_valid(self) -> TimestampReport:
        """Return self if every check passed, else raise `TimestampError` naming the first failure."""
        failed = self.first_failure()
        if failed is not None:
            raise TimestampError(
                f"time-stamp check ({failed.number}) {failed.name} failed: {failed.detail}", code=failed.code
            )
        if not self.ok:
            raise TimestampError("time-stamp verification did not complete", code="malformed")
        return self


def token_from_response(resp_der: bytes) -> bytes:
    """The TimeStampToken (a CMS ContentInfo) inside a granted TimeStampResp.

    Raises:
        TimestampError: code `not_granted` for a refusal, `malformed` for bytes that do not parse.
    """
    try:
        resp = _cms.TimeStampResp.load(resp_der, strict=True)
        _check_status(resp)
        return cast(bytes, resp["time_stamp_token"].dump())
    except CheckFailed as exc:
        raise TimestampError(exc.detail, code=exc.code) from exc
    except Exception as exc:  # asn1crypto raises many exception types on hostile input
        raise TimestampError(f"not a TimeStampResp: {exc}", code="malformed") from exc


def verify_timestamp(
    response_or_token: bytes,
    *,
    data: bytes,
    trusted_roots: Sequence[bytes],
    now_window: tuple[datetime, datetime] | None = None,
    nonce: int | None = None,
    policy: str | None = None,
    extra_certs: Sequence[bytes] = (),
) -> TimestampReport:
    """Check an RFC 3161 time-stamp over `data`; see the module docstring for the nine steps.

    Args:
        response_or_token: DER TimeStampResp or TimeStampToken (ContentInfo).
        data: the bytes that were time-stamped (for an anchor, the checkpoint body).
        trusted_roots: DER or PEM root certificates; the signer must chain to one of them.
        now_window: (earliest, latest) aware datetimes the time-stamp must fall in.
        nonce: the nonce sent in the request, if any.
        policy: the TSA policy OID required, if any.
        extra_certs: DER or PEM certificates (the TSA's, intermediates) when the token lacks them.

    Returns:
        A report; `report.ok` is True only if all nine steps ran and passed.
    """
    if now_window is not None and any(moment.utcoffset() is None for moment in now_window):
        raise ValueError("now_window needs timezone-aware datetimes")
    run = _Runner()
    parsed: dict[str, Any] = {}
    # (1) status granted, if a response was given (RFC 3161 §2.4.2)
    if not run.step(1, "status granted", lambda: _step_status(response_or_token, parsed)):
        return run.report()
    # (2) one SignerInfo over id-ct-TSTInfo, signer found by sid (RFC 5652 §5.3)
    if not run.step(2, "signer identified", lambda: _step_signer(parsed, extra_certs)):
        return run.report()
    signer_info: cms.SignerInfo = parsed["signer_info"]
    cert: x509.Certificate = parsed["cert"]
    tst: TstInfo = parsed["tst"]
    # (3) ESSCertID / ESSCertIDv2 match the signer (RFC 5816 §2.2.1)
    run.step(
        3, "signing certificate attribute", lambda: _cms.check_ess_signing_certificate(signer_info, cert)
    )
    # (4) message digest and signature (RFC 5652 §5.4, §11.1, §11.2)
    run.step(4, "signature", lambda: _step_signature(parsed))
    # (5) EKU timeStamping, critical and alone (RFC 3161 §2.3)
    run.step(5, "extended key usage timeStamping", lambda: _cms.check_time_stamping_eku(cert))
    # (6) path to a trusted root valid at genTime (RFC 5280 §6.1, RFC 3161 §4)
    run.step(6, "certificate chain", lambda: _step_chain(cert, parsed["certs"], trusted_roots, tst.gen_time))
    # (7) message imprint (RFC 3161 §2.4.2)
    run.step(7, "message imprint", lambda: _step_imprint(tst, data))
    # (8) nonce and policy (RFC 3161 §2.4.2)
    run.step(8, "nonce and policy", lambda: _step_nonce_policy(tst, nonce, policy))
    # (9) genTime within the window, widened by accuracy (RFC 3161 §2.4.2)
    run.step(9, "time within window", lambda: _step_window(tst, now_window))
    return run.report(
        gen_time=tst.gen_time,
        serial=tst.serial,
        tsa_name=cert.subject.human_friendly,
        policy=tst.policy,
        signer_cert_der=cert.dump(),
        tst_info=tst,
    )


class _Runner:
    def __init__(self) -> None:
        self.steps: list[Step] = []

    def step(self, number: int, name: str, check: Callable[[], str]) -> bool:
        try:
            detail = check()
        except CheckFailed as exc:
            self.steps.append(Step(number, name, False, exc.detail, exc.code))
            return False
        except Exception as exc:  # hostile ASN.1 makes asn1crypto raise many types; all mean malformed
            self.steps.append(
                Step(number, name, False, f"malformed: {type(exc).__name__}: {exc}", "malformed")
            )
            return False
        self.steps.append(Step(number, name, True, detail))
        return True

    def report(self, **fields: Any) -> TimestampReport:
        ok = len(self.steps) == 9 and all(step.ok for step in self.steps)
        return TimestampReport(steps=tuple(self.steps), ok=ok, **fields)


def _check_status(resp: _cms.TimeStampResp) -> str:
    status = resp["status"]
    name = str(status["status"].native)
    if name not in ("granted", "granted_with_mods"):
        text = "; ".join(status["status_string"].native or []) if is_present(status["status_string"]) else ""
        fail = sorted(status["fail_info"].native) if is_present(status["fail_info"]) else []
        raise CheckFailed("not_granted", f"TSA answered {name} (failInfo {fail or 'none'}) {text}".strip())
    if not is_present(resp["time_stamp_token"]):
        raise CheckFailed("malformed", f"status {name} but no timeStampToken")
    return name


def _step_status(blob: bytes, parsed: dict[str, Any]) -> str:
    outer = core.Sequence.load(blob, strict=True)
    first = core.load(outer.contents) if outer.contents else None
    if isinstance(first, core.ObjectIdentifier):
        parsed["token"] = cms.ContentInfo.load(blob, strict=True)
        return "bare TimeStampToken, no status to check"
    resp = _cms.TimeStampResp.load(blob, strict=True)
    name = _check_status(resp)
    parsed["token"] = resp["time_stamp_token"]
    return f"status {name}"


def _step_signer(parsed: dict[str, Any], extra_certs: Sequence[bytes]) -> str:
    token = parsed["token"]
    if token["content_type"].native != "signed_data":
        raise CheckFailed("malformed", "the token is not CMS SignedData (RFC 3161 §2.4.2)")
    signed_data = token["content"]
    encap = signed_data["encap_content_info"]
    if encap["content_type"].dotted != _cms.ID_CT_TSTINFO:
        raise CheckFailed(
            "malformed", f"encapsulated content is {encap['content_type'].dotted}, not id-ct-TSTInfo"
        )
    if not is_present(encap["content"]):
        raise CheckFailed("malformed", "the TSTInfo is missing (detached content)")
    parsed["econtent"] = bytes(encap["content"])
    tst = TstInfo.from_der(parsed["econtent"])
    if tst.version != 1:
        raise CheckFailed("malformed", f"TSTInfo version {tst.version}, expected 1")
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise CheckFailed("malformed", f"{len(signer_infos)} SignerInfos, RFC 3161 §2.4.2 requires one")
    certs = _cms.token_certificates(signed_data) + _cms.load_certificates(extra_certs)
    signer_info = signer_infos[0]
    cert = _cms.find_signer(signer_info, certs)
    if tst.tsa is not None:
        _cms.check_tsa_name(tst.tsa, cert)
    parsed.update(tst=tst, signer_info=signer_info, cert=cert, certs=certs)
    return f"signer {cert.subject.human_friendly!r}, serial {cert.serial_number}"


def _step_signature(parsed: dict[str, Any]) -> str:
    signer_info = parsed["signer_info"]
    if not is_present(signer_info["signed_attrs"]):
        raise CheckFailed("bad_signature", "no signed attributes (RFC 3161 §2.4.2 requires them)")
    content_type = _cms.signed_attribute(signer_info, "content_type")
    if content_type is None or content_type.dotted != _cms.ID_CT_TSTINFO:
        raise CheckFailed("bad_signature", "content-type attribute is not id-ct-TSTInfo (RFC 5652 §11.1)")
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in ("sha224", *_cms.STRONG_DIGESTS):
        raise CheckFailed("bad_algorithm", f"digest algorithm {digest_name} is not accepted")
    message_digest = _cms.signed_attribute(signer_info, "message_digest")
    if message_digest is None or message_digest.native != _cms.digest(digest_name, parsed["econtent"]):
        raise CheckFailed(
            "bad_signature", "message-digest attribute does not match the TSTInfo (RFC 5652 §11.2)"
        )
    used = _cms.verify_signature(signer_info, parsed["cert"], _cms.signed_attrs_der(signer_info))
    return f"{used} signature verifies"


def _step_chain(
    cert: x509.Certificate, certs: list[x509.Certificate], trusted_roots: Sequence[bytes], gen_time: datetime
) -> str:
    roots = _cms.load_certificates(trusted_roots)
    if not roots:
        raise CheckFailed("untrusted_root", "no trusted root certificates were configured")
    context = ValidationContext(
        trust_roots=roots,
        other_certs=certs,
        moment=gen_time,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    validator = CertificateValidator(cert, validation_context=context)
    try:
        path = _run_coroutine(validator.async_validate_path())
    except (ExpiredError, NotYetValidError) as exc:
        code = "cert_expired" if isinstance(exc, ExpiredError) else "cert_not_yet_valid"
        raise CheckFailed(code, f"at genTime {gen_time.isoformat()}: {exc}") from exc
    except (PathBuildingError, InvalidCertificateError) as exc:
        raise CheckFailed("untrusted_root", f"no path to a trusted root: {exc}") from exc
    except RevokedError as exc:
        raise CheckFailed("cert_revoked", str(exc)) from exc
    except ValidationError as exc:
        raise CheckFailed("chain_invalid", str(exc)) from exc
    return f"chains to {path.trust_anchor.authority.name.human_friendly!r}, valid at genTime {gen_time.isoformat()}"


def _run_coroutine(coroutine: Coroutine[Any, Any, _T]) -> _T:
    # pyhanko-certvalidator is async-only; with fetching off it never waits on I/O, so it is run to
    # completion here. Inside a running event loop (the portal) it gets a private loop in a thread.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _step_imprint(tst: TstInfo, data: bytes) -> str:
    if tst.hash_algorithm not in _cms.STRONG_DIGESTS:
        raise CheckFailed(
            "bad_algorithm", f"message imprint uses {tst.hash_algorithm}; expected SHA-256/384/512"
        )
    if tst.hashed_message != _cms.digest(tst.hash_algorithm, data):
        raise CheckFailed(
            "imprint_mismatch",
            f"the token time-stamps {tst.hashed_message.hex()}, not the {tst.hash_algorithm} of this data",
        )
    return f"{tst.hash_algorithm} {tst.hashed_message.hex()}"


def _step_nonce_policy(tst: TstInfo, nonce: int | None, policy: str | None) -> str:
    if nonce is not None and tst.nonce != nonce:
        raise CheckFailed("nonce_mismatch", f"nonce {tst.nonce} in the token, {nonce} in the request")
    if policy is not None and tst.policy != policy:
        raise CheckFailed("policy_mismatch", f"policy {tst.policy}, expected {policy}")
    return f"nonce {'matches' if nonce is not None else 'not checked'}, policy {tst.policy}"


def _step_window(tst: TstInfo, now_window: tuple[datetime, datetime] | None) -> str:
    if now_window is None:
        return f"genTime {tst.gen_time.isoformat()}, no window given"
    earliest, latest = now_window
    accuracy = tst.accuracy or timedelta(0)
    # The true time lies in [genTime - accuracy, genTime + accuracy]; it must be able to fall in the window.
    if tst.gen_time + accuracy < earliest or tst.gen_time - accuracy > latest:
        raise CheckFailed(
            "time_out_of_window",
            f"genTime {tst.gen_time.isoformat()} ±{accuracy.total_seconds()}s is outside "
            f"[{earliest.isoformat()}, {latest.isoformat()}]",
        )
    return f"genTime {tst.gen_time.isoformat()} ±{accuracy.total_seconds()}s within the window"
