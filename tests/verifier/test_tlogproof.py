"""C2SP tlog-proof@v1 end to end: proofs the ledger writes verify offline, and every tampering is refused.

A real ledger in a temp dir holds a few envelopes; for every entry and every published tree size,
`Ledger.prove` must give a proof whose text round-trips and that `verify_tlog_proof` accepts with
nothing but the entry bytes and the log's verifier key. Then the proof text is mutated one named way
at a time, and each mutation must raise VerificationError.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.envelopes.core import Ledger
from ledger.errors import NotFoundError
from tests.envelopes.test_seal_registry import physical_seal
from tests.naive_merkle import mth
from verifier.checkpoint import Checkpoint
from verifier.errors import FormatError, SignatureError, VerificationError
from verifier.note import CosignatureSigner, Ed25519Signer, Ed25519Verifier, sign_note
from verifier.tlogproof import HEADER, TlogProof, parse_tlog_proof, verify_tlog_proof

H1, H2, H3 = "a1" * 32, "b2" * 32, "c3" * 32


def _clock() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def ev(type: str, envelope: str, **fields: object) -> dict[str, object]:
    return {"type": type, "envelope": envelope, **fields}


def _requests(seal: str) -> list[list[dict[str, object]]]:
    """Requests of events, each one append (one published checkpoint), following ledger/events.py SCHEMA."""
    return [
        [ev("envelope.created", "E1", title="Lease"),
         ev("document.added", "E1", document="d1", sha256=H1, size=1234, name="lease.pdf"),
         ev("party.added", "E1", party="p1", role="signer", name="Alice", order=1),
         ev("party.added", "E1", party="p2", role="signer", name="Bob", order=2),
         ev("party.added", "E1", party="cc", role="cc", name="Carol")],
        [ev("envelope.sent", "E1")],
        [ev("party.viewed", "E1", party="p1"),
         ev("party.authenticated", "E1", party="p1", method="sms"),
         ev("party.signed", "E1", party="p1", channel="web", document="d1", signed_sha256=H2),
         ev("envelope.created", "E2", title="Offer letter"),
         ev("envelope.withdrawn", "E2", reason="superseded")],
        [ev("party.authenticated", "E1", party="p2", method="face"),
         ev("party.signed", "E1", party="p2", channel="app", document="d1", signed_sha256=H3, seal=H1),
         ev("envelope.completed", "E1"),
         ev("copy.printed", "E1", document="d1"),
         ev("envelope.created", "E3", title="NDA"),
         ev("document.added", "E3", document="nda", sha256=H2, size=10, name="nda.pdf"),
         ev("party.added", "E3", party="x", role="signer", name="Xavier"),
         ev("envelope.sent", "E3"),
         ev("party.declined", "E3", party="x", reason="no")],
        [ev("evidence.exported", "E1", by="legal"),
         ev("seal.used", "E1", party="p1", seal=seal, kind="physical")],
    ]


@dataclass
class Fixture:
    ledger: Ledger
    key: Ed25519Verifier
    sizes: list[int]  # every published tree size, 0 first
    entries: list[bytes]


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    led = Ledger.init(tmp_path_factory.mktemp("ledger") / "home", clock=_clock)
    sizes = [led.log.size]
    for req in _requests(physical_seal(led, "tenant-a")):
        acks = led.append("tenant-a", req)
        assert len(acks) == len(req)
        sizes.append(led.log.size)
    entries = [led.log.entry(i) for i in range(led.log.size)]
    # What an offline verifier holds: the published verifier key string.
    key = Ed25519Verifier.from_string(led.verifier_key)
    assert key == led.log.signer.verifier
    yield Fixture(led, key, sizes, entries)
    led.close()


def _pairs(fx: Fixture) -> Iterator[tuple[int, int]]:
    for size in fx.sizes:
        for i in range(size):
            yield i, size


def test_the_fixture_covers_several_checkpoints(fx: Fixture) -> None:
    """The log holds several envelopes over several published checkpoints."""
    assert fx.sizes == [0, 5, 6, 11, 20, 22]
    assert len(fx.entries) == 22


def test_checkpoint_roots_match_the_naive_reference(fx: Fixture) -> None:
    """Every published checkpoint's root is RFC 6962 MTH of the entries up to its size."""
    for size in fx.sizes[1:]:
        cp = fx.ledger.prove(0, size).checkpoint.checkpoint
        assert (cp.size, cp.root) == (size, mth(fx.entries[:size]))


