"""`ledger serve`: run the portal on one port."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from ledger.core import Ledger
from portal.app import create_app


def serve(home: Path, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ledger = Ledger.open(home)
    app = create_app(ledger)

    async def close_ledger(app: web.Application) -> None:
        ledger.close()

    app.on_cleanup.append(close_ledger)
    h = host or ledger.config.host
    p = port or ledger.config.port
    print(f"serving {ledger.config.origin} at http://{h}:{p}/ (entries: {ledger.log.size})", flush=True)
    web.run_app(app, host=h, port=p, print=None)
