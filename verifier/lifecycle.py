"""The envelope lifecycle of DESIGN.md §3, as a pure state machine over entries.

`apply(state, type, data)` returns the next state or raises `LifecycleError` with a stable code. The
ledger runs it before it writes an event; `ledger audit` and the offline verifier replay it over the
log to rebuild and check every envelope's status. Entry data holds only public values: ordinals
of parties and documents, roles, orders, hashes and salted commitments; no personal data.

States: draft -> sent -> completed -> voided; draft/sent -> withdrawn; sent -> declined.
Withdrawn, declined and voided are closed: only `evidence.exported` may follow.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from verifier.errors import VerificationError

AUTH_METHODS = (
    "face", "sms", "qr-scan", "ukey", "password", "fingerprint", "dynamic-token", "email",
    "passport-manual", "bank-card", "video",
)
CHANNELS = ("web", "h5", "mini-program", "app", "ukey", "paper")
ROLES = ("signer", "cc")
DOWNLOAD = ("public", "code", "none")
SEAL_KINDS = ("electronic", "physical")
PARTY_KINDS = ("person", "organization")
CLOSED = ("withdrawn", "declined", "voided")
STATUSES = ("draft", "sent", "completed", *CLOSED)
MAX_ORDER = 1000

_HEX = re.compile(r"^[0-9a-f]{64}$")


class LifecycleError(VerificationError):
    """An event the lifecycle does not allow in the envelope's current state."""

    code = "illegal_transition"


def _hex(v: Any) -> bool:
    return isinstance(v, str) and bool(_HEX.fullmatch(v))


