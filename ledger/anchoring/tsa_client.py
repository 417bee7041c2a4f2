"""Clients for the time-stamping authorities that anchor checkpoints (DESIGN.md §5).

What it does: ask a TSA for an RFC 3161 time-stamp over some data (a checkpoint body, or a token
being renewed) and return it only after `verifier.timestamp.verify_timestamp` accepted it: the
imprint is SHA-256 of that data, the nonce is the one sent, the chain reaches one of the TSA's
configured roots at genTime, the EKU timeStamping is critical, genTime is near our clock, and, if
configured, the policy matches (RFC 3161 §2.4.1, §2.4.2). Two kinds:

- `LocalTsaClient`: the embedded local TSA (`ledger.anchoring.tsa`), called in-process, named `local`. It is
  not accredited, and everything that reports on it says so.
- `HttpTsaClient`: a configured TSA over HTTP (RFC 3161 §3.4), through pyHanko's aiohttp
  time-stamp client, with optional basic auth, extra headers and a timeout.

What it does not do: schedule, retry or store (`ledger.anchoring.anchor` does), or fetch revocation data.
Errors: a TSA that cannot be reached or answers HTTP errors raises `TsaUnavailableError` (a
`StorageError`: could not get the data); a token that fails a check raises
`verifier.errors.TimestampError` (untrustworthy data). The anchoring loop counts both as failures.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, cast

import aiohttp
from asn1crypto import tsp

from ledger.anchoring.tsa import LocalTsa, build_request
from ledger.clock import Clock
from ledger.config import LOCAL_TSA_NAME, TsaConfig, read_cert
from ledger.errors import StorageError
from verifier._cms import quiet_pyhanko
from verifier.anchored import certificate_expiry
from verifier.errors import TimestampError
from verifier.timestamp import token_from_response, verify_timestamp

with quiet_pyhanko():
    from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper

# How far a TSA's genTime may sit outside [request sent, answer received] by our clock.
CLOCK_TOLERANCE = timedelta(minutes=5)
MAX_RESPONSE_BYTES = 1 << 20


class TsaUnavailableError(StorageError):
    """The TSA could not be reached, timed out or answered with an HTTP error: no token."""

    code = "tsa_unavailable"


@dataclass(frozen=True)
class Stamp:
    """A verified time-stamp: the DER TimeStampToken and what was read from it."""

    tsa: str
    token: bytes
    gen_time: datetime
    serial: int
    cert_expires: datetime


class TsaClient(Protocol):
    name: str
    local: bool
    description: str

    async def stamp(self, data: bytes) -> Stamp: ...


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC, milliseconds unless the time is finer (`2026-11-27T18:00:00.123Z`)."""
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def request_for(data: bytes, policy: str) -> tuple[int, bytes]:
    """A DER TimeStampReq for SHA-256(data) with a fresh random 64-bit nonce and certReq set."""
    nonce = secrets.randbits(64) | 1 << 63  # a fixed width, so it never encodes short
    return nonce, build_request(data, nonce=nonce, cert_req=True, policy=policy or None)


class _Verifying:
    """Checks answers on behalf of a client; verification runs in a thread (it is CPU work)."""

    name: str
    policy: str
    roots: list[bytes]
    extra_certs: list[bytes]
    clock: Clock

    async def _accept(self, response: bytes, data: bytes, nonce: int, sent: datetime) -> Stamp:
        window = (sent - CLOCK_TOLERANCE, self.clock() + CLOCK_TOLERANCE)

        def check() -> Stamp:
            report = verify_timestamp(response, data=data, trusted_roots=self.roots, nonce=nonce,
                                      policy=self.policy or None, now_window=window,
                                      extra_certs=self.extra_certs).require_valid()
            assert report.gen_time is not None and report.serial is not None
            assert report.signer_cert_der is not None
            return Stamp(self.name, token_from_response(response), report.gen_time, report.serial,
                         certificate_expiry(report.signer_cert_der))

        try:
            return await asyncio.to_thread(check)
        except TimestampError as e:
            raise TimestampError(f"TSA {self.name!r} sent a token that fails verification: {e}",
                                 code=e.code) from e


class LocalTsaClient(_Verifying):
    """The embedded local TSA, called in-process (no HTTP); labelled `local`, not accredited."""

    local = True

    def __init__(self, tsa: LocalTsa, clock: Clock) -> None:
        self.tsa, self.name, self.clock = tsa, LOCAL_TSA_NAME, clock
        self.policy = tsa.policy_oid
        self.roots, self.extra_certs = [tsa.root_der], []
        self.description = f"local TSA, not accredited ({tsa.name})"

    async def stamp(self, data: bytes) -> Stamp:
        nonce, request = request_for(data, self.policy)
        sent = self.clock()
        response = await asyncio.to_thread(self.tsa.respond, request)
        return await self._accept(response, data, nonce, sent)


class HttpTsaClient(_Verifying):
    """A configured TSA over HTTP, via pyHanko's aiohttp client sharing one session."""

    local = False

    def __init__(self, config: TsaConfig, home: Path, session: aiohttp.ClientSession, clock: Clock) -> None:
        self.name, self.policy, self.clock = config.name, config.policy, clock
        self.timeout = config.timeout_s
        self.roots = [read_cert(home, p, config.name) for p in config.roots]
        self.extra_certs = [read_cert(home, p, config.name) for p in config.certs]
        self.description = f"TSA at {config.url}"
        auth = aiohttp.BasicAuth(config.username, config.password_value()) if config.username else None
        self._stamper = HTTPTimeStamper(config.url, timeout=config.timeout_s, auth=auth,
                                        headers=dict(config.headers), session=session)

    async def stamp(self, data: bytes) -> Stamp:
        nonce, request = request_for(data, self.policy)
        sent = self.clock()
        try:
            # pyHanko's timeout covers the HTTP exchange; this one also covers a stalled body.
            async with asyncio.timeout(self.timeout + 1):
                answer = await self._stamper.async_request_tsa_response(tsp.TimeStampReq.load(request))
            response = cast(bytes, answer.dump())
        except (OSError, TimeoutError) as e:  # pyHanko's TimestampRequestError is an OSError
            cause = e.__cause__ or e
            detail = str(cause) or f"no answer within {self.timeout:g} s"
            raise TsaUnavailableError(f"TSA {self.name!r} ({self._stamper.url}) did not answer: "
                                      f"{type(cause).__name__}: {detail}") from e
        except Exception as e:  # an answer asn1crypto cannot even frame
            raise TimestampError(f"TSA {self.name!r} answered with bytes that are not a TimeStampResp: {e}",
                                 code="malformed") from e
        if len(response) > MAX_RESPONSE_BYTES:
            raise TimestampError(f"TSA {self.name!r} answered {len(response)} bytes", code="malformed")
        return await self._accept(response, data, nonce, sent)
