"""Log entries: RFC 8785 canonical JSON of one signing event, and strict JSON parsing.

An entry is `{"v":1,"env":ID,"seq":N,"type":T,"time":RFC3339-UTC-ms,"prev":HEX,"data":{...}}` in
RFC 8785 (JCS) form: UTF-8, keys sorted, no insignificant whitespace, integers only. `prev` is the
leaf hash of the envelope's previous entry ("" for seq 0), so each envelope is a hash chain inside
the tree. This module encodes, parses and checks entries and chains; it does no I/O.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import rfc8785

from verifier.errors import FormatError, VerificationError
from verifier.merkle import leaf_hash

FORMAT_VERSION = 1
MAX_ENTRY_BYTES = 0xFFFF
MAX_DEPTH = 8
MAX_SAFE_INT = (1 << 53) - 1

EVENT_TYPES = (
    "envelope.created",
    "document.added",
    "party.added",
    "envelope.sent",
    "party.viewed",
    "party.authenticated",
    "party.signed",
    "party.declined",
    "envelope.completed",
    "envelope.withdrawn",
    "void.requested",
    "void.consented",
    "envelope.voided",
    "copy.printed",
    "paper.scanned",
    "seal.used",
    "evidence.exported",
    "document.sealed",
)

_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_HEX32 = re.compile(r"^[0-9a-f]{64}$")
_ENV = re.compile(r"^[0-9a-f]{32}$")


def _no_float(s: str) -> Any:
    raise FormatError(f"number {s} is not an integer; entries and events carry integers only")


def _no_constant(s: str) -> Any:
    raise FormatError(f"{s} is not valid JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a key came twice: say which
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise FormatError(f"duplicate key {k!r}")
            seen.add(k)
    return out


# One decoder for every call (json.loads with options makes a new one each time).
_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=_no_float, parse_constant=_no_constant)


def _depth(v: Any, d: int = 0) -> None:
    if d > MAX_DEPTH:
        raise FormatError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(v, dict):
        for x in v.values():
            _depth(x, d + 1)
    elif isinstance(v, list):
        for x in v:
            _depth(x, d + 1)
    elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SAFE_INT:
        raise FormatError(f"integer {v} is outside the interoperable range of ±2^53")


def strict_loads(data: bytes | str, *, max_bytes: int) -> Any:
    """Parse JSON strictly: valid UTF-8, no duplicate keys, no floats, no NaN, bounded size and depth."""
    if isinstance(data, bytes):
        if len(data) > max_bytes:
            raise FormatError(f"JSON is {len(data)} bytes, more than the limit of {max_bytes}", code="too_large")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"JSON is not valid UTF-8 (byte {e.start}: {e.reason})") from None
    elif len(data) > max_bytes:
        raise FormatError(f"JSON is more than the limit of {max_bytes} bytes", code="too_large")
    if data.startswith("\ufeff"):
        raise FormatError("JSON must not start with a byte-order mark")
    try:
        value = _DECODER.decode(data)
    except json.JSONDecodeError as e:
        raise FormatError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise FormatError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # the only other ValueError of json.loads: int() refuses a number this long
        raise FormatError(f"JSON holds an integer with more than {sys.get_int_max_str_digits()} digits; "
                          "entries and events carry integers within ±2^53") from None
    _depth(value)
    return value


_orjson: Any
try:  # an optional accelerator for canonical_trusted; results are the same without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency of the ledger, not of the verifier
    _orjson = None

_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_trusted(value: Any) -> bytes:
    """`canonical` for values this code built from validated input (no floats by construction).

    Skips the float walk; an output with non-ASCII text still goes through the full check, since
    only such text can hold a character beyond U+FFFF in a key. Where orjson is installed it
    writes the ASCII case (the same bytes: sorted keys, no whitespace, the same escapes; tested).
    """
    if _orjson is not None:
        try:
            raw: bytes = _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        except TypeError:  # integers beyond 64 bits, a lone surrogate: the full path decides
            return canonical(value)
        return raw if raw.isascii() else canonical(value)
    out = _ENCODER.encode(value)
    return out.encode("utf-8") if out.isascii() else canonical(value)


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of an integer-only JSON value. Floats are refused.

    For our values (strings, integers, booleans, null, arrays, objects) the standard library's
    encoder with sorted keys, no whitespace and no ASCII escaping writes exactly RFC 8785: the same
    escapes (only `"`, `\\` and control characters, short forms, lowercase `\\u00xx`) and integers.
    The one difference is key order when a key holds a character beyond U+FFFF (RFC 8785 sorts by
    UTF-16 code units); such values go through the `rfc8785` package. Tests compare both.
    """
    if not _plain(value):
        raise FormatError("floats are not allowed; use integers")
    try:
        if _astral_keys(value):
            return rfc8785.dumps(value)
        return _ENCODER.encode(value).encode("utf-8")
    except (rfc8785.CanonicalizationError, ValueError, TypeError, UnicodeEncodeError) as e:
        raise FormatError(f"value cannot be canonicalised: {e}") from None


