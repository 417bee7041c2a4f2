"""PAdES e-seals: an organisation's seal on a PDF, through pyHanko (ETSI EN 319 142-1, ISO 32000-2 §12.8).

What it does: seal a PDF in an incremental update, at level B-T (a CMS signature with the PAdES
subfilter `ETSI.CAdES.detached`, plus a signature time-stamp, RFC 3161, from a `TimeStamper`: the
embedded local TSA answers in-process through `LocalTsaTimeStamper`) or B-LT (B-T plus a document
security store holding the certificates and CRLs a validator needs, ETSI EN 319 142-1 §5.4, taken only
from the `ValidationData` given: nothing is fetched). The seal shows on a page (`sealstamp`), or not at
all. The key is the local seal CA's (PEM files), a PKCS#12 file's, or a PKCS#11 token's, which signs
without the key leaving it.

What it does not do: B-LTA (archive time-stamps), validation (pyHanko's `validate_pdf_signature`
and `pdfsig` do that, see the tests), or network I/O of any kind.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from ledger.clock import utc_now
from ledger.documents.sealca import LocalSeal, organisation_of
from ledger.documents.sealstamp import SealAppearance, seal_image
from ledger.errors import RefusedError, StorageError
from verifier._cms import quiet_pyhanko

with quiet_pyhanko():
    from pyhanko.pdf_utils import layout
    from pyhanko.pdf_utils.images import PdfImage
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields, signers
    from pyhanko.sign.general import SigningError
    from pyhanko.sign.timestamps.api import TimeStamper
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError
    from pyhanko.stamp import StaticStampStyle
    from pyhanko_certvalidator import ValidationContext

Level = Literal["B-T", "B-LT"]
LEVELS: tuple[Level, ...] = ("B-T", "B-LT")
FIELD_PREFIX = "Seal"
MAX_PDF_BYTES = 200 * 1024 * 1024
_MARGIN = 36.0  # points between the default seal box and the page's edges


class _NoFetchingNotice(logging.Filter):
    """Drop pyHanko's warning that B-LT embeds validation data without fetching: that is the design here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_NoFetchingNotice())


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    # asn1crypto's TimeStampResp makes the token mandatory; a rejection has none (RFC 3161 §2.4.2).
    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


