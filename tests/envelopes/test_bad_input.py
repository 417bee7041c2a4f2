"""Bad input at the ledger's edge: every bad request is refused with a stable code and a clear message,
and a refused request writes nothing at all.

Requests go through `Ledger.append(tenant, raw_bytes)` (or already-parsed JSON), exactly as the API
hands them over. After each refusal the log size, the latest checkpoint and every projection table
are compared with a snapshot taken before. Hypothesis then throws random bytes, random JSON and
random event sequences at a ledger: the only outcomes allowed are success and RefusedError, and
`ledger audit` must still find the log and its projections consistent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.run import audit
from ledger.envelopes.core import Ledger
from ledger.envelopes.events import SCHEMA
from ledger.errors import RefusedError
from tests.conftest import new_ledger

H = "ab" * 32
T = "tenant-a"
MAX_EVENTS = 50
MAX_BYTES = 64 * 1024


def _clock() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def ev(type: str, envelope: str = "E1", **fields: Any) -> dict[str, Any]:
    return {"type": type, "envelope": envelope, **fields}


def _make_ledger(home: Path, engine: str) -> Ledger:
    home.mkdir(parents=True)
    (home / "config.toml").write_text(f"max_events_per_request = {MAX_EVENTS}\nmax_request_bytes = {MAX_BYTES}\n")
    led = new_ledger(home, engine, clock=_clock)
    assert led.config.max_events_per_request == MAX_EVENTS and led.config.max_request_bytes == MAX_BYTES
    # E1: a draft with one document and one signer.
    led.append(T, [ev("envelope.created", title="Lease"),
                   ev("document.added", document="d1", sha256=H, size=10, name="lease.pdf"),
                   ev("party.added", party="p1", role="signer", name="Alice", order=1)])
    return led


@pytest.fixture(scope="module")
def led(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[Ledger]:
    ledger = _make_ledger(tmp_path_factory.mktemp("bad-input") / "home", engine)
    yield ledger
    ledger.close()


def snapshot(led: Ledger) -> tuple[Any, ...]:
    """Everything a request could write: the log, its checkpoint, and every projection row."""
    c = led.log.conn
    counts = tuple(c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("entry_chunks", "tiles", "checkpoints", "envelope_entries", "refs", "openings", "copies"))
    envelopes = tuple(c.execute("SELECT * FROM envelopes ORDER BY env").fetchall())
    edge = tuple(c.execute("SELECT * FROM tile_edge ORDER BY level").fetchall())
    return (led.log.size, led.log.latest_checkpoint, counts, envelopes, edge)


def refused(led: Ledger, payload: bytes | list[Any]) -> RefusedError:
    """Append, expect RefusedError, and check that nothing at all was written."""
    before = snapshot(led)
    with pytest.raises(RefusedError) as info:
        led.append(T, payload)
    assert snapshot(led) == before
    assert led.log.size == before[0]
    return info.value


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


VALID = b'{"type":"envelope.created","envelope":"N1","title":"t"}'
DOC = '{"type":"document.added","envelope":"E1","document":"d2","sha256":"' + H + '","name":"n","size":'

CASES: list[tuple[str, bytes | list[Any], str, str]] = [
    # -- not JSON, or JSON the ledger does not accept (400 invalid_json) --
    ("truncated JSON", VALID[:-5], "invalid_json", "invalid json"),
    ("not JSON", b"hello", "invalid_json", "invalid json"),
    ("empty body", b"", "invalid_json", "invalid json"),
    ("trailing garbage", VALID + b" x", "invalid_json", "invalid json"),
    ("byte-order mark", b"\xef\xbb\xbf" + VALID, "invalid_json", "byte-order mark"),
    ("invalid UTF-8", VALID.replace(b'"t"', b'"\xff"'), "invalid_json", "utf-8"),
    ("overlong UTF-8", VALID.replace(b'"t"', b'"\xc0\xaf"'), "invalid_json", "utf-8"),
    ("UTF-16", VALID.decode().encode("utf-16"), "invalid_json", "utf-8"),
    ("duplicate key", b'{"type":"envelope.created","envelope":"N1","envelope":"N2","title":"t"}',
     "invalid_json", "duplicate key"),
    ("float 1.0", (DOC + "1.0}").encode(), "invalid_json", "not an integer"),
    ("float 1e3", (DOC + "1e3}").encode(), "invalid_json", "not an integer"),
    ("float -0.5", (DOC + "-0.5}").encode(), "invalid_json", "not an integer"),
    ("NaN", (DOC + "NaN}").encode(), "invalid_json", "nan"),
    ("Infinity", (DOC + "Infinity}").encode(), "invalid_json", "infinity"),
    ("-Infinity", (DOC + "-Infinity}").encode(), "invalid_json", "infinity"),
    ("integer beyond 2^53", (DOC + str(1 << 53) + "}").encode(), "invalid_json", "2^53"),
    ("deeply nested", b"[" * 30000 + b"]" * 30000, "invalid_json", "nested deeper"),
    ("nested field value", _j(ev("envelope.created", "N1", title=[[[[[[[[["x"]]]]]]]]])), "invalid_json",
     "nested deeper"),
    # -- JSON, but not events (422 invalid_event) --
    ("empty list", b"[]", "invalid_event", "no events"),
    ("empty Python list", [], "invalid_event", "no events"),
    ("event not an object", b"[1]", "invalid_event", "json object"),
    ("null", b"null", "invalid_event", "json object"),
    ("string", b'"envelope.created"', "invalid_event", "json object"),
    ("unknown event type", _j(ev("envelope.deleted")), "invalid_event", "unknown event type"),
    ("missing type", _j({"envelope": "E1", "title": "t"}), "invalid_event", "unknown event type"),
    ("type not a string", _j({"type": 5, "envelope": "E1"}), "invalid_event", "unknown event type"),
    ("unknown field", _j(ev("envelope.created", "N1", title="t", colour="red")), "invalid_event", "colour"),
    ("field of another type", _j(ev("envelope.sent", reason="r")), "invalid_event", "reason"),
    ("missing envelope", _j({"type": "envelope.created", "title": "t"}), "invalid_event", "'envelope'"),
    ("missing title", _j(ev("envelope.created", "N1")), "invalid_event", "'title'"),
    ("missing sha256", _j(ev("document.added", document="d2", size=1, name="n")), "invalid_event", "'sha256'"),
    ("missing role", _j(ev("party.added", party="p2", name="B")), "invalid_event", "'role'"),
    ("order as string", _j(ev("party.added", party="p2", role="signer", name="B", order="1")), "invalid_event",
     "order must be an integer"),
    ("order as bool", _j(ev("party.added", party="p2", role="signer", name="B", order=True)), "invalid_event",
     "order must be an integer"),
    ("order above 1000", _j(ev("party.added", party="p2", role="signer", name="B", order=1001)),
     "invalid_event", "order must be an integer"),
    ("size negative", (DOC + "-1}").encode(), "invalid_event", "size must be an integer"),
    ("size as bool", (DOC + "true}").encode(), "invalid_event", "size must be an integer"),
    ("size as string", (DOC + '"10"}').encode(), "invalid_event", "size must be an integer"),
    ("size null", (DOC + "null}").encode(), "invalid_event", "size must be an integer"),
    ("copy zero", _j(ev("paper.scanned", document="d1", sha256=H, copy=0)), "invalid_event", "copy"),
    ("role not allowed", _j(ev("party.added", party="p2", role="owner", name="B")), "invalid_event",
     "role must be one of"),
    ("auth method not allowed", _j(ev("party.authenticated", party="p1", method="telepathy")), "invalid_event",
     "method must be one of"),
    ("channel not allowed", _j(ev("party.signed", party="p1", channel="fax", document="d1", signed_sha256=H)),
     "invalid_event", "channel must be one of"),
    ("title over 500 characters", _j(ev("envelope.created", "N1", title="x" * 501)), "invalid_event",
     "more than 500"),
    ("name over 255 characters", _j(ev("document.added", document="d2", sha256=H, size=1, name="n" * 256)),
     "invalid_event", "more than 255"),
    ("reason over 2000 characters", _j(ev("envelope.withdrawn", reason="r" * 2001)), "invalid_event",
     "more than 2000"),
    ("title empty", _j(ev("envelope.created", "N1", title="")), "invalid_event", "non-empty"),
    ("title blank", _j(ev("envelope.created", "N1", title=" \n\t")), "invalid_event", "non-empty"),
    ("title not a string", _j(ev("envelope.created", "N1", title=5)), "invalid_event", "non-empty string"),
    ("title with a control character", _j(ev("envelope.created", "N1", title="a\x07b")), "invalid_event",
     "control characters"),
    ("title with NUL", _j(ev("envelope.created", "N1", title="a\x00b")), "invalid_event", "control characters"),
    ("envelope ref empty", _j(ev("envelope.created", "", title="t")), "invalid_event", "reference"),
    ("envelope ref with a space", _j(ev("envelope.created", "a b", title="t")), "invalid_event", "reference"),
    ("envelope ref of 65 characters", _j(ev("envelope.created", "a" * 65, title="t")), "invalid_event",
     "reference"),
    ("envelope ref with a leading dash", _j(ev("envelope.created", "-a", title="t")), "invalid_event",
     "reference"),
    ("envelope ref non-ASCII", _j(ev("envelope.created", "\u00e9t\u00e9", title="t")), "invalid_event",
     "reference"),
    ("envelope ref with a newline", _j(ev("envelope.created", "a\n", title="t")), "invalid_event", "reference"),
    ("envelope ref not a string", _j(ev("envelope.created", 7, title="t")), "invalid_event", "reference"),
    ("document ref with a slash", _j(ev("document.added", document="d/2", sha256=H, size=1, name="n")),
     "invalid_event", "document must be a reference"),
    ("party ref of 65 characters", _j(ev("party.viewed", party="p" * 65)), "invalid_event",
     "party must be a reference"),
    ("sha256 of 63 hex", _j(ev("document.added", document="d2", sha256=H[:-1], size=1, name="n")),
     "invalid_event", "64 hex"),
    ("sha256 of 65 hex", _j(ev("document.added", document="d2", sha256=H + "a", size=1, name="n")),
     "invalid_event", "64 hex"),
    ("sha256 not hex", _j(ev("document.added", document="d2", sha256="zz" * 32, size=1, name="n")),
     "invalid_event", "64 hex"),
    ("sha256 with 0x", _j(ev("document.added", document="d2", sha256="0x" + H[2:], size=1, name="n")),
     "invalid_event", "64 hex"),
    ("sha256 with spaces", _j(ev("document.added", document="d2", sha256=" " + H[1:], size=1, name="n")),
     "invalid_event", "64 hex"),
    ("sha256 with a trailing newline", _j(ev("document.added", document="d2", sha256=H + "\n", size=1, name="n")),
     "invalid_event", "64 hex"),
    ("document ref with a trailing newline", _j(ev("document.added", document="d2\n", sha256=H, size=1, name="n")),
     "invalid_event", "document must be a reference"),
    ("seal not hex", _j(ev("seal.used", party="p1", seal="seal", kind="electronic")), "invalid_event", "64 hex"),
    # -- valid events the ledger's state refuses --
    ("unknown envelope", _j(ev("party.viewed", "NOPE", party="p1")), "unknown_envelope", "no envelope"),
    ("envelope exists", _j(ev("envelope.created", title="again")), "envelope_exists", "already exists"),
    ("unknown party", _j(ev("party.viewed", party="ghost")), "unknown_party", "ghost"),
    ("unknown document", _j(ev("copy.printed", document="ghost")), "unknown_document", "ghost"),
    ("party ref reused", _j(ev("party.added", party="p1", role="cc", name="C")), "party_exists", "p1"),
    ("document ref reused", _j(ev("document.added", document="d1", sha256=H, size=1, name="n")),
     "document_exists", "d1"),
    ("sign before sending", _j(ev("party.signed", party="p1", channel="web", document="d1", signed_sha256=H)),
     "wrong_state", "not been sent"),
    ("complete a draft", _j(ev("envelope.completed")), "wrong_state", "not been sent"),
    ("void a draft", _j(ev("void.requested", party="p1")), "void_before_completion", "withdraw"),
    ("signer with order 0", _j(ev("party.added", party="p2", role="signer", name="B", order=0)), "bad_order",
     "order"),
]

STATUS = {"invalid_json": 400, "invalid_event": 422, "unknown_envelope": 404, "unknown_party": 404,
          "unknown_document": 404}


@pytest.mark.parametrize(("name", "payload", "code", "word"), CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_refused_and_writes_nothing(led: Ledger, name: str, payload: bytes | list[Any], code: str,
                                                   word: str) -> None:
    """Each bad request raises RefusedError with its code, an HTTP status and a message naming the problem."""
    err = refused(led, payload)
    assert err.code == code, str(err)
    assert word.lower() in str(err).lower(), str(err)
    assert err.status == STATUS.get(code, 409)


def test_boundaries_are_accepted(led: Ledger) -> None:
    """Exactly at each limit is fine: 500-character title, 255-character name, 64-character ref, upper-case hex."""
    acks = led.append(T, [ev("envelope.created", "B" * 64, title="x" * 500),
                          ev("document.added", "B" * 64, document="d", sha256=H.upper(), size=0, name="n" * 255),
                          ev("party.added", "B" * 64, party="p", role="signer", name="A", order=1000)])
    assert [a["seq"] for a in acks] == [0, 1, 2]
    doc = json.loads(led.log.entry(acks[1]["index"]))
    assert doc["data"]["sha256"] == H  # hex is stored lower-case


def test_too_many_events_is_refused(led: Ledger) -> None:
    """More events than max_events_per_request: 413 too_many_events; exactly the maximum is accepted."""
    events = [ev("envelope.created", f"M{i}", title="t") for i in range(MAX_EVENTS + 1)]
    err = refused(led, _j(events))
    assert (err.code, err.status) == ("too_many_events", 413)
    assert f"more than {MAX_EVENTS}" in str(err)
    err = refused(led, events)
    assert err.code == "too_many_events"
    size = led.log.size
    assert len(led.append(T, events[:MAX_EVENTS])) == MAX_EVENTS
    assert led.log.size == size + MAX_EVENTS


def test_request_over_max_bytes_is_refused(led: Ledger) -> None:
    """A request body larger than max_request_bytes is refused by its size, before it is parsed."""
    body = _j([ev("envelope.withdrawn", f"Z{i}", reason="y" * 2000) for i in range(MAX_EVENTS - 1)])
    assert len(body) > MAX_BYTES
    err = refused(led, body)
    assert (err.code, err.status) == ("too_large", 413)
    assert f"more than the limit of {MAX_BYTES}" in str(err)
    err = refused(led, b" " * (MAX_BYTES + 1))
    assert "limit" in str(err)


def test_a_lone_surrogate_is_refused_as_bad_input(led: Ledger) -> None:
    """A JSON string escape that is not Unicode text (a lone surrogate) is a RefusedError, like any bad text."""
    for payload in (b'{"type":"envelope.created","envelope":"S1","title":"\\ud800"}',
                    b'{"type":"party.added","envelope":"E1","party":"p9","role":"cc","name":"\\udfff"}'):
        err = refused(led, payload)
        assert err.code == "invalid_event"


def test_refused_lifecycle_event_refuses_its_whole_request(led: Ledger) -> None:
    """Event 2 (0-based) of 5 is illegal: none of the 5 is written, and the error says which event."""
    events = [ev("envelope.created", "A1", title="t"),
              ev("document.added", "A1", document="d", sha256=H, size=1, name="n"),
              ev("party.signed", "E1", party="p1", channel="web", document="d1", signed_sha256=H),  # E1 is a draft
              ev("party.added", "A1", party="p", role="signer", name="P"),
              ev("envelope.sent", "A1")]
    err = refused(led, _j(events))
    assert err.event == 2
    assert (err.code, err.status) == ("wrong_state", 409)
    assert str(err).startswith("event 2 ")
    assert "party.signed" in str(err)
    # Nothing of A1 was kept, not even in a cache: the same request without event 2 goes through.
    acks = led.append(T, events[:2] + events[3:])
    assert [a["seq"] for a in acks] == [0, 1, 2, 3]


def test_duplicate_create_in_one_request_writes_neither(led: Ledger) -> None:
    """Two creations of one envelope in one request: event 1 is refused, and event 0 is not written."""
    err = refused(led, [ev("envelope.created", "D1", title="a"), ev("envelope.created", "D1", title="b")])
    assert (err.code, err.event) == ("envelope_exists", 1)
    assert led.append(T, [ev("envelope.created", "D1", title="a")])[0]["seq"] == 0


def test_schema_refusal_names_its_event_position(led: Ledger) -> None:
    """A schema refusal carries the refused event's 0-based position in `.event`, as lifecycle refusals do."""
    events = [ev("envelope.created", "P1", title="t"), ev("envelope.created", "P2", title="t"),
              ev("envelope.created", "P3", title=5)]
    err = refused(led, _j(events))
    assert err.code == "invalid_event"
    assert str(err).startswith("event 2: ")
    assert err.event == 2