def _plain(v: Any) -> bool:
    if isinstance(v, float):
        return False
    if isinstance(v, dict):
        return all(_plain(x) for x in v.values())
    if isinstance(v, list):
        return all(_plain(x) for x in v)
    return True


def _astral_keys(v: Any) -> bool:
    if isinstance(v, dict):
        return any(max(map(ord, k), default=0) > 0xFFFF for k in v) or any(_astral_keys(x) for x in v.values())
    if isinstance(v, list):
        return any(_astral_keys(x) for x in v)
    return False


@dataclass(frozen=True)
class Entry:
    env: str
    seq: int
    type: str
    time: str
    prev: str
    data: dict[str, Any]
    raw: bytes
    leaf: bytes

    @classmethod
    def build(cls, env: str, seq: int, type: str, time: str, prev: str, data: dict[str, Any]) -> Entry:
        obj = {"v": FORMAT_VERSION, "env": env, "seq": seq, "type": type, "time": time, "prev": prev, "data": data}
        _validate(obj)
        raw = canonical_trusted(obj) if _plain(data) else canonical(obj)
        if len(raw) > MAX_ENTRY_BYTES:
            raise FormatError(f"entry would be {len(raw)} bytes, more than {MAX_ENTRY_BYTES}")
        return cls(env, seq, type, time, prev, data, raw, leaf_hash(raw))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Entry:
        obj = strict_loads(raw, max_bytes=MAX_ENTRY_BYTES)
        if not isinstance(obj, dict):
            raise FormatError("entry is not a JSON object")
        _validate(obj)
        if canonical(obj) != raw:
            raise FormatError("entry is not in RFC 8785 canonical form")
        return cls(obj["env"], obj["seq"], obj["type"], obj["time"], obj["prev"], obj["data"], raw, leaf_hash(raw))

    def to_json(self) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "env": self.env, "seq": self.seq, "type": self.type,
                "time": self.time, "prev": self.prev, "data": self.data}


def _validate(obj: dict[str, Any]) -> None:
    keys = {"v", "env", "seq", "type", "time", "prev", "data"}
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise FormatError(f"entry fields wrong (unexpected {extra}, missing {missing})")
    if obj["v"] != FORMAT_VERSION or isinstance(obj["v"], bool):
        raise FormatError(f"entry format version {obj['v']!r} is not {FORMAT_VERSION}")
    if not isinstance(obj["env"], str) or not _ENV.fullmatch(obj["env"]):
        raise FormatError("entry env must be 32 lowercase hex characters")
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SAFE_INT:
        raise FormatError("entry seq must be a non-negative integer")
    if obj["type"] not in EVENT_TYPES:
        raise FormatError(f"unknown event type {obj['type']!r}")
    if not isinstance(obj["time"], str) or not _TIME.fullmatch(obj["time"]):
        raise FormatError("entry time must be RFC 3339 UTC with milliseconds, like 2026-01-02T03:04:05.678Z")
    prev = obj["prev"]
    if seq == 0 and prev != "":
        raise FormatError("the first entry of an envelope has prev \"\"")
    if seq > 0 and (not isinstance(prev, str) or not _HEX32.fullmatch(prev)):
        raise FormatError("entry prev must be the 64-hex leaf hash of the envelope's previous entry")
    if not isinstance(obj["data"], dict):
        raise FormatError("entry data must be an object")


def check_chain(entries: Iterable[Entry]) -> None:
    """Check that one envelope's entries form an unbroken chain: seq 0, 1, 2 ... and each prev links."""
    last: Entry | None = None
    for e in entries:
        if last is None:
            if e.seq != 0:
                raise VerificationError(f"envelope {e.env} starts at seq {e.seq}, not 0", code="broken_chain")
        else:
            if e.env != last.env:
                raise VerificationError("entries of different envelopes in one chain", code="broken_chain")
            if e.seq != last.seq + 1:
                raise VerificationError(f"envelope {e.env}: seq {e.seq} follows {last.seq}", code="broken_chain")
            if e.prev != last.leaf.hex():
                raise VerificationError(
                    f"envelope {e.env}: entry seq {e.seq} does not link to the previous entry", code="broken_chain"
                )
        last = e
