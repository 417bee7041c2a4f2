"""The `verifier` command: offline checks anyone can run without the ledger.

The only I/O in the verifier package: it reads the files named on the command line and prints a
report. Every check is done by the pure modules beside it. Exit code 0 means verified, 1 means the
data is not trustworthy, 2 means the command line or a file could not be used.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from verifier.checkpoint import verify_checkpoint
from verifier.errors import FormatError, VerificationError
from verifier.merkle import verify_consistency
from verifier.note import Ed25519Verifier
from verifier.tlogproof import hash_lines, verify_tlog_proof

MAX_FILE = 64 << 20
# --max-age of `verifier head`: a freshness window, so minutes to days; a year is more than any
# freshness check needs (leave out --at to check no freshness at all), and keeps timedelta in range.
MAX_AGE_MINUTES = 366 * 24 * 60


def _read(path: str) -> bytes:
    p = Path(path)
    if p.stat().st_size > MAX_FILE:
        raise ValueError(f"{path} is larger than {MAX_FILE} bytes")
    return p.read_bytes()


def _base64_file(path: str) -> bytes:
    """The bytes a file of base64 holds (one line; surrounding whitespace is ignored)."""
    try:
        return base64.b64decode(_read(path).strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"{path}: not base64 ({e}); leave out --entry-base64 if it holds the raw bytes") from None


def _base64_hint(path: str, entry: bytes, e: VerificationError) -> VerificationError:
    """`e`, with a hint to use --entry-base64 when the raw entry file holds base64 of a JSON entry."""
    try:
        decoded = base64.b64decode(entry.strip(), validate=True)
    except (binascii.Error, ValueError):
        return e
    if not (decoded.startswith(b"{") and decoded.endswith(b"}")):  # an entry is a canonical JSON object
        return e
    return VerificationError(f"{e}; {path} looks like base64 of a JSON entry: add --entry-base64", code=e.code)


def _text_file(path: str) -> str:
    data = _read(path)
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _consistency_proof(path: str) -> list[bytes]:
    """A consistency proof in the form `GET /proof/consistency/<old>/<new>` serves: one base64 hash of
    32 bytes a line, every line ending in a newline; no blank line, no space, no carriage return. The
    proof is exactly these hashes, as the library's `verify_consistency` takes them, so nothing
    looser is read: a blank line is an empty hash, not a separator."""
    try:
        text = _read(path).decode("ascii")
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}: not ASCII text (byte {e.start}); a consistency proof is base64 lines") from None
    if text and not text.endswith("\n"):
        raise FormatError(f"{path}: the last line does not end with a newline")
    lines = text.split("\n")[:-1]
    if "" in lines:
        n = lines.index("") + 1
        raise FormatError(f"{path}: line {n} is empty; a consistency proof is one base64 hash a line")
    try:
        return hash_lines(lines)
    except FormatError as e:
        raise FormatError(f"{path}: {e} (one hash a line, nothing else)") from None


def _key(args: argparse.Namespace) -> Ed25519Verifier:
    text = args.key
    if Path(text).is_file():
        text = Path(text).read_text().strip()
    return Ed25519Verifier.from_string(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verifier", description="Verify evidence-ledger proofs offline.")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")
    s = sub.add_parser("checkpoint", help="verify a signed checkpoint against the log's verifier key")
    s.add_argument("file")
    s.add_argument("--key", required=True, help="verifier key string (name+hex+base64) or a file holding it")
    s = sub.add_parser("proof", help="verify a C2SP tlog-proof for an entry")
    s.add_argument("file", help="the .tlog-proof file")
    s.add_argument("--entry", required=True, help="file with the exact entry bytes")
    s.add_argument("--entry-base64", action="store_true", help="the entry file holds base64, not raw bytes")
    s.add_argument("--key", required=True, help="verifier key string or a file holding it")
    s.add_argument("--witness", action="append", default=[],
                   help="a notary's witness verifier key (name+hex+base64 of type 0x04); repeatable")
    s.add_argument("--quorum", type=_count, help="how many of the --witness keys must have cosigned (default: all)")
    s = sub.add_parser("consistency", help="verify that a newer checkpoint extends an older one")
    s.add_argument("old")
    s.add_argument("new")
    s.add_argument("--proof", required=True, help="file with the consistency proof, one base64 hash a line")
    s.add_argument("--key", required=True)
    s = sub.add_parser("timestamp", help="verify an RFC 3161 token over a checkpoint body")
    s.add_argument("file", help=".tsr (TimeStampResp) or token file")
    s.add_argument("--data", required=True, help="the exact bytes that were time-stamped")
    s.add_argument("--root", action="append", required=True, help="trusted TSA root certificate (PEM or DER)")
    s = sub.add_parser("anchored", help="verify an anchored proof: when an entry existed, by RFC 3161 anchors")
    s.add_argument("file", help="the bundle printed by `ledger prove INDEX --anchored`")
    s.add_argument("--key", required=True, help="verifier key string or a file holding it")
    s.add_argument("--root", action="append", required=True, help="trusted TSA root certificate (PEM or DER)")
    s.add_argument("--at", required=True, type=_moment,
                   help="the moment of judgment, RFC 3339 (e.g. today); TSA certificates expired by then "
                        "need a renewal made before they expired")
    s.add_argument("--entry", help="file with the entry bytes you hold; must be the bundle's")
    s.add_argument("--entry-base64", action="store_true", help="the entry file holds base64, not raw bytes")
    s = sub.add_parser("witness-key", help="make a notary's witness key (tlog-cosignature/v1) and print its "
                                          "verifier key for the ledger's `witnesses` setting")
    s.add_argument("name", help="the witness's name, e.g. notary.example/w1")
    s.add_argument("file", help="where to write the private key (created, mode 0600)")
    s = sub.add_parser("cosign", help="verify a checkpoint against the log key and print it cosigned")
    s.add_argument("file", help="the checkpoint")
    s.add_argument("--key", required=True, help="the log's verifier key string or a file holding it")
    s.add_argument("--witness-key", required=True, help="the file written by `verifier witness-key`")
    s.add_argument("--at", required=True, type=_unix_moment, help="the moment of cosigning, RFC 3339 (now)")
    s = sub.add_parser("head", help="verify the log's signed statement of an envelope's last event")
    s.add_argument("file", help="the envelope head note (`log.head` of /v/<code>.json)")
    s.add_argument("--key", required=True, help="verifier key string or a file holding it")
    s.add_argument("--checkpoint", help="the checkpoint it must be about (verified too)")
    s.add_argument("--at", type=_moment, help="when it was received, RFC 3339: it must be signed within "
                                              "--max-age of that moment")
    s.add_argument("--max-age", type=_minutes, default=10.0, help="minutes (default 10)")
    s = sub.add_parser("pdf", help="check every signature of a PDF: intact, trusted, not changed after signing")
    s.add_argument("file", help="the PDF")
    s.add_argument("--root", action="append", default=[], help="trusted root certificate of signers (PEM or DER); "
                                                               "repeatable")
    s.add_argument("--tsa-root", action="append", default=[],
                   help="trusted root of signature time-stamps (default: the --root certificates); repeatable")
    s.add_argument("--at", required=True, type=_moment,
                   help="the moment of judgment, RFC 3339: certificates must be valid then (for now: "
                        "--at $(date -u +%%FT%%TZ))")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    from verifier.evidence.command import add_commands

    add_commands(sub, _moment, _minutes)  # `verify` (an evidence bundle) and `page` (a saved copy page)
    return p


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time such as 2026-11-27T18:00:00Z") from None
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z for UTC")
    return moment


def _unix_moment(text: str) -> datetime:
    """An RFC 3339 moment a cosignature can carry: its time is unsigned Unix seconds."""
    moment = _moment(text)
    if moment < datetime(1970, 1, 1, tzinfo=UTC):
        raise argparse.ArgumentTypeError(f"{text!r} is before 1970: a cosignature's time is Unix seconds")
    return moment


N = TypeVar("N", int, float)


def ranged(convert: Callable[[str], N], low: float, high: float, what: str, *,
           above: bool = False) -> Callable[[str], N]:
    """An argparse type: a number from `low` (or, with `above`, more than it) to `high`; anything else,
    nan and what `convert` cannot read too, is refused as "'TEXT' is not WHAT"."""

    def parse(text: str) -> N:
        try:
            value: float = convert(text)
        except ValueError:
            value = math.nan
        if not ((low < value if above else low <= value) and value <= high):  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value  # type: ignore[return-value]  # convert gave it

    return parse


_count = ranged(int, 0, math.inf, "a number of witnesses (0 or more)")
_minutes = ranged(float, 0, MAX_AGE_MINUTES, f"a number of minutes more than 0 and at most {MAX_AGE_MINUTES} "
                  "(366 days); leave out --at to check no freshness", above=True)


def main(argv: list[str] | None = None, *, now: datetime | None = None) -> int:
    """Run the command; `now`, if the caller read the clock, is the default moment of judgment of `verify`."""
    args = _parser().parse_args(argv)
    try:
        if args.command in ("verify", "page"):
            from verifier.evidence.command import run

            return run(args, now)
        return _run(args)
    except VerificationError as e:
        print(f"NOT VERIFIED ({e.code}): {e}")
        return 1
    except (OSError, ValueError) as e:
        print(f"verifier: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "checkpoint":
        cp = verify_checkpoint(_read(args.file), _key(args)).checkpoint
        print(f"VERIFIED checkpoint of {cp.origin}: size {cp.size}, root {cp.root.hex()}")
        return 0
    if args.command == "proof":
        entry = _base64_file(args.entry) if args.entry_base64 else _read(args.entry)
        from verifier.note import CosignatureVerifier, NoteVerifier

        witnesses: list[NoteVerifier] = [CosignatureVerifier.from_string(w) for w in args.witness]
        quorum = len(witnesses) if args.quorum is None else args.quorum
        try:
            proof = verify_tlog_proof(_read(args.file), entry, _key(args), witnesses=witnesses,
                                      witness_quorum=quorum)
        except VerificationError as e:
            if args.entry_base64 or e.code != "root_mismatch":
                raise
            raise _base64_hint(args.entry, entry, e) from None
        print(f"VERIFIED entry {proof.index} is in {proof.checkpoint.checkpoint.origin} "
              f"at size {proof.checkpoint.checkpoint.size}"
              + (f", cosigned by at least {quorum} of {len(witnesses)} witnesses" if quorum else ""))
        return 0
    if args.command == "consistency":
        key = _key(args)
        old = verify_checkpoint(_read(args.old), key).checkpoint
        new = verify_checkpoint(_read(args.new), key).checkpoint
        verify_consistency(old.size, new.size, old.root, new.root, _consistency_proof(args.proof))
        print(f"VERIFIED size {new.size} extends size {old.size}")
        return 0
    if args.command == "timestamp":
        from verifier.timestamp import verify_timestamp

        rep = verify_timestamp(_read(args.file), data=_read(args.data), trusted_roots=[_read(r) for r in args.root])
        for st in rep.steps:
            print(f"({st.number}) {'ok ' if st.ok else 'FAIL'} {st.name}: {st.detail}")
        rep.require_valid()
        print(f"VERIFIED time-stamped at {rep.gen_time} by {rep.tsa_name}")
        return 0
    if args.command == "anchored":
        from verifier.anchored import verify_anchored

        held: bytes | None = None
        if args.entry:
            held = _base64_file(args.entry) if args.entry_base64 else _read(args.entry)
        try:
            anchored = verify_anchored(_read(args.file), _key(args), [_read(r) for r in args.root], at=args.at,
                                       entry=held)
        except VerificationError as e:
            if held is None or args.entry_base64 or e.code != "entry_mismatch":
                raise
            raise _base64_hint(args.entry, held, e) from None
        for line in anchored.lines():
            print(line)
        anchored.require_valid()
        by = anchored.trusted_by
        assert by is not None and anchored.trusted_time is not None
        kind = " (a local TSA, not accredited)" if by.local else ""
        print(f"VERIFIED entry {anchored.proof.index} existed no later than {anchored.trusted_time.isoformat()} "
              f"(anchor #{by.id}, TSA {by.tsa}{kind})")
        return 0
    if args.command == "witness-key":
        import os

        from verifier.note import CosignatureSigner

        signer, key_file = CosignatureSigner.generate(args.name)
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_file)
        print(signer.verifier.to_string())
        return 0
    if args.command == "cosign":
        from verifier.note import CosignatureSigner

        witness = CosignatureSigner.from_key_file(_read(args.witness_key))
        signed = verify_checkpoint(_read(args.file), _key(args))
        note = signed.note.with_signature(witness.sign(signed.note.text, int(args.at.timestamp())))
        sys.stdout.write(note.to_text())
        return 0
    if args.command == "head":
        from datetime import timedelta

        from verifier.head import verify_head

        key = _key(args)
        size = verify_checkpoint(_read(args.checkpoint), key).checkpoint.size if args.checkpoint else None
        head = verify_head(_text_file(args.file), key, now=args.at, max_age=timedelta(minutes=args.max_age),
                           size=size)
        print(f"VERIFIED envelope {head.env} has {head.events} event(s) in {head.origin} at size {head.size}, "
              f"the last at index {head.last_index} (leaf {head.last_leaf.hex()}), as the log said at {head.time}")
        return 0
    if args.command == "pdf":
        import json
        import logging

        from verifier.documents.pdfsig import check_pdf

        # pyHanko logs what its analysis finds (with tracebacks): the report says what matters, so standard
        # error is kept for this command's own errors (its DSA warning on import: `_cms.quiet_pyhanko`).
        logging.getLogger("pyhanko").addHandler(logging.NullHandler())
        logging.getLogger("pyhanko").propagate = False

        report = check_pdf(_read(args.file), roots=[_read(r) for r in args.root], at=args.at,
                           tsa_roots=[_read(r) for r in args.tsa_root])
        if args.json:
            print(json.dumps(report.to_json(), indent=2))
        else:
            for line in report.lines():
                print(line)
            print(report.verdict())
        return 0 if report.ok else 1
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
