"""C2SP signed notes, verifier keys, tlog-cosignature/v1 and checkpoint bodies (verifier.note, verifier.checkpoint).

Checked against the specs (c2sp.org/signed-note, c2sp.org/tlog-cosignature, c2sp.org/tlog-checkpoint)
with values computed independently here (hashlib, `cryptography`), against the example of
golang.org/x/mod/sumdb/note, and against a real cosigned checkpoint of a public CT log.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from verifier.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from verifier.errors import FormatError, SignatureError, VerificationError
from verifier.note import (
    MAX_NOTE_SIZE,
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    Note,
    NoteSignature,
    key_id,
    parse_note,
    sign_note,
    verify_note,
)

DASH = "\u2014"
TEXT = "example.org/log\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\n"


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def _independent_key_id(name: str, sig_type: int, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\x0a" + bytes([sig_type]) + pub).digest()[:4]


def _vkey(name: str, type_and_key: bytes) -> str:
    """A verifier key string with a correctly derived key ID, so a refusal is for the rule under test."""
    kid = hashlib.sha256(name.encode() + b"\n" + type_and_key).digest()[:4]
    return f"{name}+{kid.hex()}+{base64.b64encode(type_and_key).decode()}"


LOG = Ed25519Signer("example.org/log", _key(1))
OTHER_A = Ed25519Signer("example.org/a", _key(2))
OTHER_B = Ed25519Signer("example.org/b", _key(3))
WITNESS = CosignatureSigner("witness.example/w1", _key(4))
WITNESS_2 = CosignatureSigner("witness.example/w2", _key(5))


# ---- key IDs and verifier keys ---------------------------------------------------------------------


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    """key ID = SHA-256(name || 0x0A || type || pubkey)[:4], for Ed25519 (0x01) and cosignature (0x04) keys."""
    pub = _pub(_key(1))
    assert key_id("example.org/log", 0x01, pub) == _independent_key_id("example.org/log", 0x01, pub)
    assert LOG.verifier.key_id == _independent_key_id("example.org/log", 0x01, pub)
    w_pub = _pub(_key(4))
    assert WITNESS.verifier.key_id == _independent_key_id("witness.example/w1", 0x04, w_pub)
    assert WITNESS.verifier.key_id != _independent_key_id("witness.example/w1", 0x01, w_pub)


def test_verifier_key_string_round_trips() -> None:
    """to_string writes name+hex(keyID)+base64(0x01||pubkey), and from_string reads it back."""
    s = LOG.verifier.to_string()
    name, kid, b64 = s.split("+", 2)
    assert name == "example.org/log"
    assert bytes.fromhex(kid) == LOG.verifier.key_id
    assert base64.b64decode(b64) == b"\x01" + _pub(_key(1))
    assert Ed25519Verifier.from_string(s) == LOG.verifier
    assert Ed25519Verifier.from_string(s + "\n") == LOG.verifier


# golang.org/x/mod/sumdb/note: the example key, signer key and signed note of the package docs.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_B64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = GO_TEXT + "\n" + DASH + (
    " PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_sumdb_note_example_signs_and_verifies_byte_for_byte() -> None:
    """The example of golang.org/x/mod/sumdb/note: same key, same note bytes (Ed25519 is deterministic)."""
    v = Ed25519Verifier.from_string(GO_VKEY)
    assert v.to_string() == GO_VKEY
    signer = Ed25519Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_SKEY_B64)[1:]))
    assert signer.verifier == v
    assert sign_note(GO_TEXT, signer).to_text() == GO_NOTE
    assert verify_note(parse_note(GO_NOTE.encode()), [v]) == [v]
    with pytest.raises(SignatureError):
        verify_note(parse_note(GO_NOTE.replace("cryptography", "cryptographY")), [v])


def test_verifier_key_whose_base64_contains_plus_parses() -> None:
    """Base64 may contain '+': a key is split at its first two '+' only (about half of all keys have one).

    `TEST+7997405c+AQcC+...` is a type 0x01 key of transparency-dev/formats' tests.
    """
    plus_key = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    v = Ed25519Verifier.from_string(plus_key)
    assert v.name == "TEST" and v.key_id.hex() == "7997405c"
    assert v.to_string() == plus_key


@given(st.binary(min_size=32, max_size=32))
def test_from_string_reads_every_key_to_string_writes(seed: bytes) -> None:
    """For any Ed25519 key, from_string(to_string(v)) == v: a log's published key always parses."""
    v = Ed25519Signer("example.org/log", Ed25519PrivateKey.from_private_bytes(seed)).verifier
    assert Ed25519Verifier.from_string(v.to_string()) == v


