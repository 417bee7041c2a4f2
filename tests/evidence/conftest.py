"""A ledger with envelopes in every state, made once for the evidence tests, and their exported bundles.

The completed envelope has three parties (two signers in order, a copy recipient), a document uploaded
to the blob store, signed versions (one stored, one registered by its hash only), the platform's
sealed version, a printed copy and a scan of it (a PNG), and a renewal of its anchor; a notary (a
witness key of this test) cosigned an earlier checkpoint. Real PKI throughout: the ledger's local TSA
and seal CA, the real report and its seal.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.anchoring import witness
from ledger.anchoring.tsa_client import format_time
from ledger.envelopes import sealing
from ledger.envelopes.core import Ledger, uploaded
from ledger.envelopes.demo import demo_pdf
from ledger.envelopes.events import parse_events
from ledger.evidence import bundle
from verifier.evidence.archive import Archive
from verifier.evidence.bundle import Trust, verify_bundle
from verifier.evidence.result import Report
from verifier.note import CosignatureSigner, parse_note
from verifier.timestamp import token_from_response

TENANT = "acme"
STATES = ("draft", "sent", "completed", "withdrawn", "declined", "voided")
PNG = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"a scan").digest() * 8


@dataclass
class World:
    led: Ledger
    refs: dict[str, str]
    notary: CosignatureSigner
    bundles: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def export(self, state: str, lang: str = "en") -> bytes:
        """The bundle of the envelope in `state` (made once per state and language)."""
        if (state, lang) not in self.bundles:
            ex = bundle.export(self.led, TENANT, self.refs[state], lang=lang)
            self.bundles[(state, lang)] = b"".join(ex.chunks())
        return self.bundles[(state, lang)]


def verify(data: bytes, trust: Trust | None = None, at: datetime | None = None) -> Report:
    archive = Archive(io.BytesIO(data))
    return verify_bundle(archive, trust, at=at)


def _doc(led: Ledger, ref: str, title: str) -> list[Any]:
    pdf = demo_pdf(title, f"Reference {ref}\nA contract of the evidence tests.")
    sha, size = led.blobs.put(pdf)
    return [{"type": "envelope.created", "envelope": ref, "title": title},
            uploaded(parse_events({"type": "document.added", "envelope": ref, "document": "main", "sha256": sha,
                                   "size": size, "name": f"{ref}.pdf", "download": "public"})[0]),
            {"type": "party.added", "envelope": ref, "party": "lessor", "role": "signer", "order": 1,
             "name": "Zhang San", "contact": "+86 138 0000 0000"},
            {"type": "party.added", "envelope": ref, "party": "lessee", "role": "signer", "order": 2,
             "name": "Example Trading Co., Ltd.", "kind": "organization"},
            {"type": "party.added", "envelope": ref, "party": "cc", "role": "cc", "name": "Li Si"}]


def _sign(led: Ledger, ref: str, party: str, *, store: bool = True, method: str = "face") -> list[dict[str, Any]]:
    pdf = demo_pdf("Signed", f"{ref} signed by {party}")
    sha = led.blobs.put(pdf)[0] if store else hashlib.sha256(pdf).hexdigest()
    signed = parse_events({"type": "party.signed", "envelope": ref, "party": party, "channel": "app",
                           "document": "main", "signed_sha256": sha})[0]
    return [{"type": "party.viewed", "envelope": ref, "party": party},
            {"type": "party.authenticated", "envelope": ref, "party": party, "method": method},
            uploaded(signed) if store else signed]  # stored: bytes this tenant sent, which the bundle carries


def _append(led: Ledger, events: list[Any]) -> list[dict[str, Any]]:
    parsed = [e if not isinstance(e, dict) else parse_events(e)[0] for e in events]
    return led.append(TENANT, parsed)


def _renew_anchor(led: Ledger, size: int) -> None:
    """A renewal of the checkpoint's anchor (RFC 4998 §5.2: a time-stamp of its token), by the local TSA."""
    assert led.local_tsa is not None
    ident, token = led.log._reader().execute("SELECT id, token FROM anchors WHERE size = ? AND renews IS NULL",
                                             (size,)).fetchone()
    response = led.local_tsa.issue_token(bytes(token))
    from verifier.timestamp import verify_timestamp

    rep = verify_timestamp(response, data=bytes(token), trusted_roots=[led.local_tsa.root_der]).require_valid()
    assert rep.gen_time is not None
    led.log.conn.execute(
        "INSERT INTO anchors(size, tsa, gen_time, serial, token, created, renews, cert_expires)"
        " VALUES (?, 'local', ?, ?, ?, ?, ?, '2099-01-01T00:00:00Z')",
        (size, format_time(rep.gen_time), str(rep.serial), token_from_response(response),
         format_time(rep.gen_time), ident))


