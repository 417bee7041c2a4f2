"""The envelope lifecycle (DESIGN.md §3): every allowed transition, every refusal with its own code."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.audit.run import audit
from ledger.envelopes.core import Ledger
from ledger.errors import RefusedError
from tests.envelopes.test_seal_registry import electronic_seal, physical_seal

T = "tenant-a"
H = hashlib.sha256(b"doc").hexdigest()


@pytest.fixture
def led(tmp_path: Path, database: str) -> Iterator[Ledger]:
    """A new ledger on each engine (SQLite, PostgreSQL), audited at the end."""
    ledger = Ledger.init(tmp_path / "home", database=database or None)
    yield ledger
    assert audit(ledger.log).ok, audit(ledger.log).problems
    ledger.close()


def ev(type: str, env: str = "E1", **fields: Any) -> dict[str, Any]:
    return {"type": type, "envelope": env, **fields}


def draft(env: str = "E1", signers: tuple[tuple[str, int], ...] = (("a", 1), ("b", 2)), cc: bool = False) -> list:
    out = [ev("envelope.created", env, title="Contract"),
           ev("document.added", env, document="d", sha256=H, size=10, name="c.pdf")]
    out += [ev("party.added", env, party=p, role="signer", order=o, name=f"Person {p}") for p, o in signers]
    if cc:
        out.append(ev("party.added", env, party="cc", role="cc", name="Observer"))
    return out


def sign(p: str, env: str = "E1") -> list:
    return [ev("party.authenticated", env, party=p, method="sms"),
            ev("party.signed", env, party=p, channel="web", document="d", signed_sha256=H)]


def sent(env: str = "E1", **kw: Any) -> list:
    return draft(env, **kw) + [ev("envelope.sent", env)]


def completed(env: str = "E1") -> list:
    return sent(env) + sign("a", env) + sign("b", env) + [ev("envelope.completed", env)]


def status(led: Ledger, env: str = "E1") -> str:
    return str(led.envelope(T, env)["status"])


def refused(led: Ledger, events: list, code: str) -> RefusedError:
    before = led.log.size
    with pytest.raises(RefusedError) as info:
        led.append(T, events)
    assert info.value.code == code, str(info.value)
    assert led.log.size == before, "a refused request must write nothing"
    return info.value


def test_happy_path_to_completion(led: Ledger) -> None:
    acks = led.append(T, completed())
    assert [a["seq"] for a in acks] == list(range(len(acks)))
    assert status(led) == "completed"
    assert acks[-1]["checkpoint_size"] == led.log.size


def test_parallel_signers_with_equal_order_sign_in_any_order(led: Ledger) -> None:
    led.append(T, sent(signers=(("a", 1), ("b", 1), ("c", 2))))
    refused(led, sign("c"), "out_of_order")
    led.append(T, sign("b"))
    refused(led, sign("c"), "out_of_order")
    led.append(T, sign("a") + sign("c") + [ev("envelope.completed")])
    assert status(led) == "completed"


def test_signing_order_is_enforced(led: Ledger) -> None:
    led.append(T, sent())
    err = refused(led, sign("b"), "out_of_order")
    assert "wait for parties 'a'" in str(err)


def test_sign_requires_authentication(led: Ledger) -> None:
    led.append(T, sent())
    refused(led, [ev("party.signed", party="a", channel="web", document="d", signed_sha256=H)], "not_authenticated")


def test_double_signature_refused(led: Ledger) -> None:
    led.append(T, sent() + sign("a"))
    refused(led, [ev("party.signed", party="a", channel="web", document="d", signed_sha256=H)], "already_signed")


def test_cc_cannot_sign_but_may_view(led: Ledger) -> None:
    led.append(T, sent(cc=True) + [ev("party.viewed", party="cc")])
    refused(led, sign("cc"), "not_a_signer")


def test_complete_requires_every_signer(led: Ledger) -> None:
    led.append(T, sent() + sign("a"))
    refused(led, [ev("envelope.completed")], "not_all_signed")


def test_send_requires_documents_and_signers(led: Ledger) -> None:
    led.append(T, [ev("envelope.created", title="x")])
    refused(led, [ev("envelope.sent")], "no_documents")
    led.append(T, [ev("document.added", document="d", sha256=H, size=1, name="n")])
    refused(led, [ev("envelope.sent")], "no_signers")


@pytest.mark.parametrize("event", [
    ev("party.signed", party="a", channel="web", document="d", signed_sha256=H),
    ev("party.authenticated", party="a", method="face"),
    ev("envelope.completed"),
    ev("copy.printed", document="d"),
    ev("party.declined", party="a"),
])
def test_nothing_happens_before_sending(led: Ledger, event: dict) -> None:
    led.append(T, draft())
    refused(led, [event], "wrong_state")


@pytest.mark.parametrize("event", [
    ev("document.added", document="d2", sha256=H, size=1, name="n"),
    ev("party.added", party="z", role="signer", name="Late"),
    ev("envelope.sent"),
])
def test_no_changes_after_sending(led: Ledger, event: dict) -> None:
    led.append(T, sent())
    refused(led, [event], "wrong_state")


def test_withdraw_before_completion_from_draft_and_sent(led: Ledger) -> None:
    led.append(T, draft("E1") + [ev("envelope.withdrawn", "E1", reason="typo")])
    led.append(T, sent("E2") + sign("a", "E2") + [ev("envelope.withdrawn", "E2")])
    assert status(led, "E1") == status(led, "E2") == "withdrawn"


def test_withdraw_after_completion_refused(led: Ledger) -> None:
    led.append(T, completed())
    refused(led, [ev("envelope.withdrawn")], "withdraw_after_completion")


def test_decline_closes_the_envelope(led: Ledger) -> None:
    led.append(T, sent() + [ev("party.declined", party="a", reason="no")])
    assert status(led) == "declined"
    refused(led, sign("b"), "envelope_closed")
    refused(led, [ev("envelope.withdrawn")], "envelope_closed")
    led.append(T, [ev("evidence.exported", by="legal team")])


def test_void_needs_every_signers_consent(led: Ledger) -> None:
    led.append(T, completed() + [ev("copy.printed", document="d")])
    refused(led, [ev("envelope.voided")], "void_not_requested")
    refused(led, [ev("void.consented", party="b")], "void_not_requested")
    led.append(T, [ev("void.requested", party="a", reason="error")])
    refused(led, [ev("void.requested", party="b")], "void_already_requested")
    refused(led, [ev("void.consented", party="a")], "already_consented")
    refused(led, [ev("envelope.voided")], "void_consent_missing")
    led.append(T, [ev("void.consented", party="b"), ev("envelope.voided")])
    assert status(led) == "voided"
    state = led.envelope(T, "E1")["state"]
    assert "voided" in state["times"]


def test_void_only_after_completion(led: Ledger) -> None:
    led.append(T, sent())
    refused(led, [ev("void.requested", party="a")], "void_before_completion")
    refused(led, [ev("envelope.voided")], "void_before_completion")


@pytest.mark.parametrize("event", [
    ev("party.viewed", party="a"), ev("copy.printed", document="d"), ev("envelope.withdrawn"),
    ev("void.requested", party="a"), ev("seal.used", party="a", seal=H, kind="physical"),
])
def test_only_export_after_void(led: Ledger, event: dict) -> None:
    led.append(T, completed() + [ev("void.requested", party="a"), ev("void.consented", party="b"),
                                 ev("envelope.voided")])
    refused(led, [event], "envelope_closed")
    led.append(T, [ev("evidence.exported")])


def test_copies_seals_and_scans_after_completion(led: Ledger) -> None:
    stamp = physical_seal(led, T)
    acks = led.append(T, completed() + [ev("copy.printed", document="d"), ev("copy.printed", document="d"),
                                        ev("seal.used", party="b", seal=stamp, kind="physical"),
                                        ev("paper.scanned", document="d", sha256=H, copy=1)])
    codes = [a["code"] for a in acks if "code" in a]
    assert len(codes) == 2 and len(set(codes)) == 2 and all(len(c) == 20 for c in codes)
    assert led.envelope(T, "E1")["state"]["copies"] == [2]


def test_a_scan_is_of_a_printed_copy_and_a_seal_is_a_signers(led: Ledger) -> None:
    led.append(T, sent(cc=True) + [ev("copy.printed", document="d")])
    refused(led, [ev("paper.scanned", document="d", sha256=H, copy=2)], "unknown_copy")
    refused(led, [ev("seal.used", party="cc", seal=H, kind="physical")], "not_a_signer")
    digital = electronic_seal(led, T)
    refused(led, [ev("seal.used", party="a", seal=digital, kind="electronic")], "seal_before_signing")
    led.append(T, [ev("paper.scanned", document="d", sha256=H, copy=1), ev("paper.scanned", document="d", sha256=H),
                   *sign("a"), ev("seal.used", party="a", seal=digital, kind="electronic")])


def test_unknown_references(led: Ledger) -> None:
    refused(led, [ev("envelope.sent", "nope")], "unknown_envelope")
    led.append(T, sent())
    refused(led, [ev("party.viewed", party="ghost")], "unknown_party")
    refused(led, [ev("copy.printed", document="ghost")], "unknown_document")
    refused(led, [ev("envelope.created", title="again")], "envelope_exists")


def test_duplicate_party_and_document_refs(led: Ledger) -> None:
    led.append(T, draft())
    refused(led, [ev("party.added", party="a", role="signer", name="A again")], "party_exists")
    refused(led, [ev("document.added", document="d", sha256=H, size=1, name="n")], "document_exists")


def test_tenants_never_see_each_other(led: Ledger) -> None:
    led.append(T, sent())
    with pytest.raises(RefusedError) as info:
        led.append("tenant-b", sign("a"))
    assert info.value.code == "unknown_envelope"
    led.append("tenant-b", sent())  # the same reference is a different envelope for another tenant
    assert led.envelope(T, "E1")["env"] != led.envelope("tenant-b", "E1")["env"]


def test_a_refused_event_refuses_its_whole_request(led: Ledger) -> None:
    led.append(T, sent())
    err = refused(led, [ev("party.viewed", party="a"), ev("party.viewed", party="b")] + sign("b"), "out_of_order")
    assert err.event == 3
    assert led.envelope(T, "E1")["events"] == len(sent())


def _key(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True)


def test_entries_hold_no_personal_data(led: Ledger) -> None:
    led.append(T, [ev("envelope.created", title="Secret merger 合同"),
                   ev("party.added", party="a", role="signer", name="Zhang San", contact="13800000000")])
    raw = b"".join(led.log.entry(i) for i in range(led.log.size))
    for secret in ["Secret merger", "合同", "Zhang San", "13800000000", "E1"]:
        assert secret.encode() not in raw
    # the openings are private and open the commitments
    rows = led.log.conn.execute("SELECT commitment, salt, value FROM openings").fetchall()
    # the title, the envelope's tenant and reference, the party's identity and the party's reference
    assert sorted((json.loads(v) for _, _, v in rows), key=_key) == sorted(
        [{"title": "Secret merger 合同"}, {"tenant": T, "ref": "E1"},
         {"name": "Zhang San", "contact": "13800000000"}, {"ref": "a"}], key=_key)
    for c, salt, value in rows:
        assert len(bytes.fromhex(salt)) >= 16
        assert hashlib.sha256(bytes.fromhex(salt) + value.encode()).hexdigest() == c
        assert c.encode() in raw


def test_requests_batched_together_see_each_other(led: Ledger) -> None:
    """Requests committed in one transaction build on each other's state and write it once."""
    futures = [led.submit(T, draft("E1")[:1])]
    futures += [led.submit(T, [ev("party.added", "E1", party=f"p{i}", role="cc", name=f"Person {i}")])
                for i in range(20)]
    futures += [led.submit(T, draft(f"N{i}")) for i in range(10)]
    acks = [f.result(timeout=30) for f in futures]
    assert [a[0]["seq"] for a in acks[:21]] == list(range(21))
    info = led.envelope(T, "E1")
    assert info["events"] == 21 and info["last_index"] == max(a[0]["index"] for a in acks[:21])
    assert len(info["state"]["parties"]) == 20
    for i in range(10):
        n = led.envelope(T, f"N{i}")
        assert n["events"] == 4 and n["last_index"] - n["first_index"] == 3