PUB = _pub(_key(9))


@pytest.mark.parametrize(
    ("vkey", "word"),
    [
        ("example.org/log+" + _independent_key_id("example.org/log", 1, PUB).hex()[:7] + "+"
         + base64.b64encode(b"\x01" + PUB).decode(), "key id"),  # 7-digit key ID
        ("example.org/log+00000000+" + base64.b64encode(b"\x01" + PUB).decode(), "key id"),  # wrong key ID
        (_vkey("example.org/log", b"\x02" + PUB), "ed25519"),  # wrong type byte
        (_vkey("example.org/log", b"\x04" + PUB), "ed25519"),  # a cosignature key is not a log key
        (_vkey("example.org/log", b"\x01" + PUB[:31]), "ed25519"),  # short key
        (_vkey("example.org/log", b"\x01" + PUB + b"\x00"), "ed25519"),  # long key
        (_vkey("example.org/log", b"\x01" + PUB)[:-4] + "!!!!", "base64"),  # bad base64
        ("example.org/log+zzzzzzzz+" + base64.b64encode(b"\x01" + PUB).decode(), "key id"),  # key ID not hex
        (_vkey("example.org log", b"\x01" + PUB), "space"),  # name with a space
        (_vkey("example.org\u2003log", b"\x01" + PUB), "space"),  # name with a Unicode space
        (_vkey("", b"\x01" + PUB), "empty"),  # empty name
        ("example.org/log", "name+hexkeyid+base64key"),  # no '+'
        ("example.org/log+" + _independent_key_id("example.org/log", 1, PUB).hex(), "name+hexkeyid+base64key"),
    ],
)
def test_bad_verifier_key_strings_are_refused(vkey: str, word: str) -> None:
    """Malformed or inconsistent verifier keys raise FormatError naming the problem."""
    with pytest.raises(FormatError) as info:
        Ed25519Verifier.from_string(vkey)
    assert word.lower() in str(info.value).lower()


def test_key_names_with_space_or_plus_are_refused_by_signers() -> None:
    """Key names must be non-empty with no Unicode space and no '+' (signed-note §Format)."""
    for name in ("a b", "a+b", "", "a\tb", "a\u00a0b"):
        with pytest.raises(FormatError):
            Ed25519Signer(name, _key(1))
        with pytest.raises(FormatError):
            CosignatureSigner(name, _key(1))


# ---- signing and verifying -------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    """sign_note -> text -> parse_note -> verify_note returns the signer; the signature is plain Ed25519."""
    note = sign_note(TEXT, LOG)
    text = note.to_text()
    assert text == TEXT + "\n" + DASH + " example.org/log " + base64.b64encode(
        LOG.verifier.key_id + note.signatures[0].signature).decode() + "\n"
    parsed = parse_note(text.encode())
    assert parsed == note
    assert verify_note(parsed, [LOG.verifier]) == [LOG.verifier]
    _key(1).public_key().verify(note.signatures[0].signature, TEXT.encode())


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF), min_size=1, max_size=200))
def test_any_text_lines_sign_and_verify(body: str) -> None:
    """Any UTF-8 text without control characters, ending in a newline, signs and verifies."""
    text = body.replace("\n", "") + "\n"
    note = sign_note(text, LOG)
    assert verify_note(parse_note(note.to_text().encode()), [LOG.verifier]) == [LOG.verifier]


def _multi_signed() -> Note:
    note = sign_note(TEXT, LOG, OTHER_A, OTHER_B)
    return note.with_signature(WITNESS.sign(TEXT, 1_700_000_000))


