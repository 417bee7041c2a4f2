"""Free text and numbers at the edge: what a title or a name may hold, and integers too long to parse.

Text fields are shown on the public verification page; a bidirectional override can make a title
or a file name read as something else there, so such characters are refused like the other
control characters. Ordinary text in any script is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger
from ledger.envelopes.events import control_character, parse_event, parse_events, parse_json_lines
from ledger.errors import RefusedError
from portal.app import create_app
from verifier.entry import strict_loads
from verifier.errors import FormatError

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
H = "ab" * 32
HUGE = "1" * 5000  # more digits than Python's int() takes from a string (4300 by default)

# every text field of the input schema, with an event that carries it
TEXT_FIELDS = [
    ("envelope.created", "title", {}),
    ("document.added", "name", {"document": "d", "sha256": H, "size": 1}),
    ("party.added", "name", {"party": "p", "role": "signer"}),
    ("party.added", "contact", {"party": "p", "role": "signer", "name": "n"}),
    ("party.declined", "reason", {"party": "p"}),
    ("envelope.withdrawn", "reason", {}),
    ("void.requested", "reason", {"party": "p"}),
    ("evidence.exported", "by", {}),
]
REFUSED = {
    "\x07": "U+0007", "\x00": "U+0000", "\r": "U+000D",
    "\x7f": "U+007F",  # DEL
    "\x80": "U+0080", "\x85": "U+0085", "\x9f": "U+009F",  # C1 controls (U+0085: next line)
    "\u2028": "U+2028", "\u2029": "U+2029",  # line and paragraph separators
    "\u202a": "U+202A", "\u202b": "U+202B", "\u202c": "U+202C", "\u202d": "U+202D",
    "\u202e": "U+202E",  # right-to-left override
    "\u2066": "U+2066", "\u2067": "U+2067", "\u2068": "U+2068", "\u2069": "U+2069",  # isolates
}
ACCEPTED = ["张三", "房屋租赁合同（2026）", "Zoë Ñúñez-Çelik", "Łódź ąę", "😀 lease 🏠", "عقد إيجار", "חוזה שכירות",
            "Приём", "tab\there", "two\nlines", "a\u00a0b", "e\u0301"]


def event(type: str, name: str, value: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": type, "envelope": "E1", **fields, name: value}


@pytest.mark.parametrize(("char", "code"), REFUSED.items())
@pytest.mark.parametrize(("type", "name", "fields"), TEXT_FIELDS)
def test_control_and_bidi_characters_are_refused_in_every_text_field(
        type: str, name: str, fields: dict[str, Any], char: str, code: str) -> None:
    with pytest.raises(RefusedError) as info:
        parse_event(event(type, name, f"invoice{char}fdp.exe", fields))
    msg = str(info.value)
    assert info.value.code == "invalid_event" and info.value.status == 422
    assert f"{type}.{name} contains control characters" in msg and code in msg and "position 7" in msg, msg


@pytest.mark.parametrize("text", ACCEPTED)
@pytest.mark.parametrize(("type", "name", "fields"), TEXT_FIELDS)
def test_text_in_any_script_is_accepted(type: str, name: str, fields: dict[str, Any], text: str) -> None:
    assert parse_event(event(type, name, text, fields)).fields[name] == text


def test_control_character_names_the_first_one() -> None:
    assert control_character("fine, 好") is None
    assert control_character("a\u202eb\x07") == "U+202E, a bidirectional control, at position 1"
    assert control_character("x\u2029") == "U+2029, a line or paragraph separator, at position 1"
    assert control_character("a\tb\nc") is None
    assert control_character("a\tb", one_line=True) == "U+0009, a control character, at position 1"
    assert control_character("ab\n", one_line=True) == "U+000A, a control character, at position 2"
    assert control_character("a\x1b[31m", one_line=True) == "U+001B, a control character, at position 1"


def test_an_integer_too_long_to_parse_is_malformed_json() -> None:
    for data in (f'{{"size": {HUGE}}}', f"[-{HUGE}]", HUGE):
        with pytest.raises(FormatError, match="an integer with more than 4300 digits"):
            strict_loads(data, max_bytes=1 << 20)
        with pytest.raises(FormatError, match="more than 4300 digits"):
            strict_loads(data.encode(), max_bytes=1 << 20)
    with pytest.raises(FormatError, match="outside the interoperable range"):  # long, but int() takes it
        strict_loads("1" * 4300, max_bytes=1 << 20)
    body = json.dumps({"type": "document.added", "envelope": "E1", "document": "d", "sha256": H,
                       "name": "n", "size": 0}).replace('"size": 0', f'"size": {HUGE}')
    with pytest.raises(RefusedError, match="more than 4300 digits") as info:
        parse_events(body.encode())
    assert (info.value.code, info.value.status) == ("invalid_json", 400)
    with pytest.raises(RefusedError, match="line 3: .*more than 4300 digits") as info:
        parse_json_lines([body.encode()], 3)
    assert info.value.code == "invalid_json"


async def test_the_api_answers_400_not_500_to_a_huge_integer_and_422_to_an_override(
        aiohttp_client: Client, ledger: Ledger) -> None:
    key = create_key(ledger.log, "tenant-a", ["append", "read"])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    created = '{"type": "envelope.created", "envelope": "E1", "title": "Lease"}'
    for path, body in [("/api/v1/events", f"[{created}, {HUGE}]"),
                       ("/api/v1/envelopes", f'{{"envelope": "E2", "title": "t", "n": {HUGE}}}'),
                       ("/api/v1/envelopes/E1/events", f'{{"type": "envelope.sent", "x": -{HUGE}}}')]:
        r = await client.post(path, data=body, headers=headers)
        assert r.status == 400, (path, r.status, await r.text())
        error = (await r.json())["error"]
        assert error["code"] == "invalid_json" and "more than 4300 digits" in error["message"]
    r = await client.post("/api/v1/envelopes", json={"envelope": "E3", "title": "Lease \u202efdp.exe"}, headers=headers)
    assert r.status == 422 and "U+202E" in (await r.json())["error"]["message"]
    r = await client.post("/api/v1/envelopes", json={"envelope": "E4", "title": "房屋租赁合同 Zoë 😀"}, headers=headers)
    assert r.status == 201, await r.text()
    assert ledger.log.size == 1


# zero width and directional marks: invisible, so two titles that read the same can differ, or a title
# can hide a word; each is refused and named
INVISIBLE = {
    "\u200b": ("U+200B", "zero width space"), "\u200c": ("U+200C", "zero width non-joiner"),
    "\u200d": ("U+200D", "zero width joiner"), "\u200e": ("U+200E", "left-to-right mark"),
    "\u200f": ("U+200F", "right-to-left mark"), "\u061c": ("U+061C", "arabic letter mark"),
    "\ufeff": ("U+FEFF", "zero width no-break space"), "\u180e": ("U+180E", "mongolian vowel separator"),
    "\u2060": ("U+2060", "word joiner"), "\u2061": ("U+2061", "function application"),
    "\u2062": ("U+2062", "invisible times"), "\u2063": ("U+2063", "invisible separator"),
    "\u2064": ("U+2064", "invisible plus"), "\u206a": ("U+206A", "inhibit symmetric swapping"),
    "\u206f": ("U+206F", "nominal digit shapes"), "\ufff9": ("U+FFF9", "interlinear annotation anchor"),
}
# where a joiner does a visible job, it is ordinary text
JOINED = ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: ZWNJ between letters of a joining script
          "\u0915\u094d\u200d\u0937",  # Devanagari: ZWJ after a virama
          "family \U0001f468\u200d\U0001f469\u200d\U0001f467",  # an emoji ZWJ sequence
          "\u2764\ufe0f\u200d\U0001f525"]


@pytest.mark.parametrize(("char", "named"), INVISIBLE.items())
@pytest.mark.parametrize(("type", "name", "fields"), TEXT_FIELDS)
def test_zero_width_and_directional_marks_are_refused_in_every_text_field(
        type: str, name: str, fields: dict[str, Any], char: str, named: tuple[str, str]) -> None:
    with pytest.raises(RefusedError) as info:
        parse_event(event(type, name, f"invoice{char}fdp.exe", fields))
    msg = str(info.value)
    assert info.value.code == "invalid_event" and info.value.status == 422
    assert f"{type}.{name} contains" in msg and named[0] in msg and named[1] in msg and "position 7" in msg, msg


@pytest.mark.parametrize("text", JOINED)
@pytest.mark.parametrize(("type", "name", "fields"), TEXT_FIELDS)
def test_a_joiner_that_shapes_the_text_is_accepted(type: str, name: str, fields: dict[str, Any], text: str) -> None:
    assert parse_event(event(type, name, text, fields)).fields[name] == text


def test_a_joiner_anywhere_else_is_named() -> None:
    assert control_character("\u200dlease") == "U+200D, an invisible character (zero width joiner), at position 0"
    assert control_character("合\u200d同") == "U+200D, an invisible character (zero width joiner), at position 1"
    assert control_character("a\u200fb") == "U+200F, a bidirectional mark (right-to-left mark), at position 1"
    assert control_character("\ufefftitle") == ("U+FEFF, an invisible character (zero width no-break space), "
                                                "at position 0")
    assert control_character("\u0645\u06cc\u200c\u062e\u200b") == ("U+200B, an invisible character (zero width "
                                                                   "space), at position 4")