def build_world(home: Path) -> World:
    led = Ledger.init(home)
    notary, _ = CosignatureSigner.generate("notary.test/w1")
    led.config = led.config.replace(witnesses=(notary.verifier.to_string(),))
    refs = {s: f"HT-{s.upper()}" for s in STATES}
    # draft: a document and parties, not sent
    _append(led, _doc(led, refs["draft"], "Draft lease"))
    # sent: in progress, the first signer has signed
    r = refs["sent"]
    _append(led, _doc(led, r, "Supply contract") + [{"type": "envelope.sent", "envelope": r}] + _sign(led, r, "lessor"))
    # completed: both signers (one signed PDF registered by its hash only), a copy, a scan, the platform's seal
    r = refs["completed"]
    _append(led, _doc(led, r, "Office lease 办公室租赁") + [{"type": "envelope.sent", "envelope": r}]
            + _sign(led, r, "lessor", method="ukey") + _sign(led, r, "lessee", store=False, method="sms")
            + [{"type": "envelope.completed", "envelope": r},
               {"type": "copy.printed", "envelope": r, "document": "main"}])
    scan, _ = led.blobs.put(PNG)
    _append(led, [uploaded(parse_events({"type": "paper.scanned", "envelope": r, "document": "main", "sha256": scan,
                                         "copy": 1})[0])])
    event, _ = sealing.sealed_version(led, TENANT, r, "main")
    led.append(TENANT, [event])
    # a notary cosigns the checkpoint of this moment
    note = parse_note(led.log.latest_checkpoint)
    witness.store(led, note.with_signature(notary.sign(note.text, int(led.clock().timestamp()))).to_text())
    # withdrawn, declined, voided
    r = refs["withdrawn"]
    _append(led, _doc(led, r, "Consulting") + [{"type": "envelope.withdrawn", "envelope": r, "reason": "Wrong party"}])
    r = refs["declined"]
    _append(led, _doc(led, r, "Carriage") + [{"type": "envelope.sent", "envelope": r}] + _sign(led, r, "lessor")
            + [{"type": "party.authenticated", "envelope": r, "party": "lessee", "method": "password"},
               {"type": "party.declined", "envelope": r, "party": "lessee", "reason": "Price changed"}])
    r = refs["voided"]
    _append(led, _doc(led, r, "Vehicle lease") + [{"type": "envelope.sent", "envelope": r}] + _sign(led, r, "lessor")
            + _sign(led, r, "lessee") + [{"type": "envelope.completed", "envelope": r},
                                         {"type": "void.requested", "envelope": r, "party": "lessor"},
                                         {"type": "void.consented", "envelope": r, "party": "lessee"},
                                         {"type": "envelope.voided", "envelope": r}])
    return World(led, refs, notary)


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("evidence") / "home")
    yield w
    w.led.close()


@pytest.fixture(scope="package")
def renewed(world: World) -> bytes:
    """A bundle of the completed envelope whose proof checkpoint's anchor was renewed."""
    led, ref = world.led, world.refs["completed"]
    ex = bundle.export(led, TENANT, ref, lang="zh-CN")
    size = ex.manifest.log.size
    _renew_anchor(led, size)
    env = str(led.envelope(TENANT, ref)["env"])
    again = bundle.build(led, TENANT, ref, size=size, head=bundle.sign_head(led, env, size), lang="zh-CN")
    return b"".join(again.chunks())
