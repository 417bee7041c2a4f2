"""`verifier verify BUNDLE.zip` and `verifier page FILE.json`: the command-line side of this package.

Like `verifier.cli`, the only I/O here is reading the files named on the command line (the bundle is
opened and read as a zip, never extracted) and printing the checklist. Exit code 0 only when every
check holds, 1 when one does not (or the bundle is refused), 2 when an argument or a file cannot be used.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from verifier.entry import strict_loads
from verifier.errors import FormatError, VerificationError
from verifier.evidence.result import Report
from verifier.note import CosignatureVerifier, Ed25519Verifier

MAX_PAGE_JSON = 32 << 20
MAX_ROOT_FILE = 1 << 20


def add_commands(sub: Any, moment: Callable[[str], datetime], minutes: Callable[[str], float]) -> None:
    """The `verify` and `page` subcommands, on `verifier`'s subparsers."""
    s = sub.add_parser("verify", help="check a court-ready evidence bundle (zip) offline: every file, entry, proof, "
                                      "checkpoint, anchor, seal and the status")
    s.add_argument("file", help="the bundle, BUNDLE.zip (`ledger export` or GET /api/v1/envelopes/{ref}/evidence)")
    s.add_argument("--log-key", help="the log's verifier key (or a file holding it); default: the bundle's own, "
                                     "which the verdict says")
    s.add_argument("--trust-tsa", action="append", metavar="ROOT.pem", help="a TSA root you trust (PEM or DER); "
                   "repeatable; default: the roots in the bundle, which the verdict says")
    s.add_argument("--trust-seal", action="append", metavar="ROOT.pem", help="a root of the platform's seal you "
                   "trust; repeatable; default: the bundle's, which the verdict says")
    s.add_argument("--witness", action="append", metavar="WKEY", help="a notary's witness verifier key that must "
                   "have cosigned; repeatable; default: the witness keys the bundle names")
    s.add_argument("--at", type=moment, help="the moment of judgment, RFC 3339 (default: when the bundle was made)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s = sub.add_parser("page", help="the checks a copy page makes in the browser, on a saved /v/<code>.json")
    s.add_argument("file", help="the saved JSON of a copy's page")
    s.add_argument("--key", required=True, help="the log's verifier key (or a file holding it)")
    s.add_argument("--code", help="the code printed on your copy (default: the one in the file, said so)")
    s.add_argument("--document-pin", metavar="HEX", help="the document hash prefix pinned in the QR code (#d=...)")
    s.add_argument("--at", type=moment, help="when the JSON was saved, RFC 3339: the envelope head must be signed "
                                             "within --max-age of it")
    s.add_argument("--max-age", type=minutes, default=10.0, help="minutes (default 10, as the page)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")


def _read(path: str, limit: int) -> bytes:
    p = Path(path)
    if p.stat().st_size > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return p.read_bytes()


def _text_or_file(text: str) -> str:
    p = Path(text)
    return p.read_text().strip() if p.is_file() else text


def _print(report: Report, as_json: bool, head: str) -> int:
    if as_json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(head)
        for line in report.lines():
            print(line)
        print(report.verdict())
    return 0 if report.ok else 1


def run(args: argparse.Namespace, now: datetime | None) -> int:
    """Run `verify` or `page`; `now` is the current time if the caller read it (the verifier reads no clock)."""
    if args.command == "page":
        return _page(args)
    from verifier.evidence.archive import Archive
    from verifier.evidence.bundle import Trust, verify_bundle

    try:
        trust = Trust(
            log_key=Ed25519Verifier.from_string(_text_or_file(args.log_key)) if args.log_key else None,
            tsa_roots=tuple(_read(p, MAX_ROOT_FILE) for p in args.trust_tsa) if args.trust_tsa else None,
            seal_roots=tuple(_read(p, MAX_ROOT_FILE) for p in args.trust_seal) if args.trust_seal else None,
            witnesses=tuple(CosignatureVerifier.from_string(_text_or_file(w)) for w in args.witness)
            if args.witness else None)
    except FormatError as e:  # the command line's, not the bundle's
        raise ValueError(f"--log-key or --witness: {e}") from None
    if not Path(args.file).is_file():
        raise ValueError(f"{args.file} is not a file")
    _quiet()
    with open(args.file, "rb") as fp:
        try:
            archive = Archive(fp)
        except VerificationError as e:
            if args.json:
                print(json.dumps({"what": "bundle", "ok": False, "verdict": f"REFUSED: {e}", "code": e.code,
                                  "checks": []}, indent=2))
            else:
                print(f"REFUSED {args.file} ({e.code}): {e}")
            return 1
        report = verify_bundle(archive, trust, at=args.at or now)
        archive.close()
    return _print(report, args.json, f"bundle {args.file}: {len(archive.names)} files")


def _page(args: argparse.Namespace) -> int:
    from verifier.evidence.page import verify_page

    try:
        key = Ed25519Verifier.from_string(_text_or_file(args.key))
    except FormatError as e:
        raise ValueError(f"--key: {e}") from None
    try:
        view = strict_loads(_read(args.file, MAX_PAGE_JSON), max_bytes=MAX_PAGE_JSON)
    except FormatError as e:
        raise FormatError(f"{args.file}: not the JSON of a copy page: {e}") from None
    report = verify_page(view, key, at=args.at, max_age=timedelta(minutes=args.max_age), code=args.code,
                         document_pin=args.document_pin)
    return _print(report, args.json, f"copy page {args.file}")


def _quiet() -> None:
    """pyHanko logs what its analysis finds: the checklist says what matters."""
    import logging

    logging.getLogger("pyhanko").addHandler(logging.NullHandler())
    logging.getLogger("pyhanko").propagate = False
    logging.getLogger("pyhanko_certvalidator").propagate = False