def test_every_proof_round_trips_and_verifies(fx: Fixture) -> None:
    """For every entry and every published size: to_text/parse round-trip, and the proof verifies offline."""
    n = 0
    for i, size in _pairs(fx):
        proof = fx.ledger.prove(i, size)
        text = proof.to_text()
        assert text.startswith(HEADER + "\n")
        assert parse_tlog_proof(text) == proof
        assert parse_tlog_proof(text).to_text() == text
        assert parse_tlog_proof(text.encode()) == proof
        got = verify_tlog_proof(text, fx.entries[i], fx.key)
        assert (got.index, got.checkpoint.checkpoint.size) == (i, size)
        verify_tlog_proof(text.encode(), fx.entries[i], fx.key)
        n += 1
    assert n == sum(fx.sizes)


def test_default_proof_uses_the_latest_checkpoint(fx: Fixture) -> None:
    """prove(i) without a size proves against the latest checkpoint, verbatim."""
    proof = fx.ledger.prove(3)
    assert proof.checkpoint.to_text() == fx.ledger.log.latest_checkpoint
    assert proof == fx.ledger.prove(3, fx.ledger.log.size)


def test_prove_refuses_indexes_outside_the_tree(fx: Fixture) -> None:
    """No proof for an index at or past the size, or for a size never published."""
    for index, size in ((22, None), (5, 5), (-1, None)):
        with pytest.raises(NotFoundError):
            fx.ledger.prove(index, size)
    with pytest.raises(NotFoundError):
        fx.ledger.prove(0, 7)  # no checkpoint was published at size 7


def test_proof_with_extra_data_round_trips_and_verifies(fx: Fixture) -> None:
    """The optional `extra <base64>` line survives the round trip and does not disturb verification."""
    base = fx.ledger.prove(4, 11)
    proof = TlogProof(base.index, base.hashes, base.checkpoint, extra=b"\x00anchor ref\xff")
    text = proof.to_text()
    assert text.split("\n")[1] == "extra " + base64.b64encode(b"\x00anchor ref\xff").decode()
    assert parse_tlog_proof(text) == proof
    verify_tlog_proof(text, fx.entries[4], fx.key)


def test_single_entry_tree_has_an_empty_proof(tmp_path: Path) -> None:
    """A tree of size 1: no hashes, and the entry's leaf hash is the root."""
    led = Ledger.init(tmp_path / "one", clock=_clock)
    try:
        led.append("t", [ev("envelope.created", "E", title="only")])
        proof = led.prove(0)
        assert proof.hashes == ()
        verify_tlog_proof(proof.to_text(), led.log.entry(0), Ed25519Verifier.from_string(led.verifier_key))
    finally:
        led.close()


def test_witness_quorum_through_the_proof(fx: Fixture) -> None:
    """A proof whose checkpoint carries a witness cosignature meets a quorum of one; without it, it does not."""
    witness = CosignatureSigner("witness.example/w", Ed25519PrivateKey.from_private_bytes(b"w" * 32))
    proof = fx.ledger.prove(7)
    plain = proof.to_text()
    note = proof.checkpoint.note.with_signature(witness.sign(proof.checkpoint.note.text, 1_767_323_045))
    cosigned = plain.replace(proof.checkpoint.to_text(), note.to_text())
    verify_tlog_proof(cosigned, fx.entries[7], fx.key, witnesses=[witness.verifier], witness_quorum=1)
    verify_tlog_proof(cosigned, fx.entries[7], fx.key)
    with pytest.raises(SignatureError):
        verify_tlog_proof(plain, fx.entries[7], fx.key, witnesses=[witness.verifier], witness_quorum=1)


