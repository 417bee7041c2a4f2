"""Subprocess entry point: `python -m bench.worker SPEC_JSON` runs one task of one measured system.

The spec names the system, the task and a `result` path; the task's figures are written there as
JSON. Each system's module is imported only in its own process.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

TASKS = {
    ("ours", "build"): ("bench.ours", "build"),
    ("ours", "proofs"): ("bench.ours", "proofs"),
    ("ours", "first_proof"): ("bench.ours", "first_proof"),
    ("ours", "group_commit"): ("bench.ours", "group_commit"),
    ("pymerkle", "build"): ("bench.peers", "pymerkle_build"),
    ("pymerkle", "proofs"): ("bench.peers", "pymerkle_proofs"),
    ("pymerkle", "first_proof"): ("bench.peers", "pymerkle_first_proof"),
    ("merkletools", "build"): ("bench.peers", "merkletools_build"),
}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    module, name = TASKS[(spec["system"], spec["task"])]
    result = getattr(importlib.import_module(module), name)(spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
