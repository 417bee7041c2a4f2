"""The input schema: the events a signing platform posts, parsed and validated at the edge.

An event is a JSON object with `type`, `envelope` (the platform's own reference for the envelope,
scoped to its tenant) and the fields of its type (see README "Event input"). Unknown fields, wrong
types, floats, duplicate keys, oversized text and invalid UTF-8 are refused with a message naming
the event and the field. Nothing here touches storage.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from ledger.errors import RefusedError
from verifier.entry import EVENT_TYPES, strict_loads
from verifier.errors import FormatError
from verifier.lifecycle import AUTH_METHODS, CHANNELS, DOWNLOAD, PARTY_KINDS, ROLES, SEAL_KINDS

REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
HEX = re.compile(r"^[0-9a-fA-F]{64}$")
# Characters free text may not hold: C0 controls other than tab and newline, DEL, C1 controls, the
# line and paragraph separators; the bidirectional marks, embeddings, overrides and isolates, which
# can make a title or a file name display as something else (CVE-2021-42574, "Trojan Source"); and
# the characters that show nothing at all (zero width space, word joiner, invisible operators, the
# byte order mark, the Mongolian vowel separator, deprecated format controls, interlinear annotation),
# which make two texts that read the same differ, or hide a word from whoever searches for it.
_BIDI_MARKS = r"\u061c\u200e\u200f"  # Arabic letter mark, left-to-right and right-to-left marks
_BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"  # embeddings, overrides, isolates
_INVISIBLE = r"\u180e\u200b-\u200d\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb"
_CONTROL = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI_MARKS}{_BIDI_CONTROLS}{_INVISIBLE}]")
_CONTROL_ONE_LINE = re.compile(r"[\t\n]|" + _CONTROL.pattern)
_IS_MARK, _IS_BIDI = re.compile(f"[{_BIDI_MARKS}]"), re.compile(f"[{_BIDI_CONTROLS}]")
_ZWNJ, _ZWJ = "\u200c", "\u200d"
# Scripts whose letters join, where a zero width (non-)joiner changes how a word is drawn: Arabic
# (Persian, Urdu, ...), Syriac, Thaana, N'Ko, Mongolian, and the Arabic presentation forms.
_JOINING = ((0x0600, 0x08FF), (0x1800, 0x18AF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFC))
MAX_REQUEST_BYTES = 4 << 20
MAX_EVENTS = 10_000


def _joins(c: str) -> bool:
    return unicodedata.category(c)[0] in "LM" and any(lo <= ord(c) <= hi for lo, hi in _JOINING)


def _emoji(c: str) -> bool:
    return unicodedata.category(c) in ("So", "Sk") or c == "\ufe0f"  # a pictograph, a skin tone, emoji style


def _joiner_at_work(text: str, i: int) -> bool:
    """Whether the ZWNJ or ZWJ at `i` does a visible job: after a virama (Indic scripts, as RFC 5892
    CONTEXTJ allows), between two letters of a joining script, or (ZWJ) between two emoji of a
    sequence. Anywhere else it is as invisible as a zero width space."""
    if not 0 < i < len(text) - 1:
        return False
    before, after = text[i - 1], text[i + 1]
    if unicodedata.combining(before) == 9 or (_joins(before) and _joins(after)):
        return True
    return text[i] == _ZWJ and _emoji(before) and _emoji(after)


def control_character(text: str, *, one_line: bool = False) -> str | None:
    """Name the first character of `text` that text may not hold, or None if there is none.

    Returns a description like `U+202E, a bidirectional control, at position 3`. Tab and newline
    are allowed, unless `one_line` (labels, printed one to a line). A zero width joiner or non-joiner
    is allowed where it shapes the text around it (`_joiner_at_work`).
    """
    for m in (_CONTROL_ONE_LINE if one_line else _CONTROL).finditer(text):
        ch = m.group()
        if ch in (_ZWNJ, _ZWJ) and _joiner_at_work(text, m.start()):
            continue
        c = ord(ch)
        if c in (0x2028, 0x2029):
            what = "a line or paragraph separator"
        elif _IS_BIDI.match(ch):
            what = "a bidirectional control"
        elif _IS_MARK.match(ch):
            what = f"a bidirectional mark ({unicodedata.name(ch).lower()})"
        elif c > 0x9F:
            what = f"an invisible character ({unicodedata.name(ch, 'format control').lower()})"
        else:
            what = "a control character"
        return f"U+{c:04X}, {what}, at position {m.start()}"
    return None


# field -> (kind, required). Kinds: ref, hex, text:N, int:LO:HI, enum tuple.
_Spec = dict[str, tuple[Any, bool]]
_PARTY: _Spec = {"party": ("ref", True)}
SCHEMA: dict[str, _Spec] = {
    "envelope.created": {"title": ("text:500", True)},
    "document.added": {"document": ("ref", True), "sha256": ("hex", True), "size": ("int:0:1125899906842624", True),
                       "name": ("text:255", True), "download": (DOWNLOAD, False)},
    "party.added": {"party": ("ref", True), "role": (ROLES, True), "order": ("int:0:1000", False),
                    "name": ("text:200", True), "contact": ("text:200", False), "kind": (PARTY_KINDS, False)},
    "envelope.sent": {},
    "party.viewed": _PARTY,
    "party.authenticated": {**_PARTY, "method": (AUTH_METHODS, True)},
    "party.signed": {**_PARTY, "channel": (CHANNELS, True), "document": ("ref", True),
                     "signed_sha256": ("hex", True), "seal": ("hex", False), "certificate": ("hex", False)},
    "party.declined": {**_PARTY, "reason": ("text:2000", False)},
    "envelope.completed": {},
    "envelope.withdrawn": {"reason": ("text:2000", False)},
    "void.requested": {**_PARTY, "reason": ("text:2000", False)},
    "void.consented": _PARTY,
    "envelope.voided": {},
    "copy.printed": {"document": ("ref", True)},
    "paper.scanned": {"document": ("ref", True), "sha256": ("hex", True), "copy": ("int:1:1000000", False)},
    "seal.used": {**_PARTY, "seal": ("hex", True), "kind": (SEAL_KINDS, True)},
    "evidence.exported": {"by": ("text:200", False)},
    "document.sealed": {"document": ("ref", True), "sha256": ("hex", True), "certificate": ("hex", True)},
}
# made by the ledger itself (`POST .../documents/{document}/seal`), refused from the platform's input
INTERNAL = ("document.sealed",)
assert set(SCHEMA) == set(EVENT_TYPES)


@dataclass(frozen=True)
class InputEvent:
    type: str
    envelope: str
    fields: dict[str, Any]


def _bad(i: int, msg: str) -> RefusedError:
    return RefusedError(f"event {i}: {msg}", code="invalid_event", status=422)


def _check(i: int, type: str, name: str, kind: Any, v: Any) -> Any:
    if isinstance(kind, tuple):
        if v not in kind:
            raise _bad(i, f"{type}.{name} must be one of {', '.join(kind)}, not {v!r}")
        return v
    if kind == "ref":
        if not isinstance(v, str) or not REF.fullmatch(v):
            raise _bad(i, f"{type}.{name} must be a reference of 1-64 letters, digits, '.', '_', ':' or '-'")
        return v
    if kind == "hex":
        if not isinstance(v, str) or not HEX.fullmatch(v):
            raise _bad(i, f"{type}.{name} must be a SHA-256 as 64 hex characters")
        return v.lower()
    k, *args = kind.split(":")
    if k == "text":
        if not isinstance(v, str) or not v.strip():
            raise _bad(i, f"{type}.{name} must be a non-empty string")
        if len(v) > int(args[0]):
            raise _bad(i, f"{type}.{name} is {len(v)} characters, more than {args[0]}")
        bad = control_character(v)
        if bad:
            raise _bad(i, f"{type}.{name} contains control characters ({bad})")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(i, f"{type}.{name} is not valid Unicode (a lone surrogate)") from None
        return v
    lo, hi = int(args[0]), int(args[1])
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _bad(i, f"{type}.{name} must be an integer from {lo} to {hi}")
    return v


def parse_event(obj: Any, i: int = 0) -> InputEvent:
    if not isinstance(obj, dict):
        raise _bad(i, "an event must be a JSON object")
    type = obj.get("type")
    if not isinstance(type, str) or type not in SCHEMA:
        raise _bad(i, f"unknown event type {type!r}; known types: {', '.join(EVENT_TYPES)}")
    spec = SCHEMA[type]
    unknown = sorted(set(obj) - set(spec) - {"type", "envelope"})
    if unknown:
        raise _bad(i, f"{type} does not take the field(s) {', '.join(unknown)}")
    if "envelope" not in obj:
        raise _bad(i, f"{type} needs the field 'envelope' (your reference for the envelope)")
    env = _check(i, type, "envelope", "ref", obj["envelope"])
    fields: dict[str, Any] = {}
    for name, (kind, required) in spec.items():
        if name in obj:
            fields[name] = _check(i, type, name, kind, obj[name])
        elif required:
            raise _bad(i, f"{type} needs the field {name!r}")
    return InputEvent(type, env, fields)


def parse_events(data: bytes | str | Any, *, max_bytes: int = MAX_REQUEST_BYTES,
                 max_events: int = MAX_EVENTS) -> list[InputEvent]:
    """Parse one event or a list of events (raw JSON bytes, or already-parsed JSON)."""
    if isinstance(data, bytes | str):
        try:
            data = strict_loads(data, max_bytes=max_bytes)
        except FormatError as e:
            if e.code == "too_large":
                raise RefusedError(str(e), code="too_large", status=413) from None
            raise RefusedError(str(e), code="invalid_json", status=400) from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise RefusedError("no events given", code="invalid_event", status=422)
    if len(items) > max_events:
        raise RefusedError(f"{len(items)} events in one request, more than {max_events}", code="too_many_events",
                           status=413)
    out = []
    for i, o in enumerate(items):
        try:
            out.append(parse_event(o, i))
        except RefusedError as e:
            e.event = i
            raise
    return out


def parse_json_lines(lines: list[bytes], first_line: int = 1, *, max_line_bytes: int = 1 << 20) -> list[InputEvent]:
    """Parse JSON Lines (one event per line; blank lines skipped), naming the bad line on error."""
    out = []
    for n, line in enumerate(lines, first_line):
        if not line.strip():
            continue
        try:
            obj = strict_loads(line, max_bytes=max_line_bytes)
            out.append(parse_event(obj, n))
        except FormatError as e:
            raise RefusedError(f"line {n}: {e}", code="invalid_json", status=400) from None
        except RefusedError as e:
            raise RefusedError(f"line {n}: {e}".replace(f"event {n}: ", ""), code=e.code, status=e.status) from None
    return out
