"""The `ledger` console script: the ledger's CLI plus `serve`, which needs the portal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ledger import cli


def _serve(home: Path, args: argparse.Namespace) -> None:
    from portal.serving.server import serve

    serve(home, host=args.host, port=args.port, workers=args.workers)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, serve=_serve)


if __name__ == "__main__":
    sys.exit(main())