class Tsa(Protocol):
    """What `LocalTsaTimeStamper` needs of a TSA: `ledger.anchoring.tsa.LocalTsa` has it."""

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp."""
        ...


class LocalTsaTimeStamper(TimeStamper):
    """A pyHanko `TimeStamper` answered by a `LocalTsa` in this process: no HTTP round trip."""

    def __init__(self, tsa: Tsa) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.tsa = tsa

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        answer = self.tsa.respond(req.dump())
        try:
            parsed = _TimeStampResp.load(answer)
            status = parsed["status"]["status"].native
            text = "; ".join(parsed["status"]["status_string"].native or [])
        except ValueError as exc:
            raise TimestampRequestError(f"the TSA's answer is not a TimeStampResp: {exc}") from exc
        if status not in {"granted", "granted_with_mods"} or parsed["time_stamp_token"].native is None:
            raise TimestampRequestError(
                f"the TSA did not grant a time-stamp: {status} ({text or 'no reason'})"
            )
        return tsp.TimeStampResp.load(answer)

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return self.request_tsa_response(req)


@dataclass(frozen=True)
class ValidationData:
    """What a validator needs besides the PDF, all DER: roots to trust, CRLs, intermediate certificates.

    B-LT seals embed the CRLs and the certificates on the paths to these roots; nothing is fetched.
    """

    trust_roots: tuple[bytes, ...]
    crls: tuple[bytes, ...] = ()
    certs: tuple[bytes, ...] = ()

    @classmethod
    def for_local(cls, seal: LocalSeal, tsa_root_der: bytes) -> ValidationData:
        """The local seal CA's root and latest CRL, and the local TSA's root (`LocalTsa.root_der`)."""
        return cls(trust_roots=(_der(seal.root), tsa_root_der), crls=(seal.crl_der,))

    def context(self, *, revocation_mode: str = "hard-fail") -> ValidationContext:
        """A pyHanko validation context over this data alone (`allow_fetching=False`)."""
        return ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(der) for der in self.trust_roots],
            other_certs=[asn1_x509.Certificate.load(der) for der in self.certs],
            crls=list(self.crls),
            allow_fetching=False,
            revocation_mode=revocation_mode,
        )


@dataclass(frozen=True)
class Sealer:
    """A pyHanko signer, its certificate and the organisation it seals for. Make one with a `from_` method."""

    signer: signers.Signer
    cert: x509.Certificate
    organisation: str

    @classmethod
    def from_signer(cls, signer: signers.Signer, organisation: str | None = None) -> Sealer:
        if signer.signing_cert is None:
            raise RefusedError(
                "the signer has no certificate; give one with the key", code="seal_no_certificate"
            )
        cert = x509.load_der_x509_certificate(signer.signing_cert.dump())
        name = organisation if organisation is not None else organisation_of(cert)
        return cls(signer=signer, cert=cert, organisation=name)

    @classmethod
    def from_local_seal(cls, seal: LocalSeal) -> Sealer:
        """The seal CA's organisation key (`sealca.load_seal`)."""
        return cls.from_pem(seal.key_path, seal.cert_path, chain=[seal.root_path])

    @classmethod
    def from_pem(
        cls, key: Path, cert: Path, *, chain: Sequence[Path] = (), passphrase: bytes | None = None
    ) -> Sealer:
        """A key and certificate in PEM (or DER) files, with the chain to embed."""
        signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
            str(key), str(cert), ca_chain_files=[str(p) for p in chain], key_passphrase=passphrase
        )
        if signer is None:
            raise RefusedError(
                f"cannot load the seal key {key} and certificate {cert}; check the files and the passphrase",
                code="seal_bad_key",
            )
        return cls.from_signer(signer)

    @classmethod
    def from_pkcs12(cls, path: Path, *, passphrase: bytes | None, chain: Sequence[Path] = ()) -> Sealer:
        """The key and certificate of a PKCS#12 (.p12/.pfx) file."""
        signer = signers.SimpleSigner.load_pkcs12(  # type: ignore[no-untyped-call]
            str(path), ca_chain_files=[str(p) for p in chain] or None, passphrase=passphrase
        )
        if signer is None:
            raise RefusedError(
                f"cannot load the PKCS#12 file {path}; check the file and its passphrase", code="seal_bad_key"
            )
        return cls.from_signer(signer)

    @classmethod
    def from_pkcs11(
        cls,
        session: object,
        *,
        cert: x509.Certificate,
        key_label: str | None = None,
        key_id: bytes | None = None,
        chain: Sequence[x509.Certificate] = (),
    ) -> Sealer:
        """A key in a PKCS#11 token (open the session with `pyhanko.sign.pkcs11.open_pkcs11_session`).

        The token signs; the key never leaves it. `cert` is the key's certificate, given so that
        tokens holding only the key work too.
        """
        from pyhanko.sign.pkcs11 import PKCS11Signer

        if key_label is None and key_id is None:
            raise RefusedError("name the token's key by label or id", code="seal_bad_key")
        signer = PKCS11Signer(
            session,  # type: ignore[arg-type]
            key_label=key_label,
            key_id=key_id,
            signing_cert=asn1_x509.Certificate.load(_der(cert)),
            ca_chain=[asn1_x509.Certificate.load(_der(c)) for c in chain],
            # Many tokens (SoftHSM2, most USB keys) offer raw CKM_ECDSA only: hash here, sign there.
            use_raw_mechanism=isinstance(cert.public_key(), ec.EllipticCurvePublicKey),
        )
        return cls.from_signer(signer)


