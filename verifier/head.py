"""Envelope heads: the log's signed statement of an envelope's last event in the whole log.

An inclusion proof shows that an event is in the log; it cannot show that no later event of the
same envelope is. So the log signs, with its own key, a note saying "at this time, this envelope's
last event in the whole log is this one, and it is in the tree of this size":

    <origin>
    envelope-head v1
    <env>                       32 hex digits, the envelope's id in the entries
    <tree size>                 the checkpoint this statement is about
    <events>                    how many events the envelope has in that tree: all it had at <time>
    <last index>                the index of its last event
    <last leaf hash, base64>    that event's RFC 9162 leaf hash
    <time>                      when the log signed this, RFC 3339 UTC with milliseconds

The statement is about the whole log at the signing time, not only about that tree: the log signs
it for an older tree only if the envelope had no event after that tree, and refuses otherwise. So a
fresh statement about an old checkpoint cannot hide a later event (a void) either.

The second line is not a number, so no head can be taken for a checkpoint, nor a checkpoint for a
head. A reader holding the statement, the checkpoint of that size and the envelope's events knows it
has all the events the envelope had when the statement was signed; a server that leaves out the
last events must sign a false statement, which is evidence against the log, or replay an old one,
which the time betrays. This module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from verifier.errors import FormatError, VerificationError
from verifier.note import Ed25519Verifier, Note, parse_note, verify_note

KIND = "envelope-head v1"
_ENV = re.compile(r"[0-9a-f]{32}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class EnvelopeHead:
    origin: str
    env: str
    size: int
    events: int
    last_index: int
    last_leaf: bytes
    time: str

    def body(self) -> str:
        leaf = base64.b64encode(self.last_leaf).decode()
        return (f"{self.origin}\n{KIND}\n{self.env}\n{self.size}\n{self.events}\n{self.last_index}\n{leaf}\n"
                f"{self.time}\n")

    @classmethod
    def from_body(cls, text: str) -> EnvelopeHead:
        if not text.endswith("\n"):
            raise FormatError("envelope head does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 2 or lines[1] != KIND:
            raise FormatError(f"not an envelope head (its second line is not {KIND!r})")
        if len(lines) != 8:
            raise FormatError(f"envelope head has {len(lines)} lines, not 8")
        origin, _, env, size, events, last, leaf_b64, time = lines
        if not origin:
            raise FormatError("envelope head has no origin")
        if not _ENV.fullmatch(env):
            raise FormatError("envelope head env is not 32 lowercase hex digits")
        for name, value in (("tree size", size), ("event count", events), ("last index", last)):
            if not _DECIMAL.fullmatch(value):
                raise FormatError(f"envelope head {name} {value!r} is not a decimal number")
        try:
            leaf = base64.b64decode(leaf_b64, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError("envelope head leaf hash is not base64") from None
        if len(leaf) != 32:
            raise FormatError("envelope head leaf hash is not 32 bytes")
        if not _TIME.fullmatch(time):
            raise FormatError("envelope head time is not RFC 3339 UTC with milliseconds")
        head = cls(origin, env, int(size), int(events), int(last), leaf, time)
        if head.events < 1 or head.last_index >= head.size:
            raise FormatError("envelope head names no event of its tree")
        return head

    @property
    def signed_at(self) -> datetime:
        return datetime.strptime(self.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def verify_head(note_text: str, log_key: Ed25519Verifier, *, now: datetime | None, max_age: timedelta,
                size: int | None = None) -> EnvelopeHead:
    """Verify an envelope head signed by the log key, about the tree of `size` if given, and signed
    within `max_age` of `now` either way (no freshness check when `now` is None: an archived head
    still proves what the log said, and when)."""
    note: Note = parse_note(note_text)
    head = EnvelopeHead.from_body(note.text)
    if head.origin != log_key.name:
        raise FormatError(f"envelope head is for log {head.origin!r}, not {log_key.name!r}")
    verify_note(note, [log_key])
    if now is not None and abs(now - head.signed_at) > max_age:
        at = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        raise VerificationError(f"envelope head was signed at {head.time}, more than {max_age} from the time "
                                f"it is judged at ({at})")
    if size is not None and head.size != size:
        raise VerificationError(f"envelope head is about tree size {head.size}, not {size}")
    return head
