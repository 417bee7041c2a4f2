"""`verifier witness serve`, a C2SP tlog-witness in its own process, fed the checkpoints of a real ledger:
what it cosigns, what it refuses with the spec's status, and that its state survives SIGKILL."""

from __future__ import annotations

import base64
import http.client
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.envelopes.core import Ledger
from tests.notary.procs import WitnessProcess, post
from verifier.checkpoint import parse_checkpoint, verify_checkpoint
from verifier.note import CosignatureVerifier, Ed25519Signer, cosignature_time, parse_note, sign_note


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.init(tmp_path / "home")
    yield ledger
    ledger.close()


@pytest.fixture
def witness(tmp_path: Path, led: Ledger) -> Iterator[WitnessProcess]:
    w = WitnessProcess(tmp_path / "witness", [led.verifier_key]).start()
    yield w
    w.stop()


def grow(led: Ledger, n: int = 1) -> tuple[int, str]:
    for _ in range(n):
        led.append("t", [{"type": "envelope.created", "envelope": f"E{led.log.size}", "title": "x"}])
    return led.log.size, led.log.latest_checkpoint


def held(w: WitnessProcess, origin: str) -> str:
    return (w.state / (quote(origin, safe="") + ".checkpoint")).read_text()


def test_a_witness_cosigns_a_log_that_grows(led: Ledger, witness: WitnessProcess) -> None:
    size1, cp1 = grow(led)
    status, kind, body = witness.add_checkpoint(0, [], cp1)
    assert (status, kind) == (200, "text/plain; charset=utf-8"), body
    assert body.startswith("\u2014 notary.example/w1 ") and body.endswith("\n") and body.count("\n") == 1
    cosigner = CosignatureVerifier.from_string(witness.vkey)
    signed = verify_checkpoint(cp1 + body, led.verifier, witnesses=[cosigner], witness_quorum=1)
    assert abs(cosignature_time(signed.note.signatures[-1]) - time.time()) < 60
    assert held(witness, led.log.origin) == cp1, "stored before it answered"
    # the log grows: a consistency proof from the size the witness holds
    size2, cp2 = grow(led, 3)
    status, _, body = witness.add_checkpoint(size1, led.log.consistency_proof(size1, size2), cp2)
    assert status == 200, body
    verify_checkpoint(cp2 + body, led.verifier, witnesses=[cosigner], witness_quorum=1)
    # the same checkpoint again (a retry): cosigned again, with the empty proof of equal sizes
    assert witness.add_checkpoint(size2, [], cp2)[0] == 200
    # the ledger keeps what the witness answers, through its usual acceptance path
    led.config = led.config.replace(witnesses=(witness.vkey,))
    from ledger.anchoring.witness import store

    assert store(led, cp2 + body) == ["notary.example/w1"]


def test_what_a_witness_refuses(led: Ledger, witness: WitnessProcess) -> None:
    size1, cp1 = grow(led, 2)
    assert witness.add_checkpoint(0, [], cp1)[0] == 200
    size2, cp2 = grow(led, 3)
    proof = led.log.consistency_proof(size1, size2)
    # a stale old size: 409, and the size the witness holds, as text/x.tlog.size
    assert witness.add_checkpoint(0, [], cp2) == (409, "text/x.tlog.size", f"{size1}\n")
    assert witness.add_checkpoint(size1 - 1, proof, cp2) == (409, "text/x.tlog.size", f"{size1}\n")
    # a proof that does not verify: 422
    bad = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    assert witness.add_checkpoint(size1, bad, cp2)[0] == 422
    assert witness.add_checkpoint(size1, proof[:-1], cp2)[0] == 422
    assert held(witness, led.log.origin) == cp1, "nothing refused is stored"
    # an older checkpoint than the one held: old is larger than its size, 400
    assert witness.add_checkpoint(size1, [], led.log.checkpoint_at(size1 - 1))[0] == 400
    # another tree of the size it holds, signed by the log's own key: a fork, 409, and kept as evidence
    text = parse_note(cp1).text.split("\n")
    other = sign_note("\n".join([text[0], text[1], base64.b64encode(b"\x07" * 32).decode(), ""]), led.log.signer)
    status, kind, body = witness.add_checkpoint(size1, [], other.to_text())
    assert status == 409 and kind != "text/x.tlog.size" and "fork" in body, body
    assert [p.name for p in (witness.state / "forks").iterdir()] == [
        f"{quote(led.log.origin, safe='')}-{size1}-{'07' * 8}.checkpoint"]
    # a log it does not witness: 404; not signed by the log's key: 403
    stranger = Ed25519Signer("other.example/log", Ed25519PrivateKey.generate())
    foreign = sign_note(f"other.example/log\n1\n{base64.b64encode(bytes(32)).decode()}\n", stranger).to_text()
    assert witness.add_checkpoint(0, [], foreign)[0] == 404
    impostor = Ed25519Signer(led.log.origin, Ed25519PrivateKey.generate())
    assert witness.add_checkpoint(size1, [], sign_note(parse_note(cp2).text, impostor).to_text())[0] == 403
    # malformed bodies: 400 with a message that says what is wrong
    for body_bytes, words in ((b"nonsense", "blank line"), (f"old 01\n\n{cp2}".encode(), "leading zeros"),
                              (f"old {size1}\n!!!\n\n{cp2}".encode(), "line 2 is not a base64 hash"),
                              (f"old {size1}\n\nnot a checkpoint\n".encode(), "malformed"),
                              (b"old 1\n\n\xff\xfe", "not UTF-8"),
                              (f"old {size1}\n{'AAAA' * 11}\n\n{cp2}".encode(), "33-byte hash")):
        status, _, body = post(witness.url + "/add-checkpoint", body_bytes)
        assert status == 400 and words in body, (body_bytes[:30], status, body)
    too_many = "".join(base64.b64encode(bytes(32)).decode() + "\n" for _ in range(64))
    status, _, body = post(witness.url + "/add-checkpoint", f"old {size1}\n{too_many}\n{cp2}".encode())
    assert status == 400 and "more than 63" in body
    status, _, body = post(witness.url + "/add-checkpoint", b"x" * ((1 << 20) + 1))
    assert status == 413, body
    assert post(witness.url + "/other", b"old 0\n\n")[0] == 404
    # and after all that, the honest push still goes through
    assert witness.add_checkpoint(size1, proof, cp2)[0] == 200
    assert held(witness, led.log.origin) == cp2


