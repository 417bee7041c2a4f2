"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and tlog-cosignature/v1 witness keys.

A note is UTF-8 text ending in a newline, a blank line, then one or more lines
`— <key name> base64(keyID[4] || signature)`. The key ID of an Ed25519 key is
SHA-256(name || 0x0A || 0x01 || pubkey)[:4]; its verifier key string is
`name+hex(keyID)+base64(0x01 || pubkey)`. Witness cosignatures (c2sp.org/tlog-cosignature, type
0x04) sign `cosignature/v1\\ntime <t>\\n` followed by the checkpoint body, and carry the 8-byte
timestamp before the Ed25519 signature.

This module parses, signs and verifies; it does no I/O. Signatures from unknown keys are ignored
(signed-note §Signatures); a signature from a known key that fails to verify rejects the note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from verifier.errors import FormatError, SignatureError

MAX_NOTE_SIZE = 1 << 16
MAX_SIGNATURES = 100
SIG_ED25519 = 0x01
SIG_COSIGNATURE = 0x04
_DASH = "\u2014 "


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID of signed-note §Signatures."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise FormatError(f"key name {name!r} is empty or contains a space or '+'")


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class Note:
    """A parsed signed note: its text (with the final newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signature(self, sig: NoteSignature) -> Note:
        kept = tuple(s for s in self.signatures if (s.name, s.key_id) != (sig.name, sig.key_id))
        return Note(self.text, kept + (sig,))


def parse_note(data: bytes | str) -> Note:
    """Parse a signed note, refusing anything the spec forbids, with the reason."""
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_SIZE:
            raise FormatError(f"note is {len(data)} bytes, more than {MAX_NOTE_SIZE}")
        try:
            s = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"note is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    else:
        s = data
        try:
            encoded = s.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError("note is not valid UTF-8 (it holds a lone surrogate)") from None
        if len(encoded) > MAX_NOTE_SIZE:
            raise FormatError(f"note is more than {MAX_NOTE_SIZE} bytes")
    for c in s:
        if c < " " and c != "\n":
            raise FormatError(f"note contains the control character {c!r}")
    if not s.endswith("\n"):
        raise FormatError("note does not end with a newline")
    split = s.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line between its text and its signatures")
    text, sig_block = s[: split + 1], s[split + 2 :]
    if not text.strip("\n"):
        raise FormatError("note text is empty")
    sigs: list[NoteSignature] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise FormatError(f"signature line {line[:40]!r} does not start with an em dash and a space")
        name, sep, b64 = line[len(_DASH) :].rpartition(" ")
        if not sep:
            raise FormatError(f"signature line {line[:40]!r} has no key name")
        _check_name(name)
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"signature of {name!r} is not valid base64") from None
        if len(raw) < 5:
            raise FormatError(f"signature of {name!r} is too short")
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    if not sigs:
        raise FormatError("note has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise FormatError(f"note has {len(sigs)} signatures, more than {MAX_SIGNATURES}")
    return Note(text, tuple(sigs))


def _parse_vkey(vkey: str, sig_type: int, what: str) -> tuple[str, bytes, bytes]:
    parts = vkey.strip().split("+", 2)  # base64 may itself hold '+'; a name may not
    if len(parts) != 3:
        raise FormatError("verifier key must be name+hexkeyid+base64key")
    name, hexid, b64 = parts
    _check_name(name)
    try:
        kid = bytes.fromhex(hexid)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise FormatError("verifier key has a bad key ID or base64 key") from None
    if len(kid) != 4 or len(raw) != 33 or raw[0] != sig_type:
        raise FormatError(f"verifier key is not {what}")
    if key_id(name, sig_type, raw[1:]) != kid:
        raise FormatError("verifier key ID does not match its name and public key")
    return name, kid, raw[1:]


def _vkey_string(name: str, kid: bytes, sig_type: int, public_key: bytes) -> str:
    return f"{name}+{kid.hex()}+{base64.b64encode(bytes([sig_type]) + public_key).decode()}"


def cosignature_time(sig: NoteSignature) -> int:
    """The Unix time a tlog-cosignature/v1 signature carries (its first 8 bytes)."""
    if len(sig.signature) != 8 + 64:
        raise FormatError("a cosignature is 8 bytes of time and a 64-byte signature")
    return int(struct.unpack(">Q", sig.signature[:8])[0])


class NoteVerifier(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: str, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class Ed25519Verifier:
    """A signed-note Ed25519 verifier key (type 0x01)."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_string(cls, vkey: str) -> Ed25519Verifier:
        """Parse `name+hex(keyID)+base64(0x01||pubkey)`."""
        return cls(*_parse_vkey(vkey, SIG_ED25519, "an Ed25519 signed-note key"))

    def to_string(self) -> str:
        return _vkey_string(self.name, self.key_id, SIG_ED25519, self.public_key)

    def verify(self, text: str, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text.encode())
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class CosignatureVerifier:
    """A tlog-cosignature/v1 witness key (type 0x04). `last_time` is set by a successful verify."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> CosignatureVerifier:
        _check_name(name)
        return cls(name, key_id(name, SIG_COSIGNATURE, public_key), public_key)

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a witness's verifier key `name+hex(keyID)+base64(0x04||pubkey)`."""
        return cls(*_parse_vkey(vkey, SIG_COSIGNATURE, "a tlog-cosignature/v1 witness key"))

    def to_string(self) -> str:
        return _vkey_string(self.name, self.key_id, SIG_COSIGNATURE, self.public_key)

    def verify(self, text: str, signature: bytes) -> bool:
        if len(signature) != 8 + 64:
            return False
        (ts,) = struct.unpack(">Q", signature[:8])
        if ts >= 1 << 63:  # tlog-cosignature: the timestamp fits in 63 bits
            return False
        msg = f"cosignature/v1\ntime {ts}\n{text}".encode()
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature[8:], msg)
        except (InvalidSignature, ValueError):
            return False
        return True