def test_several_signatures_verify_exactly_the_known_keys() -> None:
    """verify_note returns exactly the known keys that signed, in note order; unknown signers are ignored."""
    note = parse_note(_multi_signed().to_text())
    assert [s.name for s in note.signatures] == ["example.org/log", "example.org/a", "example.org/b",
                                                 "witness.example/w1"]
    known = [WITNESS.verifier, LOG.verifier, OTHER_A.verifier]
    assert verify_note(note, known) == [LOG.verifier, OTHER_A.verifier, WITNESS.verifier]
    assert verify_note(note, [OTHER_B.verifier]) == [OTHER_B.verifier]
    assert verify_note(note, [WITNESS.verifier, WITNESS_2.verifier]) == [WITNESS.verifier]


def test_unknown_keys_sharing_a_name_or_an_id_are_ignored() -> None:
    """Only (name, key ID) together select a key: a garbage signature from a near-miss key is ignored."""
    garbage = bytes(64)
    same_name = NoteSignature("example.org/log", b"\x00\x00\x00\x00", garbage)
    same_id = NoteSignature("example.org/other", LOG.verifier.key_id, garbage)
    stranger = NoteSignature("stranger.example", b"\x01\x02\x03\x04", garbage)
    note = sign_note(TEXT, LOG)
    note = Note(note.text, (same_name, same_id, stranger) + note.signatures)
    assert verify_note(parse_note(note.to_text()), [LOG.verifier]) == [LOG.verifier]


def _flip(sig: NoteSignature, byte: int = 10) -> NoteSignature:
    raw = bytearray(sig.signature)
    raw[byte] ^= 0x01
    return NoteSignature(sig.name, sig.key_id, bytes(raw))


def test_a_known_key_with_a_bad_signature_rejects_the_whole_note() -> None:
    """One failing signature by a known key rejects the note, even when another known key verified."""
    note = _multi_signed()
    bad_a = Note(note.text, tuple(_flip(s) if s.name == "example.org/a" else s for s in note.signatures))
    with pytest.raises(SignatureError, match="example.org/a"):
        verify_note(parse_note(bad_a.to_text()), [LOG.verifier, OTHER_A.verifier])
    # The same bad signature is harmless to a verifier that does not know example.org/a.
    assert verify_note(parse_note(bad_a.to_text()), [LOG.verifier]) == [LOG.verifier]
    bad_w = Note(note.text, tuple(_flip(s, 20) if s.name == "witness.example/w1" else s for s in note.signatures))
    with pytest.raises(SignatureError, match="witness.example/w1"):
        verify_note(bad_w, [LOG.verifier, WITNESS.verifier])


def test_a_note_without_a_trusted_signature_is_rejected() -> None:
    """No signature from a known key: SignatureError naming the trusted keys."""
    note = sign_note(TEXT, OTHER_A)
    with pytest.raises(SignatureError, match="example.org/log"):
        verify_note(note, [LOG.verifier])
    with pytest.raises(SignatureError):
        verify_note(note, [])


def test_a_changed_text_fails_every_signature() -> None:
    """Changing one character of the text makes the known signature fail."""
    text = _multi_signed().to_text().replace("\n42\n", "\n43\n")
    with pytest.raises(SignatureError):
        verify_note(parse_note(text), [LOG.verifier])


def test_sixteen_signatures_are_accepted() -> None:
    """Verifiers must accept at least 16 signatures (signed-note §Format)."""
    signers = [Ed25519Signer(f"example.org/s{i}", _key(20 + i)) for i in range(16)]
    note = parse_note(sign_note(TEXT, *signers).to_text())
    assert verify_note(note, [s.verifier for s in signers]) == [s.verifier for s in signers]


# ---- tlog-cosignature/v1 ---------------------------------------------------------------------------


def test_cosignature_covers_header_time_and_body() -> None:
    """A cosignature is u64 BE time || Ed25519 over "cosignature/v1\\ntime <t>\\n" + body, checked independently."""
    t = 1_679_315_147
    sig = WITNESS.sign(TEXT, t)
    assert sig.key_id == _independent_key_id("witness.example/w1", 0x04, _pub(_key(4)))
    assert len(sig.signature) == 8 + 64
    assert sig.signature[:8] == struct.pack(">Q", t)
    msg = f"cosignature/v1\ntime {t}\n".encode() + TEXT.encode()
    Ed25519PublicKey.from_public_bytes(_pub(_key(4))).verify(sig.signature[8:], msg)
    with pytest.raises(InvalidSignature):  # not a plain signature over the body
        Ed25519PublicKey.from_public_bytes(_pub(_key(4))).verify(sig.signature[8:], TEXT.encode())
    assert WITNESS.verifier.verify(TEXT, sig.signature)