def test_a_body_refused_unread_is_answered_not_reset(witness: WitnessProcess) -> None:
    """A body too large (or sent where nothing is served) is refused before it is read; the client, still
    sending it, must read the answer, not a reset connection (the witness reads and drops the rest first)."""
    for _ in range(10):
        status, _, body = post(witness.url + "/add-checkpoint", b"x" * (12 << 20))
        assert status == 413 and "at most 1048576" in body, body
        assert post(witness.url + "/elsewhere", b"y" * (12 << 20))[0] == 404


def test_concurrent_pushes_for_one_log_are_serialised(led: Ledger, witness: WitnessProcess) -> None:
    """Eight checkpoints pushed at once from the same old size: one wins, the others learn its size."""
    size0, cp0 = grow(led)
    assert witness.add_checkpoint(0, [], cp0)[0] == 200
    sizes = [grow(led)[0] for _ in range(8)]
    answers: dict[int, tuple[int, str, str]] = {}

    def push(size: int) -> None:
        answers[size] = witness.add_checkpoint(size0, led.log.consistency_proof(size0, size),
                                               led.log.checkpoint_at(size))

    threads = [threading.Thread(target=push, args=(s,)) for s in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [s for s, a in answers.items() if a[0] == 200]
    assert len(won) == 1, answers
    assert all(a == (409, "text/x.tlog.size", f"{won[0]}\n") for s, a in answers.items() if s != won[0])
    assert parse_checkpoint(held(witness, led.log.origin)).checkpoint.size == won[0]


def test_the_state_survives_sigkill_at_any_moment(led: Ledger, tmp_path: Path) -> None:
    """A push loop, the witness killed with SIGKILL at random moments and started again: what it holds is
    always one of the checkpoints it was sent, never older than the last it answered, never corrupt."""
    sizes = [grow(led)[0] for _ in range(60)]
    notes = {s: led.log.checkpoint_at(s) for s in sizes}
    w = WitnessProcess(tmp_path / "witness", [led.verifier_key])
    rng = random.Random(7)
    sent: set[str] = set()
    acknowledged = 0
    believed = 0  # the size the pusher thinks the witness holds
    k = 0
    for _round in range(8):
        w.start()
        deadline = time.monotonic() + rng.uniform(0.02, 0.25)
        killer = threading.Timer(max(0.0, deadline - time.monotonic()), w.proc.kill)  # type: ignore[union-attr]
        killer.start()
        while True:
            k = min(k + 1, len(sizes) - 1)
            size = sizes[k]
            proof = led.log.consistency_proof(believed, size) if 0 < believed < size else []
            sent.add(notes[size])
            try:
                status, kind, body = w.add_checkpoint(believed, proof, notes[size])
            except (OSError, http.client.HTTPException):  # killed mid-request, or mid-answer
                break
            if status == 200:
                acknowledged = believed = size
            elif status == 409 and kind == "text/x.tlog.size":
                believed = int(body)
            else:
                raise AssertionError((status, body))
        killer.join()
        w.proc.wait(10)  # type: ignore[union-attr]
        state = held(w, led.log.origin)
        assert state in sent, "the state is one of the checkpoints sent, whole"
        kept = parse_checkpoint(state).checkpoint.size
        assert kept >= acknowledged, "an answered checkpoint is durable"
    w.start()  # and it starts on what it kept, removing what a cut-short write left behind
    assert not list(w.state.glob(".*tmp*"))
    assert w.add_checkpoint(0, [], notes[sizes[-1]])[2] == f"{parse_checkpoint(held(w, led.log.origin)).checkpoint.size}\n"
    w.stop()
    assert acknowledged > sizes[0], "the loop got somewhere"
