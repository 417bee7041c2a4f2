"""The `ledger` command line. Every command is documented in the README (a test checks).

Exit codes: 0 success, 1 the ledger could not do it (storage, integrity, audit failure),
2 the input or the request was refused (nothing was written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.access.apikeys import _TENANT, KEY_CACHE_S
from ledger.config import ENVIRONMENT, MAX_RENEW_DAYS, home_dir, public_url_problem
from ledger.envelopes.events import control_character
from ledger.errors import LedgerError, NotFoundError, RefusedError
from ledger.storage.homelock import check_not_serving
from verifier.cli import ranged

COMMANDS = ("init", "serve", "append", "import", "status", "prove", "checkpoint", "anchor", "audit", "keys", "demo",
            "print", "seal", "seals", "export", "migrate")
DEFAULT_TENANT = "default"
SEAL_TENANT_HELP = "the tenant whose seal registry it is (each tenant registers its own seals)"
TENANT_HELP = (f"the tenant the events' envelopes belong to (default: {DEFAULT_TENANT}); envelope references "
               "are per tenant")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ledger", description="Evidence ledger: an append-only, verifiable log "
                                "of contract signing events.")
    p.add_argument("--home", help="ledger folder (default: $LEDGER_HOME or ./data)")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    s = sub.add_parser("init", help="create a ledger: database, log key, config; print the verifier key")
    s.add_argument("--origin", help="the log's origin (key name), e.g. ledger.example.com/log")
    s.add_argument("--database", metavar="URL",
                   help="keep the log in this PostgreSQL database (postgresql://user@host[:port]/dbname, no "
                        "password: see database_password_env) instead of the SQLite file; written to config.toml")

    s = sub.add_parser("migrate", help="copy this SQLite ledger into an empty PostgreSQL database, byte for byte; "
                                       "audit the copy; then config.toml names it")
    s.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user@host[:port]/dbname (the password from the environment variable "
                        "config.toml's database_password_env names)")

    s = sub.add_parser("serve", help="serve the portal, the log tiles and the API",
                       description="Each option is over its environment variable, which is over config.toml.")
    s.add_argument("--host", help="the address to listen on (default: $LEDGER_HOST, else config.toml's host)")
    s.add_argument("--port", type=_port, help="1-65535 (default: $LEDGER_PORT, else config.toml's port)")
    s.add_argument("--public-url", type=_public_url, metavar="URL",
                   help="the portal's address as QR codes and pages name it (default: $LEDGER_PUBLIC_URL, "
                        "else config.toml's public_url)")
    s.add_argument("--workers", type=_workers, default=1, help="processes sharing the port; with N >= 2 a separate writer process sequences their writes")

    s = sub.add_parser("append", help="append events (one JSON object or an array) from a file or stdin")
    s.add_argument("file", nargs="?", default="-", help="JSON file, or - for stdin (default)")
    s.add_argument("--tenant", type=_tenant, default=DEFAULT_TENANT, help=TENANT_HELP)

    s = sub.add_parser("import", help="bulk-append JSON Lines (one event a line), with a progress bar")
    s.add_argument("file", help="JSON Lines file, or - for stdin")
    s.add_argument("--tenant", type=_tenant, default=DEFAULT_TENANT, help=TENANT_HELP)
    s.add_argument("--batch", type=int, default=1000, help="events per atomic request (default 1000)")

    s = sub.add_parser("status", help="log size, latest checkpoint, envelopes by status")
    s.add_argument("--json", action="store_true")
    s.add_argument("--envelope", help="show one envelope (your reference)")
    s.add_argument("--tenant", type=_tenant, default=DEFAULT_TENANT,
                   help=f"with --envelope: the envelope's tenant (default: {DEFAULT_TENANT}; "
                        "`ledger demo` puts its envelopes in tenant demo)")

    s = sub.add_parser("prove", help="print a C2SP tlog-proof for an entry")
    s.add_argument("index", type=int)
    s.add_argument("--size", type=int, help="tree size to prove against (default: latest)")
    s.add_argument("--entry", action="store_true", help="print the entry bytes after the proof, base64")
    s.add_argument("--anchored", action="store_true",
                   help="print the entry's trusted time: an anchored-proof bundle (JSON) with the RFC 3161 tokens")
    s.add_argument("--tsa", help="with --anchored: the earliest checkpoint anchored by this TSA "
                                 "(a name `ledger status` lists)")

    sub.add_parser("checkpoint", help="print the latest signed checkpoint")

    s = sub.add_parser("print", help="print-ready copies of a document: each a copy.printed entry and a PDF of the "
                                     "document's latest version with that copy's QR code stamped on it")
    s.add_argument("ref", metavar="REF", help="the envelope (your reference)")
    s.add_argument("--document", required=True, metavar="D", help="the document (your reference)")
    s.add_argument("--copies", type=ranged(int, 1, 1000, "a number of copies from 1 to 1000"), default=1,
                   metavar="N")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="the folder the PDFs go to")
    s.add_argument("--tenant", type=_tenant, default=DEFAULT_TENANT, help=TENANT_HELP)

    s = sub.add_parser("seal", help="seal a document's latest version with the platform's e-seal (PAdES B-LT) and "
                                    "register the sealed PDF as a version of it (document.sealed)")
    s.add_argument("ref", metavar="REF", help="the envelope (your reference)")
    s.add_argument("--document", required=True, metavar="D", help="the document (your reference)")
    s.add_argument("-o", "--output", type=Path, metavar="FILE", help="also write the sealed PDF to FILE")
    s.add_argument("--tenant", type=_tenant, default=DEFAULT_TENANT, help=TENANT_HELP)

    s = sub.add_parser("anchor", help="anchor the latest checkpoint with every TSA now; or renew expiring anchors")
    s.add_argument("--renew", action="store_true",
                   help="re-time-stamp anchors whose TSA certificate expires soon (RFC 4998 idea)")
    s.add_argument("--within", type=_days, metavar="DAYS",
                   help="with --renew: certificates expiring within DAYS (default: renew_within_days)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("audit", help="recompute and re-verify every table; names each wrong row")
    s.add_argument("--checkpoint", action="append", type=Path, default=[], metavar="FILE",
                   help="a checkpoint held outside (a notary's, a backup's): the log must hold its tree "
                        "(repeatable)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("keys", help="manage API keys: create (shown once), list, revoke")
    keys = s.add_subparsers(dest="keys_command", required=True, metavar="action")
    k = keys.add_parser("create", help="create an API key for a tenant; it is printed once and stored hashed")
    k.add_argument("--tenant", type=_tenant, required=True,
                   help="the tenant whose envelopes the key reaches (1-64 letters, digits, '.', '_' or '-')")
    k.add_argument("--scopes", required=True, help="comma-separated: append, read, export, admin")
    k.add_argument("--label", type=_label, default="", help="a note for `keys list` (one line of text)")
    keys.add_parser("list", help="list API keys (ids, tenants, scopes; never the secrets)")
    k = keys.add_parser("revoke", help="revoke an API key by its id")
    k.add_argument("id")

    s = sub.add_parser("seals", help="a tenant's seal registry: register electronic and physical seals, list "
                                     "them with their uses, retire one")
    seals = s.add_subparsers(dest="seals_command", required=True, metavar="action")
    k = seals.add_parser("add", help="register a seal; prints it (JSON) with its fingerprint, the `seal` of "
                                     "seal.used events")
    k.add_argument("--tenant", type=_tenant, required=True, help=SEAL_TENANT_HELP)
    k.add_argument("--kind", choices=("electronic", "physical"), required=True)
    k.add_argument("--name", type=_label, required=True, help="the seal's name, e.g. 合同专用章 (one line)")
    k.add_argument("--certificate", metavar="FILE", help="electronic: the seal's certificate (PEM or DER); its "
                                                         "SHA-256 (DER) is the fingerprint")
    k.add_argument("--image", metavar="FILE", help="physical: a scan (PNG or JPEG) of its impression, whose SHA-256 "
                                                   "is the fingerprint; electronic: the image of its appearance")
    k.add_argument("--party", action="append", default=[], metavar="REF",
                   help="a party reference that may use it (repeatable)")
    k.add_argument("--role", action="append", default=[], choices=("signer", "cc"),
                   help="a role whose parties may use it (repeatable; signer: every signer)")
    k = seals.add_parser("list", help="list a tenant's seals and their uses (JSON)")
    k.add_argument("--tenant", type=_tenant, required=True, help=SEAL_TENANT_HELP)
    k.add_argument("--uses", type=int, default=100, help="the newest uses shown per seal (default 100)")
    k = seals.add_parser("retire", help="retire a seal (lost or replaced): refused from now on; its uses stay")
    k.add_argument("--tenant", type=_tenant, required=True, help=SEAL_TENANT_HELP)
    k.add_argument("fingerprint")

    s = sub.add_parser("export", help="the court-ready evidence bundle of an envelope (zip): entries, openings, proofs, "
                                      "checkpoints, anchors, certificates, documents, sealed report, VERIFY.md")
    s.add_argument("ref", metavar="REF", help="the envelope (your reference)")
    s.add_argument("--tenant", type=_tenant, default=DEFAULT_TENANT, help=TENANT_HELP)
    s.add_argument("--lang", choices=("zh-CN", "en"), default="zh-CN", help="the report's language (default zh-CN)")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.zip", help="where to write the bundle")

    sub.add_parser("demo", help="create demo envelopes in every state and print their QR URLs; "
                                "once they are there, print their current QR URLs again")
    return p


# Argument types: a bad value is refused by argparse, with usage and exit code 2, before any work.

_port = ranged(int, 1, 65535, "a TCP port (1-65535)")
_workers = ranged(int, 1, math.inf, "a number of worker processes (1 or more)")
_days = ranged(float, 0, MAX_RENEW_DAYS, f"a number of days from 0 to {MAX_RENEW_DAYS}")


def _public_url(text: str) -> str:
    why = public_url_problem(text)
    if why:
        raise argparse.ArgumentTypeError(why)
    return text


def _tenant(text: str) -> str:
    if not _TENANT.fullmatch(text):  # the check of `ledger keys create`, so every tenant can have keys
        raise argparse.ArgumentTypeError("a tenant is 1-64 letters, digits, '.', '_' or '-'")
    return text


def _label(text: str) -> str:
    bad = control_character(text, one_line=True)
    if bad:
        raise argparse.ArgumentTypeError(f"a label is one line of text without control characters ({bad})")
    return text


Serve = Callable[[Path, argparse.Namespace], None]


def main(argv: list[str] | None = None, *, serve: Serve | None = None) -> int:
    """Run the CLI. `serve` is supplied by the portal package (the ledger does not depend on it)."""
    args = _parser().parse_args(argv)
    home = home_dir(args.home)
    try:
        _check_home(home, args.command)
        if args.command == "serve":
            if serve is None:
                raise LedgerError("this installation has no portal; run `ledger serve` from the full package")
            check_not_serving(home)  # this message, not the port's: the port is the other server's
            if args.public_url:  # the server, and each worker it starts, read it as they read config.toml
                os.environ[ENVIRONMENT["public_url"]] = args.public_url
            _check_listen(home, args)
            serve(home, args)
            return 0
        return int(_run(args, home) or 0)
    except RefusedError as e:
        print(f"ledger: refused ({e.code}): {e}", file=sys.stderr)
        return 2
    except NotFoundError as e:  # the request names what is not there (an index, an envelope)
        print(f"ledger: not found ({e.code}): {e}", file=sys.stderr)
        return 2
    except LedgerError as e:
        print(f"ledger: error ({e.code}): {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a file or folder of the ledger: one line with the path, not a traceback
        where = f"{e.filename}: {e.strerror}" if e.filename else str(e)
        print(f"ledger: error (io_error): {where}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.ProgrammingError):
            raise  # our bug, not the database's
        from ledger.storage.schema import DB_NAME

        print(f"ledger: error (storage_error): {home / DB_NAME}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _check_home(home: Path, command: str) -> None:
    """Refuse a ledger folder that is not one, before a command trips over it."""
    from ledger.envelopes.core import orphan_key

    if home.exists() and not home.is_dir():
        raise RefusedError(f"the ledger folder {home} is a file (--home, $LEDGER_HOME)", code="bad_home")
    if command != "init" and not home.exists():  # the request names a folder that is not there
        raise NotFoundError(f"no ledger folder {home}; name an existing one with --home or $LEDGER_HOME, "
                            "or create it with `ledger init`", code="no_ledger")
    if command != "init" and (orphan := orphan_key(home)) is not None:
        # not "run `ledger init` first": init refuses a folder with a key (Ledger.init), so say what it says
        raise LedgerError(orphan, code="no_ledger")


def _check_listen(home: Path, args: argparse.Namespace) -> None:
    """Fill in the host and port (option, else environment, else config.toml), and fail in one line if
    `serve` could not listen there.

    The sockets are bound and closed again at once; the server binds its own.
    """
    import errno
    import socket

    from ledger.config import load_config

    config = load_config(home)  # config.toml with the environment's settings over it
    args.host = config.host if args.host is None else args.host
    args.port = config.port if args.port is None else args.port
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(args.host or None, args.port,
                                                                  type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(address)
    except OSError as e:
        taken = {errno.EADDRINUSE: "another program listens there", errno.EACCES: "a port below 1024 needs root"}
        if e.errno in taken:
            todo = (f"{taken[e.errno]}: choose another port with --port P or {ENVIRONMENT['port']}=P (and point "
                    f"--public-url or {ENVIRONMENT['public_url']} at it, for the QR codes)")
        else:
            todo = f"choose an address of this machine with --host or {ENVIRONMENT['host']}"
        raise LedgerError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}; {todo}",
                          code="cannot_listen") from None


def _read_input(name: str, limit: int) -> bytes:
    try:
        f = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
        try:
            data = f.read(limit + 1)
        finally:
            if f is not sys.stdin.buffer:
                f.close()
    except OSError as e:  # missing, a folder, not readable: the input, not the ledger
        raise RefusedError(f"cannot read {name}: {e.strerror or e}", code="bad_input") from None
    if len(data) > limit:
        raise RefusedError(f"input is larger than the limit of {limit} bytes; use `ledger import` for bulk loads",
                           code="too_large")
    return data


def _run(args: argparse.Namespace, home: Path) -> int | None:
    from ledger.envelopes.core import Ledger

    if args.command == "init":
        led = Ledger.init(home, origin=args.origin, database=args.database)
        print(f"initialised a ledger in {home}", file=sys.stderr)
        print(f"origin: {led.config.origin}", file=sys.stderr)
        print(led.verifier_key)
        led.close()
        return 0
    if args.command == "migrate":
        return _migrate(home, args.to)
    if args.command == "audit":
        from ledger.audit.run import audit_home

        # read-only: a database a writer refuses to open (damaged tiles, say) is still audited
        return _audit_report(audit_home(home, args.checkpoint), args.json)
    led = Ledger.open(home)
    try:
        return _with_ledger(args, led)
    finally:
        led.close()


def _migrate(home: Path, url: str) -> int:
    """`ledger migrate --to URL`: copy, check the root, audit the copy, and only then name it in config.toml."""
    import re

    from ledger.audit.run import audit_home
    from ledger.config import database_problem, load_config
    from ledger.documents.blobs import BlobStore
    from ledger.storage.homelock import check_not_serving
    from ledger.storage.migrate import copy_to_postgresql
    from ledger.storage.schema import DB_NAME

    config = load_config(home)
    if config.database:
        raise RefusedError(f"this ledger's database is {config.database} already (config.toml's database); "
                           "migrate copies a SQLite ledger", code="not_sqlite")
    if why := database_problem(url):
        raise RefusedError(f"--to: {why}", code="bad_database")
    if not (home / DB_NAME).exists():
        raise NotFoundError(f"no ledger database at {home / DB_NAME}", code="no_ledger")
    check_not_serving(home)  # what a server appended meanwhile would stay behind in the SQLite file
    done = copy_to_postgresql(home / DB_NAME, url, config.database_password())
    print(f"copied {sum(done.rows.values())} rows of {len(done.rows)} tables; tree size {done.size}, root "
          f"{done.root.hex()} (the SQLite ledger's)", file=sys.stderr)
    # the documents' bytes too: on PostgreSQL the database keeps them, for every host to serve
    pushed = BlobStore(home / "blobs", max_size=config.max_document_bytes, database=url,
                       password=config.database_password()).push_local()
    print(f"stored {pushed} documents of blobs/ in the database", file=sys.stderr)
    cfg = home / "config.toml"
    before = cfg.read_text() if cfg.exists() else None
    line = f"database = {json.dumps(url)}"
    text = before or ""
    text = (re.sub(r"(?m)^database = .*$", line, text, count=1) if re.search(r"(?m)^database = ", text)
            else line + "\n" + text)  # first: top-level keys go before any [table]
    cfg.write_text(text)
    rep = audit_home(home)
    if not rep.ok:
        if before is None:
            cfg.unlink()
        else:
            cfg.write_text(before)
        print("the copy does not pass the audit: config.toml still names the SQLite file", file=sys.stderr)
        return _audit_report(rep, False)
    _audit_report(rep, False)
    print(f"config.toml now names {url}; {home / DB_NAME} is no longer used (keep it as a backup)",
          file=sys.stderr)
    return 0


def _print(args: argparse.Namespace, led: Any) -> int:
    import os

    from ledger.documents.qr import grouped
    from ledger.envelopes import printing

    # before any copy is logged: one that cannot be printed is not
    printing.latest_version(led, *printing.document_of(led, args.tenant, args.ref, args.document))
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RefusedError(f"cannot make the folder {args.output}: {e.strerror or e}", code="bad_output") from None
    for _ in range(args.copies):
        (ack,) = led.append(args.tenant, [{"type": "copy.printed", "envelope": args.ref, "document": args.document}])
        pdf, name = printing.printed_copy(led, args.tenant, ack)
        path = args.output / f"{args.ref}-{name}"
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(pdf)
        os.replace(tmp, path)
        print(f"{path}  {grouped(ack['code'])}  {led.qr_url(ack['code'])}")
    return 0


def _audit_report(rep: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(rep.to_json(), indent=2))
    else:
        print(f"entries {rep.size}, checkpoints {rep.checkpoints} ({rep.records} with signed records), "
              f"full tiles {rep.tiles}, envelopes {rep.envelopes}"
              + (f" ({rep.unbound} made before tenants were bound)" if rep.unbound else "")
              + f", openings {rep.openings}, references {rep.refs}, anchors {rep.anchors}, "
              f"cosignatures {rep.cosignatures}, API keys {rep.api_keys}, outside checkpoints {rep.outside}, stored originals {rep.documents}"
              + (f" ({rep.unreferenced} stored file(s) no document names)" if rep.unreferenced else ""))
        for p in rep.problems:
            print(f"PROBLEM: {p}")
        if rep.dropped:
            print(f"PROBLEM: ... and {rep.dropped} more")
        print("audit passed" if rep.ok else f"audit FAILED: {len(rep.problems) + rep.dropped} problem(s), first above")
    return 0 if rep.ok else 1


def _with_ledger(args: argparse.Namespace, led: Any) -> int:
    if args.command == "append":
        data = _read_input(args.file, led.config.max_request_bytes)
        for ack in led.append(args.tenant, data):
            print(json.dumps(ack, ensure_ascii=False))
        return 0
    if args.command == "import":
        from ledger.envelopes.bulk import import_json_lines

        import_json_lines(led, args.file, args.tenant, args.batch)
        return 0
    if args.command == "status":
        return _status(args, led)
    if args.command == "prove":
        import base64

        if args.tsa and not args.anchored:
            raise RefusedError("--tsa goes with --anchored", code="bad_arguments")
        if args.anchored:
            if args.size is not None or args.entry:
                raise RefusedError("--anchored chooses the checkpoint and carries the entry itself; "
                                   "leave out --size and --entry", code="bad_arguments")
            if args.tsa:
                _check_tsa(led, args.tsa)
            sys.stdout.write(led.prove_anchored(args.index, args.tsa).to_text())
            return 0
        proof = led.prove(args.index, args.size)
        sys.stdout.write(proof.to_text())
        if args.entry:
            print(base64.b64encode(led.log.entry(args.index)).decode())
        return 0
    if args.command == "print":
        return _print(args, led)
    if args.command == "seal":
        from ledger.envelopes import sealing

        event, pdf = sealing.sealed_version(led, args.tenant, args.ref, args.document)
        (ack,) = led.append(args.tenant, [event])
        if args.output is not None:
            args.output.write_bytes(pdf)
        print(json.dumps(sealing.with_seal(ack, pdf), ensure_ascii=False))
        return 0
    if args.command == "export":
        from ledger.evidence.bundle import export, write_file

        bundle = export(led, args.tenant, args.ref, lang=args.lang)
        size = write_file(bundle, args.output)
        print(json.dumps({"file": str(args.output), "bytes": size, "files": len(bundle.members),
                          "status": bundle.manifest.envelope.status, "interim": bundle.manifest.interim,
                          "self_check": "passed" if bundle.ok else "FAILED"}, ensure_ascii=False))
        return 0 if bundle.ok else 1
    if args.command == "checkpoint":
        sys.stdout.write(led.log.latest_checkpoint)
        return 0
    if args.command == "anchor":
        return _anchor(args, led)
    if args.command == "keys":
        return _keys(args, led)
    if args.command == "seals":
        return _seals(args, led)
    if args.command == "demo":
        from ledger.documents.qr import grouped
        from ledger.envelopes.demo import create_demo, demo_notary

        for d in create_demo(led):  # made once; each run prints their latest copies, at the current public_url
            access = f"   access code {d['access_code']}" if d["access_code"] else ""
            copy = f"{led.qr_url(d['code'])}   ({grouped(d['code'])})" if d["code"] else "(no printed copy)"
            print(f"{d['status']:<10} {d['envelope']:<18} {copy}{access}")
        name, size = demo_notary(led)
        print(f"demo notary {name} cosigned the checkpoint of size {size}")
        return 0
    raise AssertionError(args.command)


def _keys(args: argparse.Namespace, led: Any) -> int:
    from ledger.access.apikeys import create_key, list_keys, revoke_key

    conn = led.log.conn  # a private table: written directly (each row sealed by the log key), not through the log
    if args.keys_command == "create":
        key = create_key(led.log, args.tenant, [s.strip() for s in args.scopes.split(",") if s.strip()], args.label)
        print(key)
        print("this key is shown once; it is stored only as a hash", file=sys.stderr)
    elif args.keys_command == "list":
        for k in list_keys(conn):
            print(f"{k['id']}  tenant={k['tenant']}  scopes={k['scopes']}  created={k['created']}"
                  f"{'  REVOKED ' + str(k['revoked']) if k['revoked'] else ''}  {k['label'] or ''}")
    else:
        revoke_key(led.log, args.id)
        print(f"revoked {args.id}; a running `ledger serve` may still accept it for up to {KEY_CACHE_S:g} s "
              "(it caches keys it has checked)", file=sys.stderr)
    return 0


def _seals(args: argparse.Namespace, led: Any) -> int:
    from ledger.envelopes import seals

    if args.seals_command == "add":
        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as e:
                raise RefusedError(f"cannot read the {what} {path}: {e.strerror}", code="bad_arguments") from None

        shown = seals.register(led.log, led.blobs, args.tenant, kind=args.kind, name=args.name,
                               certificate=read(args.certificate, "certificate"), image=read(args.image, "image"),
                               parties=args.party, roles=args.role)
        print(json.dumps(shown, ensure_ascii=False))
    elif args.seals_command == "list":
        print(json.dumps(seals.list_seals(led.log.conn, args.tenant, limit=max(args.uses, 0)), ensure_ascii=False,
                         indent=1))
    else:
        if not seals.is_fingerprint(args.fingerprint):
            raise RefusedError("a seal's fingerprint is 64 lowercase hex characters", code="bad_arguments")
        seals.retire(led.log, args.tenant, args.fingerprint)
        print(f"retired {args.fingerprint}", file=sys.stderr)
    return 0


def _check_tsa(led: Any, name: str) -> None:
    """Refuse --tsa NAME for a TSA that is not configured and never anchored here (a TSA removed from
    config.toml still has its anchors)."""
    configured = led.config.tsa_names
    if name in configured or led.log._reader().execute("SELECT 1 FROM anchors WHERE tsa = ? LIMIT 1",
                                                       (name,)).fetchone():
        return
    names = ", ".join(configured) if configured else "none (local_tsa = false and no [[tsa]])"
    raise NotFoundError(f"TSA {name!r} is not configured (configured: {names}); name one of them with --tsa, "
                        "or add a [[tsa]] table for it to config.toml", code="unknown_tsa")


def _anchor(args: argparse.Namespace, led: Any) -> int:
    import asyncio
    from datetime import timedelta

    import aiohttp

    from ledger.anchoring.anchor import Anchorer, clients_for
    from ledger.config import LOCAL_TSA_NAME

    async def run() -> list[Any]:
        async with aiohttp.ClientSession() as session:
            anchorer = Anchorer(led, clients_for(led, session))
            if not anchorer.clients:
                raise RefusedError("no TSA is configured (local_tsa = false and no [[tsa]])", code="no_tsa")
            if args.renew:
                days = led.config.renew_within_days if args.within is None else args.within
                return await anchorer.renew(timedelta(days=days))
            return await anchorer.anchor_now()

    outcomes = asyncio.run(run())
    if args.json:
        print(json.dumps([vars(o) for o in outcomes], indent=2))
    else:
        for o in outcomes:
            label = f"{o.tsa} (local TSA, not accredited)" if o.tsa == LOCAL_TSA_NAME else o.tsa
            print(f"{label}: {'ok' if o.ok else 'FAILED'}: {o.detail}")
        if not outcomes:
            print("nothing to renew" if args.renew else f"every TSA has anchored the latest checkpoint ({led.log.size})")
    return 0 if all(o.ok for o in outcomes) else 1


def _envelope(led: Any, tenant: str, ref: str) -> dict[str, Any]:
    """The envelope REF of TENANT; not found names the tenant, and the tenants that have one."""
    try:
        return dict(led.envelope(tenant, ref))
    except NotFoundError as e:
        others = [t for (t,) in led.log._reader().execute(
            "SELECT tenant FROM envelopes WHERE ref = ? AND tenant != ? ORDER BY tenant LIMIT 5", (ref, tenant))]
        if len(others) == 1:
            where = f"tenant {others[0]!r} has one: add --tenant {others[0]}"
        elif others:
            where = f"tenants {', '.join(map(repr, others))} have one: add --tenant with one of them"
        else:
            where = "no other tenant has one either; check the reference"
        raise NotFoundError(f"no envelope {ref!r} in tenant {tenant!r}; {where}", code=e.code) from None


def _status(args: argparse.Namespace, led: Any) -> int:
    if args.envelope:
        print(json.dumps(_envelope(led, args.tenant, args.envelope), indent=2, ensure_ascii=False))
        return 0
    by_status = dict(led.log.conn.execute("SELECT status, count(*) FROM envelopes GROUP BY status").fetchall())
    from ledger.anchoring.anchor import anchoring_status
    from ledger.anchoring.witness import witness_status

    info = {"home": str(led.home), "origin": led.config.origin, "size": led.log.size,
            "verifier_key": led.verifier_key, "envelopes": by_status, "checkpoint": led.log.latest_checkpoint,
            "tsas": anchoring_status(led), "witnesses": witness_status(led)}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"ledger     {info['home']}\norigin     {info['origin']}\nentries    {info['size']}\n"
              f"key        {info['verifier_key']}")
        print("envelopes  " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"))
        print("checkpoint\n" + "\n".join("  " + ln for ln in info["checkpoint"].splitlines()))
        print("anchoring" + ("" if info["tsas"] else "  no TSA configured"))
        for t in info["tsas"]:
            print(f"  {t['tsa']} ({t['kind']}): anchored up to size {t['anchored_size']} "
                  f"({t['unanchored']} entries not yet), {t['anchors']} tokens; last success {t['last_success'] or 'never'}"
                  + (f"; {t['consecutive_failures']} consecutive failures, last error at {t['last_error_at']}: "
                     f"{t['last_error']}" if t["consecutive_failures"] else ""))
        print("witnesses" + ("" if info["witnesses"] else "  none configured"))
        for w in info["witnesses"]:
            print(f"  {w['witness']}: " + (f"cosigned up to size {w['size']} ({led.log.size - w['size']} entries "
                                           f"not yet), last at {w['time']}" if w["size"] else "never cosigned"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