def _int(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _one_of(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v in options


_POS = _int(1, 1 << 31)
_REQ: dict[str, dict[str, Callable[[Any], bool]]] = {
    "envelope.created": {"title": _hex},
    "document.added": {"document": _POS, "sha256": _hex, "size": _int(0, 1 << 50), "name": _hex,
                       "download": _one_of(DOWNLOAD)},
    "party.added": {"party": _POS, "role": _one_of(ROLES), "order": _int(0, MAX_ORDER), "identity": _hex,
                    "kind": _one_of(PARTY_KINDS)},
    "envelope.sent": {},
    "party.viewed": {"party": _POS},
    "party.authenticated": {"party": _POS, "method": _one_of(AUTH_METHODS)},
    "party.signed": {"party": _POS, "channel": _one_of(CHANNELS), "document": _POS, "signed_sha256": _hex},
    "party.declined": {"party": _POS},
    "envelope.completed": {},
    "envelope.withdrawn": {},
    "void.requested": {"party": _POS},
    "void.consented": {"party": _POS},
    "envelope.voided": {},
    "copy.printed": {"document": _POS, "copy": _POS, "code": _hex},
    "paper.scanned": {"document": _POS, "sha256": _hex},
    "seal.used": {"party": _POS, "seal": _hex, "kind": _one_of(SEAL_KINDS)},
    "evidence.exported": {},
    "document.sealed": {"document": _POS, "sha256": _hex, "certificate": _hex},
}
# Optional fields bind what grants access to the log: `owner` commits to the envelope's tenant and
# reference, `ref` to the platform's reference of a document or party, `access` to the hash of a
# document's access code (salted commitments, as titles are). Entries written before these existed lack
# them and stay valid.
_OPT: dict[str, dict[str, Callable[[Any], bool]]] = {
    "envelope.created": {"owner": _hex},
    "document.added": {"ref": _hex, "access": _hex},
    "party.added": {"ref": _hex},
    "party.signed": {"seal": _hex, "certificate": _hex},
    "party.declined": {"reason": _hex},
    "envelope.withdrawn": {"reason": _hex},
    "void.requested": {"reason": _hex},
    "paper.scanned": {"copy": _POS},
    "evidence.exported": {"by": _hex},
}


def check_data(type: str, data: dict[str, Any]) -> None:
    """Check an entry's data fields for its event type: required, optional, nothing else."""
    req, opt = _REQ.get(type), _OPT.get(type, {})
    if req is None:
        raise LifecycleError(f"unknown event type {type!r}", code="unknown_type")
    for k, ok in req.items():
        if k not in data:
            raise LifecycleError(f"{type}: data field {k!r} is missing", code="invalid_entry")
        if not ok(data[k]):
            raise LifecycleError(f"{type}: data field {k!r} has an invalid value", code="invalid_entry")
    for k, v in data.items():
        if k not in req and (k not in opt or not opt[k](v)):
            raise LifecycleError(f"{type}: data field {k!r} is unexpected or invalid", code="invalid_entry")


@dataclass(frozen=True)
class Party:
    role: str
    order: int
    authenticated: bool = False
    signed: bool = False
    declined: bool = False
    consented: bool = False


@dataclass(frozen=True)
class EnvelopeState:
    status: str = "draft"
    parties: tuple[Party, ...] = ()
    documents: tuple[str, ...] = ()
    copies: tuple[int, ...] = ()
    void_requested: bool = False
    events: int = 0
    times: dict[str, str] = field(default_factory=dict)

    def signers(self) -> list[tuple[int, Party]]:
        return [(i + 1, p) for i, p in enumerate(self.parties) if p.role == "signer"]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "parties": [[p.role, p.order, p.authenticated, p.signed, p.declined, p.consented] for p in self.parties],
            "documents": list(self.documents),
            "copies": list(self.copies),
            "void_requested": self.void_requested,
            "events": self.events,
            "times": dict(self.times),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> EnvelopeState:
        return cls(
            obj["status"],
            tuple(Party(*p) for p in obj["parties"]),
            tuple(obj["documents"]),
            tuple(obj["copies"]),
            obj["void_requested"],
            obj["events"],
            dict(obj["times"]),
        )


def _refuse(code: str, msg: str) -> LifecycleError:
    return LifecycleError(msg, code=code)


def _party(s: EnvelopeState, data: dict[str, Any]) -> Party:
    n: int = data["party"]
    if n > len(s.parties):
        raise _refuse("unknown_party", f"party {n} was never added to this envelope")
    return s.parties[n - 1]


def _set_party(s: EnvelopeState, n: int, p: Party) -> tuple[Party, ...]:
    return s.parties[: n - 1] + (p,) + s.parties[n:]


def _need(s: EnvelopeState, type: str, *statuses: str) -> None:
    if s.status not in statuses:
        hint = {"draft": "it has not been sent yet", "sent": "it is still in progress",
                "completed": "it is already completed"}.get(s.status, f"it is {s.status}")
        raise _refuse("wrong_state", f"{type} is not allowed: {hint} (allowed when {' or '.join(statuses)})")


def apply(state: EnvelopeState | None, type: str, data: dict[str, Any], time: str = "") -> EnvelopeState:
    """The state after one event, or LifecycleError. Never mutates `state`."""
    check_data(type, data)
    if type == "envelope.created":
        if state is not None:
            raise _refuse("envelope_exists", "the envelope was already created")
        return EnvelopeState(events=1, times={"created": time})
    if state is None:
        raise _refuse("unknown_envelope", f"{type} for an envelope that was never created")
    s = replace(state, events=state.events + 1)
    if s.status in CLOSED and type != "evidence.exported":
        raise _refuse("envelope_closed", f"the envelope is {s.status}; only evidence.exported may follow")
    return _STEP[type](s, data, time)


def _document_added(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "document.added", "draft")
    if d["document"] != len(s.documents) + 1:
        raise _refuse("bad_ordinal", f"document ordinal must be {len(s.documents) + 1}")
    return replace(s, documents=s.documents + (d["sha256"],), copies=s.copies + (0,))


def _party_added(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "party.added", "draft")
    if d["party"] != len(s.parties) + 1:
        raise _refuse("bad_ordinal", f"party ordinal must be {len(s.parties) + 1}")
    if d["role"] == "signer" and d["order"] < 1:
        raise _refuse("bad_order", "a signer's signing order must be at least 1")
    return replace(s, parties=s.parties + (Party(d["role"], d["order"]),))


def _sent(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "envelope.sent", "draft")
    if not s.documents:
        raise _refuse("no_documents", "an envelope needs at least one document before it is sent")
    if not s.signers():
        raise _refuse("no_signers", "an envelope needs at least one signer before it is sent")
    return replace(s, status="sent", times={**s.times, "sent": t})


def _viewed(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "party.viewed", "sent", "completed")
    _party(s, d)
    return s


def _signer(s: EnvelopeState, d: dict[str, Any], type: str) -> Party:
    p = _party(s, d)
    if p.role != "signer":
        raise _refuse("not_a_signer", f"{type}: party {d['party']} is a {p.role}, not a signer")
    return p


def _authenticated(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "party.authenticated", "sent")
    p = _party(s, d)
    if p.signed or p.declined:
        raise _refuse("party_done", f"party {d['party']} has already {'signed' if p.signed else 'declined'}")
    return replace(s, parties=_set_party(s, d["party"], replace(p, authenticated=True)))


def _signed(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "party.signed", "sent")
    p = _signer(s, d, "party.signed")
    if p.signed:
        raise _refuse("already_signed", f"party {d['party']} has already signed")
    if p.declined:
        raise _refuse("already_declined", f"party {d['party']} has declined and cannot sign")
    if not p.authenticated:
        raise _refuse("not_authenticated", f"party {d['party']} must authenticate before signing")
    waiting = [n for n, q in s.signers() if q.order < p.order and not q.signed]
    if waiting:
        raise _refuse("out_of_order", f"party {d['party']} (order {p.order}) must wait for parties "
                                      f"{', '.join(map(str, waiting))} to sign first")
    if d["document"] > len(s.documents):
        raise _refuse("unknown_document", f"document {d['document']} was never added to this envelope")
    return replace(s, parties=_set_party(s, d["party"], replace(p, signed=True)))


def _declined(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "party.declined", "sent")
    p = _signer(s, d, "party.declined")
    if p.signed:
        raise _refuse("already_signed", f"party {d['party']} has already signed and cannot decline")
    return replace(s, status="declined", parties=_set_party(s, d["party"], replace(p, declined=True)),
                   times={**s.times, "declined": t})


def _completed(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "envelope.completed", "sent")
    missing = [n for n, p in s.signers() if not p.signed]
    if missing:
        raise _refuse("not_all_signed", f"parties {', '.join(map(str, missing))} have not signed yet")
    return replace(s, status="completed", times={**s.times, "completed": t})


def _withdrawn(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    if s.status == "completed":
        raise _refuse("withdraw_after_completion",
                      "a completed envelope cannot be withdrawn; void it with every signer's consent instead")
    _need(s, "envelope.withdrawn", "draft", "sent")
    return replace(s, status="withdrawn", times={**s.times, "withdrawn": t})


def _need_completed(s: EnvelopeState, need_request: bool = True) -> None:
    """Voiding: only after completion, and (but for the request itself) once a void was requested."""
    if s.status in ("draft", "sent"):
        raise _refuse("void_before_completion", "only a completed envelope can be voided; withdraw it instead")
    if need_request and not s.void_requested:
        raise _refuse("void_not_requested", "no void request is open")


def _void_requested(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need_completed(s, need_request=False)
    p = _signer(s, d, "void.requested")
    if s.void_requested:
        raise _refuse("void_already_requested", "a void request is already open")
    # The requesting party consents by asking.
    return replace(s, void_requested=True, parties=_set_party(s, d["party"], replace(p, consented=True)),
                   times={**s.times, "void_requested": t})


def _void_consented(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need_completed(s)
    p = _signer(s, d, "void.consented")
    if p.consented:
        raise _refuse("already_consented", f"party {d['party']} has already consented")
    return replace(s, parties=_set_party(s, d["party"], replace(p, consented=True)))


def _voided(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need_completed(s)
    missing = [n for n, p in s.signers() if not p.consented]
    if missing:
        raise _refuse("void_consent_missing", f"parties {', '.join(map(str, missing))} have not consented")
    return replace(s, status="voided", times={**s.times, "voided": t})


def _printed(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "copy.printed", "sent", "completed")
    n = d["document"]
    if n > len(s.documents):
        raise _refuse("unknown_document", f"document {n} was never added to this envelope")
    if d["copy"] != s.copies[n - 1] + 1:
        raise _refuse("bad_ordinal", f"copy number must be {s.copies[n - 1] + 1}")
    return replace(s, copies=s.copies[: n - 1] + (d["copy"],) + s.copies[n:])


def _scanned(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "paper.scanned", "sent", "completed")
    if d["document"] > len(s.documents):
        raise _refuse("unknown_document", f"document {d['document']} was never added to this envelope")
    if "copy" in d and d["copy"] > s.copies[d["document"] - 1]:  # a copy brought back was printed first
        raise _refuse("unknown_copy", f"copy {d['copy']} of document {d['document']} was never printed")
    return s


def _seal(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    _need(s, "seal.used", "sent", "completed")
    p = _signer(s, d, "seal.used")  # a party sealing the contract signs it; a cc only receives a copy
    if not p.signed:  # the seal is part of a signature: by a party that authenticated and signed
        raise _refuse("seal_before_signing", f"party {d['party']} must authenticate and sign before using a seal")
    return s


def _sealed(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    # the platform's e-seal on a version of a document (made by the ledger itself, never posted)
    _need(s, "document.sealed", "draft", "sent", "completed")
    if d["document"] > len(s.documents):
        raise _refuse("unknown_document", f"document {d['document']} was never added to this envelope")
    return s


def _exported(s: EnvelopeState, d: dict[str, Any], t: str) -> EnvelopeState:
    return s


_STEP: dict[str, Callable[[EnvelopeState, dict[str, Any], str], EnvelopeState]] = {
    "document.added": _document_added,
    "party.added": _party_added,
    "envelope.sent": _sent,
    "party.viewed": _viewed,
    "party.authenticated": _authenticated,
    "party.signed": _signed,
    "party.declined": _declined,
    "envelope.completed": _completed,
    "envelope.withdrawn": _withdrawn,
    "void.requested": _void_requested,
    "void.consented": _void_consented,
    "envelope.voided": _voided,
    "copy.printed": _printed,
    "paper.scanned": _scanned,
    "seal.used": _seal,
    "evidence.exported": _exported,
    "document.sealed": _sealed,
}