# ---- random input ---------------------------------------------------------------------------------

_KEYS = st.one_of(st.sampled_from(["type", "envelope", "title", "document", "party", "sha256", "size", "name",
                                   "role", "order", "method", "channel", "signed_sha256", "reason", "copy"]),
                  st.text(max_size=6))
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(),
                     st.text(max_size=12), st.sampled_from(list(SCHEMA) + ["E1", "d1", "p1", H, "signer"]))
_JSON = st.recursive(_SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(_KEYS, c, max_size=6),
                     max_leaves=20)


def _value(name: str, kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, tuple):
        return st.sampled_from(kind)
    if kind == "ref":
        return st.sampled_from({"document": ["d1", "d2"], "party": ["p1", "p2", "p3", "p4"]}.get(name, ["x"]))
    if kind == "hex":
        return st.sampled_from([H, H.upper(), "cd" * 32])
    if kind.startswith("text"):
        return st.sampled_from(["t", "Name \u540d", "line\nbreak"])
    lo, hi = (int(x) for x in kind.split(":")[1:])
    return st.sampled_from(sorted({lo, min(lo + 1, hi), min(lo + 2, hi)}))


# Events that the setup of the sequence test makes legal (most of them again and again).
_LIKELY = [ev("evidence.exported", "R1"), ev("evidence.exported", "R2", by="audit"),
           ev("party.viewed", "R2", party="p3"), ev("party.authenticated", "R2", party="p1", method="sms"),
           ev("copy.printed", "R2", document="d1"), ev("seal.used", "R2", party="p1", seal=H, kind="physical"),
           ev("paper.scanned", "R2", document="d1", sha256=H)]


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    """An event that is usually well-formed, sometimes not, on one of three envelopes."""
    if draw(st.booleans()):
        return dict(draw(st.sampled_from(_LIKELY)))
    type = draw(st.sampled_from(sorted(SCHEMA)))
    event: dict[str, Any] = {"type": type, "envelope": draw(st.sampled_from(["R1", "R2", "R3"]))}
    for name, (kind, required) in SCHEMA[type].items():
        if required or draw(st.booleans()):
            event[name] = draw(_value(name, kind))
    if draw(st.integers(0, 9)) == 0:  # one in ten: break one field
        event[draw(_KEYS)] = draw(_SCALARS)
    return event