# ---- tampering ------------------------------------------------------------------------------------


def _flip_bit(b64: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def _head_and_note(text: str) -> tuple[list[str], str]:
    head, _, note = text.partition("\n\n")
    return head.split("\n"), note


def _join(head: list[str], note: str) -> str:
    return "\n".join(head) + "\n\n" + note


def test_changed_index_is_refused(fx: Fixture) -> None:
    """The index is bound to the proof's path: any other index, in or out of the tree, fails."""
    for i, size in _pairs(fx):
        text = fx.ledger.prove(i, size).to_text()
        for j in {i - 1, i + 1, size, size + 100, 0, size - 1} - {i}:
            if j < 0:
                continue
            bad = text.replace(f"\nindex {i}\n", f"\nindex {j}\n", 1)
            with pytest.raises(VerificationError):
                verify_tlog_proof(bad, fx.entries[i], fx.key)


def test_flipped_hash_bit_is_refused(fx: Fixture) -> None:
    """Flipping any one bit of any proof hash fails verification."""
    for i, size in _pairs(fx):
        head, note = _head_and_note(fx.ledger.prove(i, size).to_text())
        for k in range(2, len(head)):
            for bit in (0, 7, 100, 255):
                bad = head[:k] + [_flip_bit(head[k], bit)] + head[k + 1 :]
                with pytest.raises(VerificationError):
                    verify_tlog_proof(_join(bad, note), fx.entries[i], fx.key)


def test_wrong_entry_is_refused(fx: Fixture) -> None:
    """The proof of entry i does not verify any other entry, nor entry i changed by one byte."""
    size = fx.sizes[-1]
    for i in range(size):
        text = fx.ledger.prove(i, size).to_text()
        for j in range(size):
            if j != i:
                with pytest.raises(VerificationError):
                    verify_tlog_proof(text, fx.entries[j], fx.key)
        changed = bytearray(fx.entries[i])
        changed[len(changed) // 2] ^= 0x20
        for bad in (bytes(changed), fx.entries[i] + b" ", fx.entries[i][:-1], b""):
            with pytest.raises(VerificationError):
                verify_tlog_proof(text, bad, fx.key)


def test_checkpoint_signed_by_another_key_is_refused(fx: Fixture, tmp_path: Path) -> None:
    """The same checkpoint body signed by another key of the log's name, or another log's checkpoint, fails."""
    proof = fx.ledger.prove(2)
    body = proof.checkpoint.note.text
    impostor = Ed25519Signer(fx.key.name, Ed25519PrivateKey.from_private_bytes(b"i" * 32))
    forged = proof.to_text().replace(proof.checkpoint.to_text(), sign_note(body, impostor).to_text())
    with pytest.raises(SignatureError):
        verify_tlog_proof(forged, fx.entries[2], fx.key)
    other = Ledger.init(tmp_path / "other", clock=_clock)
    try:
        for req in _requests(physical_seal(other, "tenant-a")):
            other.append("tenant-a", req)
        theirs = other.prove(2).to_text()
        with pytest.raises(VerificationError):
            verify_tlog_proof(theirs, fx.entries[2], fx.key)
        ours_with_their_checkpoint = proof.to_text().replace(proof.checkpoint.to_text(), other.log.latest_checkpoint)
        with pytest.raises(SignatureError):
            verify_tlog_proof(ours_with_their_checkpoint, fx.entries[2], fx.key)
    finally:
        other.close()


def test_older_checkpoint_swapped_in_is_refused(fx: Fixture) -> None:
    """A validly signed checkpoint of another size does not match the proof's path."""
    i = 1
    latest = fx.ledger.prove(i)
    for size in fx.sizes[1:-1]:
        older = fx.ledger.prove(i, size).checkpoint.to_text()
        bad = latest.to_text().replace(latest.checkpoint.to_text(), older)
        with pytest.raises(VerificationError):
            verify_tlog_proof(bad, fx.entries[i], fx.key)


def test_extra_or_missing_lines_are_refused(fx: Fixture) -> None:
    """An added hash, a removed hash, a junk line, or text after the checkpoint is refused."""
    i = 9
    text = fx.ledger.prove(i).to_text()
    head, note = _head_and_note(text)
    assert len(head) > 3
    some_hash = base64.b64encode(bytes(32)).decode()
    mutations = {
        "extra hash at the end": _join(head + [some_hash], note),
        "extra hash after the index": _join(head[:2] + [some_hash] + head[2:], note),
        "duplicated hash": _join(head + [head[-1]], note),
        "missing last hash": _join(head[:-1], note),
        "missing first hash": _join(head[:2] + head[3:], note),
        "junk line": _join(head + ["junk"], note),
        "empty line inside": _join(head[:2] + [""] + head[2:], note),
        "line after the checkpoint": text + "junk\n",
        "second signature block": text + "\n" + note,
        "trailing spaces on the index": text.replace(f"index {i}\n", f"index {i} \n"),
        "a 31-byte hash": _join(head + [base64.b64encode(bytes(31)).decode()], note),
        "CRLF line ends": text.replace("\n", "\r\n"),
    }
    for name, bad in mutations.items():
        with pytest.raises(VerificationError):
            verify_tlog_proof(bad, fx.entries[i], fx.key)
        assert name  # names the mutation in the traceback


@pytest.mark.parametrize(
    ("mutate", "word"),
    [
        (lambda t: t.split("\n", 1)[1], "c2sp.org/tlog-proof@v1"),  # missing header
        (lambda t: t.replace(HEADER, "c2sp.org/tlog-proof@v2", 1), "c2sp.org/tlog-proof@v1"),
        (lambda t: t.replace(HEADER, HEADER + " ", 1), "c2sp.org/tlog-proof@v1"),
        (lambda t: "\n" + t, "c2sp.org/tlog-proof@v1"),
        (lambda t: t.replace("index 9\n", "index 09\n"), "leading zeros"),
        (lambda t: t.replace("index 9\n", "index -9\n"), "decimal"),
        (lambda t: t.replace("index 9\n", "index\n"), "index"),
        (lambda t: t.replace("index 9\n", ""), "index"),
        (lambda t: t.replace("index 9\n", "extra !!\nindex 9\n"), "extra"),
        (lambda t: t.replace("\n\n", "\n"), "blank line"),
        (lambda t: t.replace("\n\n", "\n", 1), "base64"),  # the checkpoint read as proof hashes
    ],
)
def test_malformed_proofs_are_format_errors(fx: Fixture, mutate: Callable[[str], str], word: str) -> None:
    """Header, index and layout mistakes are FormatErrors whose message names the problem."""
    text = mutate(fx.ledger.prove(9).to_text())
    with pytest.raises(FormatError) as info:
        verify_tlog_proof(text, fx.entries[9], fx.key)
    assert word.lower() in str(info.value).lower()


def test_invalid_utf8_and_oversized_proofs_are_refused(fx: Fixture) -> None:
    """Bytes that are not UTF-8, or larger than the limit, are FormatErrors before any parsing."""
    text = fx.ledger.prove(0).to_text().encode()
    with pytest.raises(FormatError, match="UTF-8"):
        verify_tlog_proof(text.replace(b"index", b"ind\xffex"), fx.entries[0], fx.key)
    with pytest.raises(FormatError, match="more than"):
        verify_tlog_proof(text + b"A" * (1 << 17), fx.entries[0], fx.key)


def test_checkpoint_body_in_a_proof_is_strict(fx: Fixture) -> None:
    """A proof's checkpoint with another origin is refused even when correctly signed by the log's key."""
    proof = fx.ledger.prove(0)
    cp = proof.checkpoint.checkpoint
    renamed = Checkpoint("example.org/elsewhere", cp.size, cp.root).body()
    note = renamed + "\n" + fx.ledger.log.signer.sign(renamed).line()
    bad = proof.to_text().replace(proof.checkpoint.to_text(), note)
    with pytest.raises(FormatError, match="origin"):
        verify_tlog_proof(bad, fx.entries[0], fx.key)
