"""The platform's e-seal on an envelope's documents: the latest version sealed (PAdES B-LT: a signature
time-stamp from the local TSA, the seal's certificates and its CA's CRL embedded), stored, and
registered in the log as a version of the document (`document.sealed`, naming the seal certificate's
SHA-256).

The seal key is the ledger's own seal (`<home>/seal`, made by `ledger init` under the local seal CA,
labelled "not accredited", like the local TSA; a ledger made before it gets one at its first seal).
What it does not do: decide when to seal (the API seals on request, and when an envelope completes),
or seal with a tenant's own registered seals.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from ledger.documents.seal import LocalTsaTimeStamper, Sealer, ValidationData, seal_pdf
from ledger.documents.sealca import create_seal_ca, issue_crl, load_seal
from ledger.envelopes.core import SEAL_DIR, SEALED, Ledger
from ledger.envelopes.events import InputEvent
from ledger.envelopes.printing import document_of, latest_version
from ledger.errors import RefusedError


def seal_dir(led: Ledger) -> Path:
    """The ledger's seal, made now if this ledger has none yet."""
    directory = led.home / SEAL_DIR
    if not (directory / "seal.pem").exists():
        create_seal_ca(directory, organisation=led.config.organisation, now=led.clock(),
                       crl_base_url=led.config.public_url.rstrip("/") + "/seal-ca/")
    return directory


def sealed_version(led: Ledger, tenant: str, ref: str, document_ref: str) -> tuple[InputEvent, bytes]:
    """Seal the document's latest version; returns the `document.sealed` event to append and the sealed
    PDF (already in the blob store)."""
    if led.local_tsa is None:
        raise RefusedError("sealing needs the local TSA for its time-stamp (local_tsa = true)", code="no_tsa",
                           status=409)
    source = latest_version(led, *document_of(led, tenant, ref, document_ref))
    directory = seal_dir(led)
    seal = load_seal(directory)
    if seal.crl.next_update_utc is None or seal.crl.next_update_utc < led.clock() + timedelta(days=1):
        issue_crl(directory, led.clock())
        seal = load_seal(directory)
    pdf = seal_pdf(source.pdf, Sealer.from_local_seal(seal), timestamper=LocalTsaTimeStamper(led.local_tsa),
                   level="B-LT", validation_data=ValidationData.for_local(seal, led.local_tsa.root_der),
                   now=led.clock())
    sha, _ = led.blobs.put(pdf)
    certificate = hashlib.sha256(seal.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    event = InputEvent("document.sealed", ref, {"document": document_ref, "sha256": sha, "certificate": certificate,
                                                SEALED: True})
    return event, pdf


def with_seal(ack: dict[str, Any], pdf: bytes) -> dict[str, Any]:
    return {**ack, "sha256": hashlib.sha256(pdf).hexdigest(), "size": len(pdf)}