def _check_outcome(led: Ledger, payload: Any) -> bool:
    """Append: either acknowledged (the log grew by the number of events) or refused (nothing written)."""
    before = snapshot(led)
    try:
        acks = led.append(T, payload)
    except RefusedError:
        assert snapshot(led) == before
        return False
    assert led.log.size == before[0] + len(acks)
    assert [a["index"] for a in acks] == list(range(before[0], before[0] + len(acks)))
    return True


def test_random_bytes_are_accepted_or_refused(tmp_path: Path, engine: str) -> None:
    """Random bytes (and near-JSON bytes) never raise anything but RefusedError; the audit stays clean."""
    ledger = _make_ledger(tmp_path / "home", engine)
    try:
        @given(st.one_of(st.binary(max_size=200),
                         st.builds(lambda a, b: a + b, st.sampled_from([b"[", b"{", b'{"type":', VALID[:30]]),
                                   st.binary(max_size=60))))
        def run(data: bytes) -> None:
            _check_outcome(ledger, data)

        run()
        assert audit(ledger.log).ok, audit(ledger.log).problems
    finally:
        ledger.close()


def test_random_json_is_accepted_or_refused(tmp_path: Path, engine: str) -> None:
    """Random JSON values, as bytes and as parsed values, are accepted or refused; the audit stays clean."""
    ledger = _make_ledger(tmp_path / "home", engine)
    try:
        @given(st.one_of(_JSON, st.lists(st.dictionaries(_KEYS, _SCALARS, max_size=6), max_size=4)))
        def run(value: Any) -> None:
            _check_outcome(ledger, json.dumps(value).encode())
            if isinstance(value, list):
                _check_outcome(ledger, value)

        run()
        assert audit(ledger.log).ok, audit(ledger.log).problems
    finally:
        ledger.close()