def test_cosignature_with_a_changed_time_or_length_fails() -> None:
    """The time is signed: changing the 8-byte prefix, or truncating, fails verification."""
    sig = WITNESS.sign(TEXT, 1_700_000_000).signature
    assert not WITNESS.verifier.verify(TEXT, struct.pack(">Q", 1_700_000_001) + sig[8:])
    assert not WITNESS.verifier.verify(TEXT, sig[:-1])
    assert not WITNESS.verifier.verify(TEXT, sig[8:])


def test_cosignature_time_above_2_63_is_refused() -> None:
    """tlog-cosignature: the timestamp MUST NOT exceed 2^63 - 1; a larger one does not verify."""
    key = _key(4)
    t = 1 << 63
    msg = f"cosignature/v1\ntime {t}\n".encode() + TEXT.encode()
    sig = struct.pack(">Q", t) + key.sign(msg)
    assert not WITNESS.verifier.verify(TEXT, sig)


# A checkpoint of the public arche2025h1 staging CT log with five cosignatures, one by remora.n621.de
# (type 0x04), and a signature of the log's Ed25519 key (type 0x01) beside an RFC 6962 one (type 0x05).
REAL_CHECKPOINT = (
    "arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n"
    f"{DASH} arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbl"
    "lzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n"
    f"{DASH} arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75Mdh"
    "L1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n"
    f"{DASH} transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAw"
    "VkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n"
    f"{DASH} witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5h"
    "NI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n"
    f"{DASH} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/"
    "zZ0WBxtqB0DrAWfBw==\n"
    f"{DASH} witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgK"
    "i7lI7cUiOvKFYe/TmN9DAg==\n"
)
REAL_LOG_VKEY = "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
REAL_WITNESS_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"


def _split_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    name, kid, b64 = vkey.split("+", 2)
    return name, bytes.fromhex(kid), base64.b64decode(b64)


def test_real_cosigned_checkpoint_verifies() -> None:
    """A real checkpoint verifies with its log key and a quorum of one real cosignature; other types are ignored."""
    name, kid, raw = _split_vkey(REAL_LOG_VKEY)
    log = Ed25519Verifier(name, kid, raw[1:])
    assert key_id(name, 0x01, raw[1:]) == kid
    wname, wkid, wraw = _split_vkey(REAL_WITNESS_VKEY)
    assert wraw[0] == 0x04
    witness = CosignatureVerifier.from_public_key(wname, wraw[1:])
    assert witness.key_id == wkid
    signed = verify_checkpoint(REAL_CHECKPOINT, log, witnesses=[witness], witness_quorum=1)
    assert signed.checkpoint.size == 1432088532
    assert signed.checkpoint.origin == name
    with pytest.raises(SignatureError):
        verify_checkpoint(REAL_CHECKPOINT, log, witnesses=[witness], witness_quorum=2)


# ---- malformed notes -------------------------------------------------------------------------------

_SIG = f"{DASH} example.org/log " + base64.b64encode(bytes(68)).decode() + "\n"


