"""What a notary trusts, and where it came from: the log's key and the TSA roots, given on the command line,
pinned in the state folder, or taken on first use (and then pinned, with a warning to compare them with
copies obtained another way). Also the anchors a log keeps for a checkpoint, judged against those roots.

State folder files: `log-key` (the log's verifier key) and `tsa-roots.pem` (the TSA roots), both pinned
on first use; `notary.check` adds its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from notary._files import make_folder, write_atomic
from notary._http import LogClient
from notary.errors import FetchError, StateError
from verifier.anchored import AnchorRecord
from verifier.errors import FormatError, VerificationError
from verifier.note import Ed25519Verifier
from verifier.timestamp import verify_timestamp

KEY_FILE = "log-key"
ROOTS_FILE = "tsa-roots.pem"
MAX_ANCHORS_JSON = 16 << 20
MAX_SMALL = 1 << 16
Say = Callable[[str], None]


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise StateError(f"cannot read {path}: {e}") from None


def parse_key(text: str, where: str) -> Ed25519Verifier:
    try:
        return Ed25519Verifier.from_string(text.strip())
    except FormatError as e:
        raise ValueError(f"{where}: not a log verifier key ({e})") from None


def log_key(client: LogClient, state: Path | None, given: str | None, say: Say) -> Ed25519Verifier:
    """The log key: `given` (a key string or a file holding one), else the one pinned in `state`, else the
    log's `/log-key`, pinned on this first use (trust on first use, said out loud)."""
    pinned_text = _read_text(state / KEY_FILE) if state is not None else None
    pinned = parse_key(pinned_text, str(state / KEY_FILE)) if pinned_text and state is not None else None
    if given is not None:
        path = Path(given)
        key = parse_key(path.read_text() if path.is_file() else given, "--log-key")
        if pinned is not None and state is not None and pinned != key:
            raise StateError(f"--log-key is not the key pinned in {state / KEY_FILE} ({pinned.to_string()}): "
                             "a log never changes its key; if you are sure, remove that file")
        if pinned is None and state is not None:
            _pin(state / KEY_FILE, key.to_string() + "\n")
        return key
    if pinned is not None:
        return pinned
    key = parse_key(client.text("/log-key", MAX_SMALL), f"{client.base}/log-key")
    say(f"WARNING trust on first use: took the log key {key.to_string()} from {client.base}/log-key; "
        "compare it with the key the log's operator published elsewhere"
        + (f" (pinned in {state / KEY_FILE})" if state is not None else " (pass --log-key to pin it)"))
    if state is not None:
        _pin(state / KEY_FILE, key.to_string() + "\n")
    return key


def _pin(path: Path, text: str) -> None:
    try:
        make_folder(path.parent)
        write_atomic(path, text.encode())
    except OSError as e:
        raise StateError(f"cannot write {path}: {e}") from None


def self_signed(pem: bytes) -> list[bytes]:
    """The self-signed certificates (roots) of a PEM bundle, as PEM."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []
    return [c.public_bytes(Encoding.PEM) for c in certs if c.issuer == c.subject]


def tsa_roots(client: LogClient, state: Path | None, given: Sequence[bytes], say: Say) -> list[bytes]:
    """TSA roots: the `--trust-tsa` files, else those pinned in `state`, else the root of the log's local TSA
    (`/tsa/certs`), pinned on this first use. Empty when there is none of these (anchors are then not judged)."""
    if given:
        return list(given)
    pinned = state / ROOTS_FILE if state is not None else None
    if pinned is not None and pinned.exists():
        try:
            return self_signed(pinned.read_bytes()) or [pinned.read_bytes()]
        except OSError as e:
            raise StateError(f"cannot read {pinned}: {e}") from None
    try:
        roots = self_signed(client.get("/tsa/certs", MAX_SMALL))
    except FetchError as e:
        if e.status == 404:
            return []
        raise
    if roots:
        say(f"WARNING trust on first use: took the root of the log's local TSA from {client.base}/tsa/certs "
            "(a local TSA, not accredited); pass --trust-tsa ROOT.pem for the TSAs you trust"
            + (f" (pinned in {pinned})" if pinned is not None else ""))
        if pinned is not None:
            _pin(pinned, "".join(r.decode() for r in roots))
    return roots


def anchors_at(client: LogClient, size: int) -> list[AnchorRecord]:
    """The anchor tokens the log keeps for its checkpoint of `size` (`GET /anchors/<size>`)."""
    raw = client.json(f"/anchors/{size}", MAX_ANCHORS_JSON)
    if not isinstance(raw, list):
        raise FetchError(f"{client.base}/anchors/{size}: not a JSON list of anchors")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, dict):  # the portal's records carry ids and labels; a bare {tsa, token} is one too
            item = {"id": i + 1, "renews": None, **item}
        out.append(AnchorRecord.from_json(item))
    return out


def anchored_sizes(client: LogClient) -> list[int]:
    """The largest checkpoint size each TSA has anchored, as the log's `GET /tsa` says (empty if it cannot)."""
    try:
        raw: Any = client.json("/tsa", MAX_SMALL)
        sizes = {int(t["anchored_size"]) for t in raw["anchoring"]}
    except (FetchError, KeyError, TypeError, ValueError):
        return []
    return sorted(s for s in sizes if s > 0)


@dataclass(frozen=True)
class AnchorVerdict:
    record: AnchorRecord
    ok: bool
    trusted: bool  # False: its chain leads to no root the notary trusts (not judged further)
    line: str


def judge_anchors(records: Sequence[AnchorRecord], body: bytes, roots: Sequence[bytes]) -> list[AnchorVerdict]:
    """Verify each token over the checkpoint body (a renewal: over the token it renews) against `roots`."""
    by_id = {r.id: r for r in records}
    out = []
    for r in records:
        data = body if r.renews is None else by_id[r.renews].token if r.renews in by_id else b""
        what = f"anchor #{r.id} ({r.tsa}{', renews #' + str(r.renews) if r.renews is not None else ''})"
        if not roots:
            out.append(AnchorVerdict(r, False, False, f"{what}: not checked, no TSA root to check it with "
                                                      "(--trust-tsa ROOT.pem)"))
            continue
        rep = verify_timestamp(r.token, data=data, trusted_roots=roots)
        failed = rep.first_failure()
        if rep.ok and rep.gen_time is not None:
            out.append(AnchorVerdict(r, True, True, f"{what}: ok, genTime {rep.gen_time.isoformat()}, "
                                                    f"by {rep.tsa_name!r}"))
        elif failed is not None and failed.code == "untrusted_root":
            out.append(AnchorVerdict(r, False, False, f"{what}: not checked, its TSA is not one you trust "
                                                      f"({failed.detail[:120]})"))
        else:
            why = f"({failed.number}) {failed.name}: {failed.detail}" if failed else "the check did not complete"
            out.append(AnchorVerdict(r, False, True, f"{what}: FAIL {why}"))
    return out


def require_anchors(verdicts: Sequence[AnchorVerdict]) -> None:
    """Raise if a token that chains to a trusted root fails another check: it is not evidence of anything."""
    bad = [v.line for v in verdicts if v.trusted and not v.ok]
    if bad:
        raise VerificationError("; ".join(bad), code="bad_anchor")
