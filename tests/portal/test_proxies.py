"""Behind a reverse proxy: with `trusted_proxies`, rate limits count the client the proxy saw
(X-Forwarded-For); without it, or from anyone else, the header changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.errors import LedgerError
from portal.app import create_app
from portal.ratelimit import client_bucket, client_ip, networks

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
PROXIES = networks(["10.0.0.0/8", "2001:db8::/32"])


class _Request:
    transport = None

    def __init__(self, remote: str, *forwarded: str) -> None:
        self.remote = remote
        self.headers = CIMultiDict([("X-Forwarded-For", f) for f in forwarded])


def ip(remote: str, *forwarded: str, proxies: Any = PROXIES) -> str:
    return client_ip(cast(web.Request, _Request(remote, *forwarded)), proxies)


def test_the_client_is_the_last_address_no_trusted_proxy_wrote() -> None:
    assert ip("10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert ip("10.0.0.5", "198.51.100.1, 203.0.113.7, 10.0.0.9") == "203.0.113.7", "a proxy chain"
    assert ip("10.0.0.5", "198.51.100.1", "203.0.113.7") == "203.0.113.7", "the header twice"
    assert ip("2001:db8::5", " 2001:DB8:1::7 ") == "2001:db8:1::7", "IPv6, normalised"
    assert ip("10.0.0.5", "10.1.1.1, 10.2.2.2") == "10.1.1.1", "only proxies: where it began"


def test_what_no_trusted_proxy_wrote_counts_for_nothing() -> None:
    assert ip("203.0.113.7", "198.51.100.1") == "203.0.113.7", "a client sending the header itself"
    assert ip("10.0.0.5", "not-an-address") == "10.0.0.5", "garbage: the proxy's own address"
    assert ip("10.0.0.5", "unknown, 203.0.113.7") == "203.0.113.7"
    assert ip("10.0.0.5") == "10.0.0.5", "a trusted proxy that sent no header"
    assert ip("10.0.0.5", "203.0.113.7", proxies=()) == "10.0.0.5", "no trusted proxies configured"


def test_the_setting_is_checked(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('trusted_proxies = ["10.0.0.0/8", "::1"]\n')
    assert load_config(tmp_path).trusted_proxies == ("10.0.0.0/8", "::1")
    for bad, says in (('["10.0.0.300"]', "does not appear to be an IPv4 or IPv6"),
                      ('"10.0.0.1"', "must be a list"), ("[10]", "must be a list")):
        (tmp_path / "config.toml").write_text(f"trusted_proxies = {bad}\n")
        with pytest.raises(LedgerError, match=says):
            load_config(tmp_path)


def test_an_ipv6_client_takes_the_bucket_of_its_64() -> None:
    """Within its /64 a client picks any address it likes: a bucket per address would be no limit."""
    assert client_bucket("2001:db8:1:2:aaaa::1") == client_bucket("2001:db8:1:2:bbbb:cccc:dddd:eeee") \
        == "2001:db8:1:2::/64"
    assert client_bucket("2001:db8:1:3::1") != client_bucket("2001:db8:1:2::1"), "the next /64 is someone else"
    assert client_bucket("203.0.113.7") == "203.0.113.7" != client_bucket("203.0.113.8"), "IPv4: by address"
    assert client_bucket("::ffff:203.0.113.7") == "203.0.113.7", "an IPv4 client seen over IPv6"
    assert client_bucket("unknown") == "unknown"


async def test_rate_limits_count_the_forwarded_client(aiohttp_client: Client, tmp_path: Path) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    cfg = home / "config.toml"
    assert "trusted_proxies = []" in cfg.read_text(), "a new ledger's config shows the setting"
    cfg.write_text(cfg.read_text().replace("trusted_proxies = []", 'trusted_proxies = ["127.0.0.1"]'))
    led = Ledger.open(home)
    try:
        client = await aiohttp_client(create_app(led, anchor=False, lookup_rate=0.01, lookup_burst=2))
        d = "/d/" + "0" * 64

        async def status(forwarded: str | None) -> int:
            r = await client.get(d, headers={"X-Forwarded-For": forwarded} if forwarded else {})
            return r.status

        assert [await status("203.0.113.1") for _ in range(3)] == [200, 200, 429]
        assert [await status("203.0.113.2") for _ in range(2)] == [200, 200], "another client behind the proxy"
        assert await status("198.51.100.9, 203.0.113.1") == 429, "what the client wrote itself is not trusted"
    finally:
        led.close()

    cfg.write_text(cfg.read_text().replace('trusted_proxies = ["127.0.0.1"]', "trusted_proxies = []"))
    led = Ledger.open(home)  # the same, with no proxy trusted: one bucket for all
    try:
        client = await aiohttp_client(create_app(led, anchor=False, lookup_rate=0.01, lookup_burst=2))
        statuses = [(await client.get("/d/" + "0" * 64, headers={"X-Forwarded-For": f"203.0.113.{k}"})).status
                    for k in range(3)]
        assert statuses == [200, 200, 429], "without trusted proxies the header must not split the bucket"
    finally:
        led.close()
