"""The `verifier` command: the offline checks of `verifier.cli`, and the notaries' network tools.

`verifier witness serve ...` and `verifier notary check|lookup ...` are handled here; every other argument
list goes to `verifier.cli.main` unchanged. Exit codes as `verifier.cli`'s: 0 verified (or served and
stopped), 1 the data is not trustworthy (a fork, a bad signature, proof, anchor or tile; a document not
in the log), 2 the command line, a file, the state folder or the log's address could not be used.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from notary.errors import NotaryError
from verifier import cli as offline
from verifier.errors import VerificationError

OWN = ("witness", "notary")
MORE_HELP = """
notaries' network tools (see README, "Notaries"):
  witness serve        run a C2SP tlog-witness: POST /add-checkpoint, answered with a cosignature
  notary check         cross-check a log: signature, consistency with the kept checkpoint, anchors
  notary lookup        is a document (SHA-256) in a log, in which entry, since when
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verifier", description="The notaries' network tools.")
    top = p.add_subparsers(dest="tool", required=True, metavar="tool")
    w = top.add_parser("witness", help="a C2SP tlog-witness").add_subparsers(dest="command", required=True,
                                                                              metavar="command")
    s = w.add_parser("serve", help="serve POST /add-checkpoint (c2sp.org/tlog-witness) until SIGTERM")
    s.add_argument("--key", required=True, help="the witness key file written by `verifier witness-key`")
    s.add_argument("--state", required=True, type=Path, help="folder of the latest checkpoint cosigned, per log")
    s.add_argument("--port", required=True, type=_port, help="TCP port (0: any free one, printed)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--log-key", action="append", required=True, metavar="VKEY",
                   help="verifier key of a log this witness cosigns (its name is the log's origin), or a file "
                        "holding it; repeatable")
    n = top.add_parser("notary", help="check a log the notary does not run").add_subparsers(
        dest="command", required=True, metavar="command")
    c = n.add_parser("check", help="verify the log's checkpoint, its consistency with the kept one, its anchors")
    c.add_argument("--log", required=True, help="the log's address, e.g. https://log.example.com")
    c.add_argument("--state", required=True, type=Path, help="folder of the notary's kept checkpoint and pins")
    c.add_argument("--full", action="store_true", help="also fetch every tile and entry bundle and recompute the root")
    c.add_argument("--log-key", metavar="VKEY", help="the log's verifier key, or a file holding it (default: the "
                                                     "pinned one, or the log's /log-key on first use)")
    c.add_argument("--trust-tsa", action="append", default=[], metavar="ROOT.pem",
                   help="a TSA root certificate to check anchors with (default: the log's local TSA root, pinned "
                        "on first use); repeatable")
    c.add_argument("--timeout", type=_seconds, default=15.0, help="seconds per request (default 15)")
    lk = n.add_parser("lookup", help="is a document in the log: its entry and trusted time")
    lk.add_argument("--log", required=True, help="the log's address")
    lk.add_argument("--sha256", required=True, help="the document's SHA-256, 64 hex digits (sha256sum FILE)")
    lk.add_argument("--log-key", metavar="VKEY", help="the log's verifier key, or a file holding it")
    lk.add_argument("--state", type=Path, help="a `notary check` state folder: its pinned log key and TSA roots")
    lk.add_argument("--trust-tsa", action="append", default=[], metavar="ROOT.pem", help="a TSA root; repeatable")
    lk.add_argument("--api-key", help="an API key of the entry's tenant: ask the log for the earliest anchored "
                                      "checkpoint holding the entry (default: the latest anchored, from public routes)")
    lk.add_argument("--timeout", type=_seconds, default=15.0, help="seconds per request (default 15)")
    return p


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535)")
    return int(text)


_seconds = offline.ranged(float, 0, 3600, "a number of seconds more than 0 and at most 3600", above=True)


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if not args_in or args_in[0] not in OWN:
        try:
            return offline.main(args_in)
        except SystemExit:
            if not args_in or args_in[0] in ("-h", "--help"):
                print(MORE_HELP, file=sys.stdout if args_in else sys.stderr)
            raise
    args = _parser().parse_args(args_in)
    try:
        return _run(args)
    except VerificationError as e:
        print(f"NOT VERIFIED ({e.code}): {e}", flush=True)
        return 1
    except (NotaryError, OSError, ValueError) as e:
        print(f"verifier: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 2


def _say(line: str) -> None:
    print(line, flush=True)


def _read_files(paths: list[str]) -> list[bytes]:
    out = []
    for p in paths:
        data = Path(p).read_bytes()
        if len(data) > 1 << 20:
            raise ValueError(f"{p} is larger than 1 MiB; a key or a root certificate is a few KiB")
        out.append(data)
    return out


def _run(args: argparse.Namespace) -> int:
    from notary._http import LogClient

    if args.tool == "witness":
        return _serve(args)
    if args.command == "check":
        from notary.check import Check

        client = LogClient(args.log, timeout_s=args.timeout)
        return Check(client, args.state, key=args.log_key, roots=_read_files(args.trust_tsa), full=args.full,
                     say=_say).run()
    from notary.lookup import Lookup

    client = LogClient(args.log, timeout_s=args.timeout, api_key=args.api_key)
    return Lookup(client, args.sha256, key=args.log_key, state=args.state, roots=_read_files(args.trust_tsa),
                  say=_say).run()


def _serve(args: argparse.Namespace) -> int:
    from notary.trust import parse_key
    from notary.witness import Witness, serve
    from verifier.note import CosignatureSigner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signer = CosignatureSigner.from_key_file(_read_files([args.key])[0])
    keys = [parse_key(Path(k).read_text() if Path(k).is_file() else k, "--log-key") for k in args.log_key]
    witness = Witness(signer, keys, args.state)

    def ready(url: str) -> None:
        held = ", ".join(f"{o} (size {witness.size_of(o)})" for o in witness.keys)
        print(f"witness {signer.verifier.name} listening on {url}/add-checkpoint for {held}", flush=True)
        print(f"its verifier key: {signer.verifier.to_string()}", flush=True)

    serve(witness, args.host, args.port, ready=ready)
    print("witness stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