@pytest.mark.parametrize(
    ("data", "word"),
    [
        ("just text\n" + _SIG, "blank line"),
        (TEXT + "\n", "signature"),  # a blank line and no signatures
        (TEXT + "\n\n", "signature"),
        (TEXT + "\n" + _SIG[:-1], "newline"),  # missing trailing newline
        ("a\tb\n\n" + _SIG, "control"),
        ("a\rb\n\n" + _SIG, "control"),
        ("a\x00\n\n" + _SIG, "control"),
        ("a\n\n" + _SIG.replace("\n", "\r\n"), "control"),
        (b"caf\xe9\n\n" + _SIG.encode(), "utf-8"),
        (b"\xff\xfe\n\n" + _SIG.encode(), "utf-8"),
        (TEXT + "\n" + _SIG.replace(DASH, "-"), "em dash"),
        (TEXT + "\n" + _SIG.replace(DASH + " ", DASH), "em dash"),
        (TEXT + "\n" + _SIG.replace(DASH, "\u2013"), "em dash"),  # an en dash
        (TEXT + "\n" + f"{DASH} " + base64.b64encode(bytes(68)).decode() + "\n", "key name"),
        (TEXT + "\n" + f"{DASH}  " + base64.b64encode(bytes(68)).decode() + "\n", "key name"),
        (TEXT + "\n" + f"{DASH} a+b " + base64.b64encode(bytes(68)).decode() + "\n", "'+'"),
        (TEXT + "\n" + f"{DASH} example.org/log !!notbase64!!\n", "base64"),
        (TEXT + "\n" + f"{DASH} example.org/log AAAA\n", "short"),
        ("\n\n" + _SIG, "empty"),
        ("x" * MAX_NOTE_SIZE + "\n\n" + _SIG, "more than"),
        ((TEXT + "\n" + _SIG * 101).encode(), "signatures"),
    ],
)
def test_malformed_notes_are_refused_with_a_reason(data: str | bytes, word: str) -> None:
    """Anything signed-note forbids is a FormatError whose message names the problem."""
    with pytest.raises(FormatError) as info:
        parse_note(data)
    assert word.lower() in str(info.value).lower()


def test_oversized_bytes_are_refused_before_decoding() -> None:
    """A note over MAX_NOTE_SIZE bytes is refused by size, whatever its content."""
    with pytest.raises(FormatError, match="more than"):
        parse_note(b"\xff" * (MAX_NOTE_SIZE + 1))


def test_a_str_with_a_lone_surrogate_is_a_format_error() -> None:
    """A Python str that is not valid Unicode (lone surrogate) is refused as FormatError, not a crash."""
    with pytest.raises(FormatError):
        parse_note("a\ud800\n\n" + _SIG)


def test_text_may_contain_blank_lines_and_signatures_follow_the_last() -> None:
    """The text ends at the last blank line; earlier blank lines belong to the text (signed-note §Format)."""
    text = "first\n\nsecond\n"
    note = parse_note(sign_note(text, LOG).to_text())
    assert note.text == text
    assert verify_note(note, [LOG.verifier]) == [LOG.verifier]


# ---- checkpoint bodies -----------------------------------------------------------------------------

ROOT_B64 = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("body", "word"),
    [
        (f"o\n007\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n00\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n-1\n{ROOT_B64}\n", "decimal"),
        (f"o\n+1\n{ROOT_B64}\n", "decimal"),
        (f"o\n 1\n{ROOT_B64}\n", "decimal"),
        (f"o\n\u0661\n{ROOT_B64}\n", "decimal"),  # ARABIC-INDIC DIGIT ONE
        (f"o\n{1 << 63}\n{ROOT_B64}\n", "too large"),
        (f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n", "31 bytes"),
        (f"o\n1\n{base64.b64encode(bytes(33)).decode()}\n", "33 bytes"),
        ("o\n1\n\n", "0 bytes"),
        ("o\n1\nnot base64!\n", "base64"),
        (f"\n1\n{ROOT_B64}\n", "origin"),
        ("o\n1\n", "origin, a size and a root"),
        (f"o\n1\n{ROOT_B64}", "newline"),
        (f"o\n1\n{ROOT_B64}\next\n\n", "extension"),
    ],
)
def test_bad_checkpoint_bodies_are_refused(body: str, word: str) -> None:
    """Checkpoint bodies are strict: decimal size without leading zeros, a 32-byte root, a non-empty origin."""
    with pytest.raises(FormatError) as info:
        Checkpoint.from_body(body)
    assert word.lower() in str(info.value).lower()


def test_checkpoint_body_edge_cases_that_parse() -> None:
    """Size 0, the largest size, and extension lines parse and format back to the same body."""
    for body in (f"o\n0\n{ROOT_B64}\n", f"o\n{(1 << 63) - 1}\n{ROOT_B64}\n",
                 f"example.org/log\n5\n{ROOT_B64}\nfirst extension\n— second, with a dash\n"):
        cp = Checkpoint.from_body(body)
        assert cp.body() == body
    cp = Checkpoint.from_body(f"o\n5\n{ROOT_B64}\nx\ny\n")
    assert (cp.origin, cp.size, cp.root, cp.extensions) == ("o", 5, bytes(range(32)), ("x", "y"))