class Ed25519Signer:
    """Signs notes with an Ed25519 private key under a key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._key = private_key
        pub = private_key.public_key().public_bytes_raw()
        self.verifier = Ed25519Verifier(name, key_id(name, SIG_ED25519, pub), pub)

    def sign(self, text: str) -> NoteSignature:
        return NoteSignature(self.name, self.verifier.key_id, self._key.sign(text.encode()))


class CosignatureSigner:
    """Signs checkpoints as a witness (tlog-cosignature/v1) at an explicit Unix time."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        pub = private_key.public_key().public_bytes_raw()
        self.verifier = CosignatureVerifier.from_public_key(name, pub)
        self._key = private_key

    def sign(self, text: str, unix_time: int) -> NoteSignature:
        msg = f"cosignature/v1\ntime {unix_time}\n{text}".encode()
        sig = struct.pack(">Q", unix_time) + self._key.sign(msg)
        return NoteSignature(self.verifier.name, self.verifier.key_id, sig)

    @classmethod
    def generate(cls, name: str) -> tuple[CosignatureSigner, bytes]:
        """A new witness key: the signer, and its key file (the name on the first line, then PKCS#8 PEM)."""
        priv = Ed25519PrivateKey.generate()
        signer = cls(name, priv)  # checks the name
        pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        return signer, name.encode() + b"\n" + pem

    @classmethod
    def from_key_file(cls, data: bytes, name: str | None = None) -> CosignatureSigner:
        """The signer of a key file from `generate`; a file of PEM alone takes `name`.
        A file that holds no such key is a ValueError."""
        if not data.startswith(b"-----BEGIN"):
            first, _, data = data.partition(b"\n")
            name = first.decode()
        if name is None:
            raise ValueError("the witness key file does not name its witness")
        priv = serialization.load_pem_private_key(data, password=None)  # ValueError if it holds none
        if not isinstance(priv, Ed25519PrivateKey):
            raise ValueError("the witness key file does not hold an Ed25519 key")
        return cls(name, priv)


def sign_note(text: str, *signers: Ed25519Signer) -> Note:
    if not text.endswith("\n") or not text.strip("\n"):
        raise FormatError("note text must be non-empty and end with a newline")
    return Note(text, tuple(s.sign(text) for s in signers))


def verify_note(note: Note, verifiers: list[NoteVerifier]) -> list[NoteVerifier]:
    """Verify a note against known keys; return the verifiers whose signatures verified.

    Raises SignatureError when a known key's signature fails, or when no known key signed.
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    ok: list[NoteVerifier] = []
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue  # unknown keys are ignored (signed-note §Signatures)
        if not v.verify(note.text, sig.signature):
            raise SignatureError(f"signature by {sig.name} does not verify")
        if v not in ok:
            ok.append(v)
    if not ok:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none"
        raise SignatureError(f"note carries no signature from a trusted key (trusted: {names})")
    return ok