def test_envelope_ids_are_time_ordered_and_unpredictable(led: Ledger) -> None:
    led.append(T, [ev("envelope.created", f"E{i}", title="t") for i in range(50)])
    ids = [led.envelope(T, f"E{i}")["env"] for i in range(50)]
    assert len(set(ids)) == 50 and all(len(i) == 32 for i in ids)
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)  # millisecond prefix, in creation order
    assert len({i[12:] for i in ids}) == 50  # 80 random bits each
    import time

    ms = int(time.time() * 1000)
    assert abs(int(ids[0][:12], 16) - ms) < 60_000


def test_a_batch_committed_here_reads_its_envelopes_once_per_tenant(led: Ledger) -> None:
    """`commit_here` (the writer link's path) stages a batch on the calling thread: the envelopes its
    requests name are read in one query per tenant, a refusal fails alone, the rest is durable at once."""
    from ledger.envelopes.events import parse_events

    for i in range(10):
        led.append(T, draft(f"E{i}")[:1])
    led.append("other", draft("O1")[:1])
    statements: list[str] = []
    led.log.conn.set_trace_callback(statements.append)
    answers: list[tuple[bool, Any]] = []

    def req(tenant: str, *events: dict[str, Any]) -> tuple[str, list, Any]:
        return (tenant, parse_events(list(events)), lambda ok, value: answers.append((ok, value)))

    led.commit_here([req(T, ev("party.added", f"E{i}", party="p", role="cc", name="n")) for i in range(10)]
                    + [req(T, ev("envelope.created", f"N{i}", title="t")) for i in range(5)]
                    + [req("other", ev("party.added", "O1", party="p", role="cc", name="n")),
                       req("other", ev("envelope.sent", "E1"))])  # E1 is not this tenant's: refused alone
    led.log.conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM envelopes" in s]
    assert len(reads) == 2, reads  # one per tenant, not one per request
    refused = [value for ok, value in answers if not ok]
    assert len(answers) == 17 and len(refused) == 1, answers
    assert isinstance(refused[0], RefusedError) and refused[0].code == "unknown_envelope"
    sizes = {value[0]["checkpoint_size"] for ok, value in answers if ok}
    assert sizes == {led.log.size}, "one batch, one checkpoint"
    assert sorted(value[0]["index"] for ok, value in answers if ok) == list(range(led.log.size - 16, led.log.size))
    assert status(led, "E3") == "draft" and led.envelope(T, "E3")["events"] == 2