def _checkpoint_note(origin: str = "example.org/log", size: int = 42, *, signer: Ed25519Signer = LOG,
                     witnesses: tuple[CosignatureSigner, ...] = ()) -> str:
    body = Checkpoint(origin, size, bytes(range(32))).body()
    note = sign_note(body, signer)
    for i, w in enumerate(witnesses):
        note = note.with_signature(w.sign(body, 1_700_000_000 + i))
    return note.to_text()


def test_verify_checkpoint_checks_origin_and_log_signature() -> None:
    """The origin must be the log's (its key name by default); the log key must have signed."""
    signed = verify_checkpoint(_checkpoint_note(), LOG.verifier)
    assert signed.checkpoint.size == 42
    assert parse_checkpoint(signed.to_text()) == signed
    with pytest.raises(FormatError, match="origin"):
        verify_checkpoint(_checkpoint_note(origin="example.org/other"), LOG.verifier)
    with pytest.raises(FormatError, match="origin"):
        verify_checkpoint(_checkpoint_note(), LOG.verifier, origin="example.org/elsewhere")
    forged = Ed25519Signer("example.org/log", _key(99))  # the log's name, another key
    with pytest.raises(SignatureError):
        verify_checkpoint(_checkpoint_note(signer=forged), LOG.verifier)
    # A log whose origin differs from its key name says so explicitly.
    other = Ed25519Signer("key.example/k", _key(7))
    assert verify_checkpoint(_checkpoint_note(signer=other), other.verifier, origin="example.org/log")


def test_verify_checkpoint_witness_quorum() -> None:
    """The quorum counts distinct valid cosignatures of the given witnesses; too few is a SignatureError."""
    text = _checkpoint_note(witnesses=(WITNESS, WITNESS_2))
    ws = [WITNESS.verifier, WITNESS_2.verifier]
    verify_checkpoint(text, LOG.verifier, witnesses=ws, witness_quorum=2)
    verify_checkpoint(text, LOG.verifier, witnesses=ws[:1], witness_quorum=1)
    with pytest.raises(SignatureError, match="1 valid witness"):
        verify_checkpoint(text, LOG.verifier, witnesses=ws[:1], witness_quorum=2)
    with pytest.raises(SignatureError):
        verify_checkpoint(_checkpoint_note(), LOG.verifier, witnesses=ws, witness_quorum=1)
    with pytest.raises(SignatureError):
        verify_checkpoint(text, LOG.verifier, witnesses=None, witness_quorum=1)
    # A checkpoint signed by the log alone meets no witness quorum.
    with pytest.raises(SignatureError):
        verify_checkpoint(_checkpoint_note(), LOG.verifier, witnesses=[WITNESS.verifier], witness_quorum=1)


def test_witness_quorum_counts_a_witness_once_and_fails_on_a_bad_cosignature() -> None:
    """Two cosignature lines by one witness count once; a bad cosignature by a known witness fails the quorum."""
    body = Checkpoint("example.org/log", 42, bytes(range(32))).body()
    log_sig = LOG.sign(body)
    twice = Note(body, (log_sig, WITNESS.sign(body, 1), WITNESS.sign(body, 2))).to_text()
    verify_checkpoint(twice, LOG.verifier, witnesses=[WITNESS.verifier], witness_quorum=1)
    with pytest.raises(SignatureError):
        verify_checkpoint(twice, LOG.verifier, witnesses=[WITNESS.verifier, WITNESS_2.verifier], witness_quorum=2)
    bad = Note(body, (log_sig, _flip(WITNESS.sign(body, 1), 30), WITNESS_2.sign(body, 1))).to_text()
    with pytest.raises(SignatureError):
        verify_checkpoint(bad, LOG.verifier, witnesses=[WITNESS.verifier, WITNESS_2.verifier], witness_quorum=1)


def test_every_refusal_is_a_verification_error() -> None:
    """FormatError and SignatureError are VerificationErrors: callers can catch one base."""
    assert issubclass(FormatError, VerificationError) and issubclass(SignatureError, VerificationError)
