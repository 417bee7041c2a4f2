"""`python -m bench COMMAND [options]`; commands: `log`, `anchor`, `portal`, ... (see the modules of the same
names; `tiles` and `scale` are in `bench.scale`)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"log": "bench.log", "anchor": "bench.anchor", "portal": "bench.portal", "documents": "bench.documents",
            "tiles": "bench.scale.tiles", "evidence": "bench.evidence", "scale": "bench.scale.run"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m bench {{{','.join(COMMANDS)}}} [options]  (--help after a command)", file=sys.stderr)
        return 2
    return int(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