def test_batches_committed_here_and_by_the_thread_take_turns(led: Ledger) -> None:
    """The sequencer's thread and a caller committing on its own thread never write at once."""
    import threading

    from ledger.envelopes.events import parse_events

    answers: list[Any] = []
    futures = []

    def from_threads() -> None:
        futures.extend(led.submit(T, [ev("envelope.created", f"S{i}", title="t")]) for i in range(200))

    t = threading.Thread(target=from_threads)
    t.start()
    for k in range(20):
        led.commit_here([(T, parse_events([ev("envelope.created", f"H{k}-{i}", title="t")]),
                          lambda ok, value: answers.append(value if ok else None)) for i in range(10)])
    t.join()
    acks = [a[0] for a in answers] + [f.result(timeout=30)[0] for f in futures]
    assert None not in answers
    assert sorted(a["index"] for a in acks) == list(range(400)), "every entry once, no gap (audited after)"


def test_a_refusal_names_parties_and_documents_by_the_platforms_references(led: Ledger) -> None:
    """The log holds ordinals; the platform named its parties and documents: the refusal says its names."""
    led.append(T, sent(cc=True))
    cases = [
        (sign("b"), "party 'b' (order 2) must wait for parties 'a' to sign first"),
        ([ev("party.authenticated", party="cc", method="sms"), *sign("cc")[1:]], "party 'cc' is a cc, not a signer"),
        ([ev("envelope.completed")], "parties 'a', 'b' have not signed yet"),
    ]
    for events, why in cases:
        with pytest.raises(RefusedError) as e:
            led.append(T, events)
        assert why in str(e.value), str(e.value)
        assert "party.signed: " not in str(e.value), "the event type is said once"