def test_random_event_sequences_keep_the_log_consistent(tmp_path: Path, engine: str) -> None:
    """Random requests of mostly valid events on a few envelopes: success or RefusedError only, a clean audit."""
    ledger = _make_ledger(tmp_path / "home", engine)
    # R1 a draft, R2 sent to two signers in order and a cc; R3 does not exist yet.
    for ref in ("R1", "R2"):
        ledger.append(T, [ev("envelope.created", ref, title="t"),
                          ev("document.added", ref, document="d1", sha256=H, size=1, name="n"),
                          ev("party.added", ref, party="p1", role="signer", name="A", order=1),
                          ev("party.added", ref, party="p2", role="signer", name="B", order=2),
                          ev("party.added", ref, party="p3", role="cc", name="C")])
    ledger.append(T, [ev("envelope.sent", "R2")])
    outcomes = []
    try:
        @given(st.lists(_events(), min_size=1, max_size=5))
        def run(events: list[dict[str, Any]]) -> None:
            payload = json.dumps(events).encode() if len(events) % 2 else events
            outcomes.append(_check_outcome(ledger, payload))

        run()
        assert any(outcomes) and not all(outcomes)
        report = audit(ledger.log)
        assert report.ok, report.problems
        assert report.size == ledger.log.size
    finally:
        ledger.close()
