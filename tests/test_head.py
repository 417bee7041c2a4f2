"""Envelope heads (verifier/head.py): the log's signed statement of an envelope's last event."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.core import Ledger
from ledger.errors import NotFoundError
from ledger.keys import LogSigner
from verifier.checkpoint import Checkpoint
from verifier.errors import FormatError, SignatureError, VerificationError
from verifier.head import EnvelopeHead, verify_head
from verifier.merkle import leaf_hash
from verifier.note import parse_note, sign_note

AGE = timedelta(minutes=10)
H = hashlib.sha256(b"doc").hexdigest()


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.init(tmp_path / "home")
    for event in ({"type": "envelope.created", "envelope": "E", "title": "x"},  # one checkpoint each
                  {"type": "envelope.created", "envelope": "F", "title": "y"},
                  {"type": "document.added", "envelope": "E", "document": "d", "sha256": H, "size": 1,
                   "name": "d.pdf"}):
        ledger.append("t", [event])
    yield ledger
    ledger.close()


def _env(led: Ledger, ref: str) -> str:
    return str(led.envelope("t", ref)["env"])


def test_a_head_states_the_last_event_in_a_tree(led: Ledger) -> None:
    env = _env(led, "E")
    head = verify_head(led.envelope_head(env, led.log.size), led.verifier, now=datetime.now(UTC), max_age=AGE,
                       size=3)
    assert (head.env, head.size, head.events, head.last_index) == (env, 3, 2, 2)
    assert head.last_leaf == leaf_hash(led.log.entry(2))
    early = verify_head(led.envelope_head(env, 1), led.verifier, now=datetime.now(UTC), max_age=AGE)
    assert (early.events, early.last_index) == (1, 0), "an older tree: only what it held"
    other = verify_head(led.envelope_head(_env(led, "F"), 3), led.verifier, now=datetime.now(UTC), max_age=AGE)
    assert (other.events, other.last_index) == (1, 1)


def test_the_ledger_refuses_heads_it_cannot_state(led: Ledger) -> None:
    env = _env(led, "F")
    for size in (0, 4, -1):
        with pytest.raises(NotFoundError):
            led.envelope_head(env, size)
    with pytest.raises(NotFoundError):
        led.envelope_head(env, 1)  # F's first event is at index 1
    with pytest.raises(NotFoundError):
        led.envelope_head("0" * 32, 3)


def test_a_changed_forged_stale_or_misplaced_head_is_refused(led: Ledger) -> None:
    note = led.envelope_head(_env(led, "E"), 3)
    now = datetime.now(UTC)
    body = parse_note(note).text
    lines = body.split("\n")
    fewer = "\n".join([*lines[:4], "1", *lines[5:]])
    with pytest.raises(SignatureError):  # one event fewer, under the log's signature
        verify_head(fewer + note[len(body):], led.verifier, now=now, max_age=AGE)
    forger = LogSigner.generate(led.log.origin)
    with pytest.raises(SignatureError):
        verify_head(sign_note(fewer, forger).to_text(), led.verifier, now=now, max_age=AGE)
    with pytest.raises(VerificationError, match="more than"):
        verify_head(note, led.verifier, now=now + AGE + timedelta(seconds=5), max_age=AGE)
    with pytest.raises(VerificationError, match="more than"):
        verify_head(note, led.verifier, now=now - AGE - timedelta(seconds=5), max_age=AGE)
    with pytest.raises(VerificationError, match="not 2"):
        verify_head(note, led.verifier, now=now, max_age=AGE, size=2)
    other_log = LogSigner.generate("other.example/log")
    with pytest.raises(FormatError, match="for log"):
        verify_head(note, other_log.verifier, now=now, max_age=AGE)


def test_heads_and_checkpoints_are_never_taken_for_each_other(led: Ledger) -> None:
    head = parse_note(led.envelope_head(_env(led, "E"), 3)).text
    with pytest.raises(FormatError):
        Checkpoint.from_body(head)
    with pytest.raises(FormatError, match="not an envelope head"):
        EnvelopeHead.from_body(parse_note(led.log.latest_checkpoint).text)


@pytest.mark.parametrize("change, word", [
    (lambda ls: ls[:7], "lines"),
    (lambda ls: [*ls, "extra"], "lines"),
    (lambda ls: [ls[0], "envelope-head v2", *ls[2:]], "not an envelope head"),
    (lambda ls: [ls[0], ls[1], ls[2].upper(), *ls[3:]], "hex"),
    (lambda ls: [*ls[:3], "03", *ls[4:]], "decimal"),
    (lambda ls: [*ls[:4], "-1", *ls[5:]], "decimal"),
    (lambda ls: [*ls[:5], "3", *ls[6:]], "names no event"),
    (lambda ls: [*ls[:6], "not base64!", ls[7]], "base64"),
    (lambda ls: [*ls[:6], "AAAA", ls[7]], "32 bytes"),
    (lambda ls: [*ls[:7], "2026-01-02 03:04:05"], "time"),
    (lambda ls: ["", *ls[1:]], "origin"),
])
def test_malformed_heads_are_refused_with_the_reason(led: Ledger, change: object, word: str) -> None:
    lines = parse_note(led.envelope_head(_env(led, "E"), 3)).text[:-1].split("\n")
    with pytest.raises(FormatError, match=word):
        EnvelopeHead.from_body("\n".join(change(lines)) + "\n")  # type: ignore[operator]
    with pytest.raises(FormatError, match="newline"):
        EnvelopeHead.from_body("\n".join(lines))


def test_the_verifier_command_checks_a_head_offline(led: Ledger, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = _env(led, "E")
    (tmp_path / "head").write_text(led.envelope_head(env, 3))
    (tmp_path / "old-head").write_text(led.envelope_head(env, 1))
    (tmp_path / "cp").write_text(led.log.latest_checkpoint)
    key = led.verifier_key

    def verifier(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "verifier"), "head", *args], capture_output=True,
                              text=True, timeout=60)

    ok = verifier(str(tmp_path / "head"), "--key", key, "--checkpoint", str(tmp_path / "cp"), "--at",
                  datetime.now(UTC).isoformat())
    assert ok.returncode == 0 and f"VERIFIED envelope {env} has 2 event(s)" in ok.stdout, ok.stdout + ok.stderr
    wrong_tree = verifier(str(tmp_path / "old-head"), "--key", key, "--checkpoint", str(tmp_path / "cp"))
    assert wrong_tree.returncode == 1 and "not 3" in wrong_tree.stdout
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    stale = verifier(str(tmp_path / "head"), "--key", key, "--at", later)
    assert stale.returncode == 1 and "NOT VERIFIED" in stale.stdout
    archived = verifier(str(tmp_path / "head"), "--key", key)  # no --at: what the log said, and when
    assert archived.returncode == 0
    other = verifier(str(tmp_path / "head"), "--key", LogSigner.generate(led.log.origin).verifier_key)
    assert other.returncode == 1 and "NOT VERIFIED" in other.stdout
