"""Random requests to every route of the OpenAPI document: never a 5xx, always the one error shape."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger
from portal.api.openapi import DOCUMENT
from portal.app import create_app
from tests.envelopes.test_lifecycle import completed

ROUTES = [(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops]
EVENT_TYPES = ["envelope.created", "document.added", "party.added", "envelope.sent", "party.signed",
               "copy.printed", "void.requested", "nope"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=True),
                    st.text(max_size=30))
values = st.recursive(scalars, lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(max_size=8), k,
                                                                                   max_size=4), max_leaves=12)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(EVENT_TYPES), "envelope": st.sampled_from(["E1", "E2", "", "x" * 70, "a b"])},
    optional={"title": values, "document": values, "party": values, "role": values, "name": values,
              "sha256": values, "size": values, "order": values, "channel": values, "signed_sha256": values})
bodies = st.one_of(values.map(lambda v: json.dumps(v).encode()), events.map(lambda e: json.dumps(e).encode()),
                   st.lists(events, max_size=4).map(lambda e: json.dumps(e).encode()), st.binary(max_size=64))
segments = st.one_of(st.sampled_from(["E1", "E2", "0", "1", "99999999999", "-1", "%2e%2e", "a.b"]),
                     st.text(alphabet="abcXYZ019-_.:%", min_size=1, max_size=12))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, TestClient[Any, Any],
                                                                      str, Ledger]]:
    led = Ledger.init(tmp_path_factory.mktemp("fuzz") / "home")
    led.append("t", completed("E1"))
    key = create_key(led.log, "t", ["admin"])
    loop = asyncio.new_event_loop()
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(led, anchor=False, lookup_rate=0)), loop=loop)
    loop.run_until_complete(client.start_server())
    yield loop, client, key, led
    loop.run_until_complete(client.close())
    loop.close()
    led.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), seg=segments, body=bodies, authed=st.booleans(),
       ctype=st.sampled_from(["application/json", "application/pdf", "text/plain"]))
def test_no_5xx_anywhere(server: Any, route: tuple[str, str], seg: str, body: bytes, authed: bool,
                         ctype: str) -> None:
    loop, client, key, led = server
    method, path = route
    url = re.sub(r"\{[^}]+\}", seg, path)
    headers = {"Content-Type": ctype, **({"Authorization": f"Bearer {key}"} if authed else {})}

    async def go() -> tuple[int, bytes]:
        r = await client.request(method, url, data=body if method == "POST" else None, headers=headers)
        return r.status, await r.read()

    status, raw = loop.run_until_complete(go())
    assert status < 500, (method, url, body[:80], raw[:300])
    if status >= 400:
        err = json.loads(raw)
        assert set(err) == {"error"} and {"code", "message"} <= set(err["error"]), raw[:200]


def test_audit_passes_after_fuzzing(server: Any) -> None:
    from ledger.audit.run import audit

    assert audit(server[3].log).ok
