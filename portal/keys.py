"""Typed application keys shared by the portal's route modules."""

from __future__ import annotations

from aiohttp import web

from ledger.core import Ledger

LEDGER = web.AppKey("ledger", Ledger)
