"""Child process for the crash test: appends forever and prints every acknowledgement as it arrives."""

from __future__ import annotations

import json
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ledger.envelopes.core import Ledger
from tests.envelopes.test_lifecycle import completed


def main() -> None:
    home, tag = Path(sys.argv[1]), sys.argv[2]
    led = Ledger.open(home)
    k = 0
    pending: list[Future[Any]] = []
    while True:
        for _ in range(8):  # several requests in flight: group commits
            pending.append(led.submit("crash", completed(f"{tag}-{k}")))
            k += 1
        for fut in pending:
            for ack in fut.result():
                print(json.dumps({"index": ack["index"], "leaf": ack["leaf_hash"]}), flush=True)
        pending = []


if __name__ == "__main__":
    main()