def seal_pdf(
    pdf: bytes,
    sealer: Sealer,
    *,
    timestamper: TimeStamper,
    appearance: SealAppearance | None = SealAppearance(),  # noqa: B008 - frozen, so safe to share
    level: Level = "B-T",
    validation_data: ValidationData | None = None,
    reason: str | None = None,
    location: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """Seal `pdf` in an incremental update and return the sealed PDF.

    Args:
        pdf: the document; earlier signatures in it stay valid.
        sealer: whose seal, and the key that makes it.
        timestamper: the TSA of the signature time-stamp (`LocalTsaTimeStamper` for the local one).
        appearance: where the seal shows (default: drawn, on the last page); None for an invisible seal.
        level: "B-T", or "B-LT" (needs `validation_data` holding the roots and CRLs).
        now: when the certificate must be valid (default: the current time).

    Raises:
        RefusedError: not a PDF, an encrypted or locked one, a page it does not have, a certificate
            not valid now or not for sealing, or (B-LT) one that cannot be validated from `validation_data`.
        StorageError: the TSA gave no time-stamp.
    """
    if level not in LEVELS:
        raise RefusedError(f"level {level!r} is not offered; use 'B-T' or 'B-LT'", code="seal_bad_level")
    if level == "B-LT" and validation_data is None:
        raise RefusedError(
            "a B-LT seal embeds validation data; give validation_data (roots and CRLs)",
            code="seal_validation_data_required",
        )
    _check_certificate(sealer.cert, now or utc_now())
    writer = _open(pdf)
    field_name = _free_field_name(writer)
    stamp_style = None
    field_spec = fields.SigFieldSpec(sig_field_name=field_name)
    if appearance is not None:
        page = _page_index(writer, appearance.page)
        box = appearance.box or _default_box(writer, page, appearance.size)
        field_spec = fields.SigFieldSpec(sig_field_name=field_name, on_page=page, box=_int_box(box))
        stamp_style = StaticStampStyle(
            background=PdfImage(seal_image(appearance, sealer.organisation)),
            background_opacity=1.0,
            border_width=0,
            background_layout=layout.SimpleBoxLayoutRule(
                x_align=layout.AxisAlignment.ALIGN_MID,
                y_align=layout.AxisAlignment.ALIGN_MID,
                margins=layout.Margins.uniform(0),  # type: ignore[no-untyped-call]
                inner_content_scaling=layout.InnerScaling.STRETCH_TO_FIT,
            ),
        )
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=level == "B-LT",
        validation_context=validation_data.context() if level == "B-LT" and validation_data else None,
        reason=reason,
        location=location,
        name=sealer.organisation or None,
    )
    pdf_signer = signers.PdfSigner(
        meta, sealer.signer, timestamper=timestamper, stamp_style=stamp_style, new_field_spec=field_spec
    )
    try:
        out = pdf_signer.sign_pdf(writer)
    except TimestampRequestError as exc:
        raise StorageError(
            f"the TSA gave no time-stamp ({exc}); try again later", code="seal_timestamp_failed"
        ) from exc
    except SigningError as exc:
        raise RefusedError(f"the PDF cannot be sealed: {exc}", code="seal_refused") from exc
    except PdfError as exc:
        raise RefusedError(
            f"the PDF cannot be sealed ({exc}); repair or re-export it", code="seal_bad_pdf"
        ) from exc
    return bytes(out.getvalue())


def _check_certificate(cert: x509.Certificate, now: datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise RefusedError(
            f"the seal certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d}, not now; renew it",
            code="seal_certificate_unusable",
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # no key usage extension: any use is allowed (RFC 5280 §4.2.1.3)
    if not (usage.digital_signature or usage.content_commitment):
        raise RefusedError(
            "the seal certificate's key usage allows neither digitalSignature nor nonRepudiation; "
            "use a signing certificate",
            code="seal_certificate_unusable",
        )


def _open(pdf: bytes) -> IncrementalPdfFileWriter:
    if not pdf.lstrip()[:5] == b"%PDF-":
        raise RefusedError("the document is not a PDF (no %PDF- header)", code="seal_bad_pdf")
    if len(pdf) > MAX_PDF_BYTES:
        raise RefusedError(
            f"the PDF has {len(pdf)} bytes; at most {MAX_PDF_BYTES} can be sealed", code="seal_bad_pdf"
        )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        int(writer.root["/Pages"]["/Count"])
    except (PdfError, KeyError, ValueError, TypeError) as exc:
        raise RefusedError(
            f"the PDF cannot be read ({exc}); repair or re-export it", code="seal_bad_pdf"
        ) from exc
    if writer.prev.encrypted:
        raise RefusedError("the PDF is encrypted; seal the unencrypted document", code="seal_bad_pdf")
    return writer


def _page_index(writer: IncrementalPdfFileWriter, page: int) -> int:
    count = int(writer.root["/Pages"]["/Count"])
    index = page + count if page < 0 else page
    if not 0 <= index < count:
        raise RefusedError(f"the PDF has {count} pages; page {page} is not one of them", code="seal_bad_page")
    return index


def _default_box(
    writer: IncrementalPdfFileWriter, page: int, size: float
) -> tuple[float, float, float, float]:
    page_obj = writer.find_page_for_modification(page)[0].get_object()  # type: ignore[no-untyped-call]
    x1, y1, x2, _ = (float(v) for v in page_obj.get("/MediaBox", (0, 0, 595, 842)))
    size = min(size, (x2 - x1) - 2 * _MARGIN)
    return (x2 - _MARGIN - size, y1 + _MARGIN, x2 - _MARGIN, y1 + _MARGIN + size)


def _int_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (round(v) for v in box)
    if x2 - x1 < 8 or y2 - y1 < 8:
        raise RefusedError(f"the seal box {box} is too small; give at least 8x8 points", code="seal_bad_box")
    return (x1, y1, x2, y2)


def _free_field_name(writer: IncrementalPdfFileWriter) -> str:
    taken = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev)}
    n = 1
    while (name := FIELD_PREFIX if n == 1 else f"{FIELD_PREFIX}{n}") in taken:
        n += 1
    return name


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)
