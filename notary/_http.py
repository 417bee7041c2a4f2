"""Asking a log over HTTP: urllib with a timeout on every request and a size limit on every answer.

Whatever goes wrong on the way is a `FetchError` (could not get the data) that names the address and
what to do; what the answer says is judged by the caller, with `verifier`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from notary.errors import FetchError

TIMEOUT_S = 15.0
USER_AGENT = "evidence-ledger-notary/1"


def check_base_url(url: str) -> str:
    """A log's base address (`http(s)://host[:port][/prefix]`), without its trailing slash."""
    try:
        u = urlsplit(url)
        u.port  # noqa: B018  # raises on a port that is no number
    except ValueError as e:
        raise ValueError(f"--log {url!r} is not a URL ({e})") from None
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment:
        raise ValueError(f"--log {url!r} must be an http:// or https:// address, like https://log.example.com")
    return url.rstrip("/")


class LogClient:
    """The public routes of one log."""

    def __init__(self, base_url: str, *, timeout_s: float = TIMEOUT_S, api_key: str | None = None) -> None:
        self.base = check_base_url(base_url)
        self.timeout = timeout_s
        self.api_key = api_key

    def get(self, path: str, limit: int, *, accept: str | None = None, auth: bool = False) -> bytes:
        """The body of `GET <base><path>`, at most `limit` bytes.

        Raises:
            FetchError: the log cannot be reached, is too slow, answers an HTTP error or too much.
        """
        url = self.base + path
        headers = {"User-Agent": USER_AGENT}
        if accept:
            headers["Accept"] = accept
        if auth and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310  # http(s) only
                body: bytes = resp.read(limit + 1)
        except urllib.error.HTTPError as e:
            detail = _error_detail(e)
            raise FetchError(f"{url}: HTTP {e.code}{': ' + detail if detail else ''}", status=e.code) from None
        except TimeoutError:
            raise FetchError(f"{url}: no answer within {self.timeout:g} s; try again later") from None
        except urllib.error.URLError as e:
            raise FetchError(f"cannot reach the log at {self.base} ({e.reason}); check --log and that the log "
                             "is up") from None
        except (OSError, ValueError) as e:  # a connection cut mid-answer, a malformed answer
            raise FetchError(f"{url}: {e}") from None
        if len(body) > limit:
            raise FetchError(f"{url}: the answer is larger than {limit} bytes; this is not what the route serves")
        return body

    def text(self, path: str, limit: int) -> str:
        body = self.get(path, limit)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise FetchError(f"{self.base}{path}: the answer is not UTF-8 text") from None

    def json(self, path: str, limit: int, *, auth: bool = False) -> Any:
        body = self.get(path, limit, accept="application/json", auth=auth)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(f"{self.base}{path}: the answer is not JSON") from None


def _error_detail(e: urllib.error.HTTPError) -> str:
    """The message of the portal's JSON error shape, or the start of a text answer."""
    try:
        raw = e.read(4096)
    except OSError:
        return ""
    try:
        err = json.loads(raw)["error"]
        return f"{err['code']}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace").strip()[:200]
