"""The portal's C2SP log endpoints over HTTP: /checkpoint, /log-key, /tile/<L>/<N>[.p/<W>], /tile/entries/<N>.

A real ledger of 300 entries (one full tile and a partial one at level 0, a partial level-1 tile) is
served by `create_app` through aiohttp's test client. Responses must be byte-exact with the log,
cacheable as the spec says, and errors must have the one JSON shape. Finally a client rebuilds
the checkpoint's root and an inclusion proof from fetched tiles alone, with verifier.merkle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ledger.envelopes.core import Ledger
from portal.app import create_app
from verifier.checkpoint import verify_checkpoint
from verifier.merkle import (
    complete_subtrees,
    fold_right,
    inclusion_ranges,
    leaf_hash,
    root_of_hashes,
    verify_inclusion,
)
from verifier.note import Ed25519Verifier
from verifier.tiles import tile_path

N = 300
W = N - 256  # width of the partial level-0 tile
Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def _clock() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _created(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"type": "envelope.created", "envelope": f"env-{i}", "title": f"Contract {i}"}
            for i in range(start, start + n)]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    led = Ledger.init(tmp_path_factory.mktemp("portal") / "home", clock=_clock)
    led.append("tenant", _created(N))  # one request, one checkpoint
    assert led.log.size == N
    yield led
    led.close()


@pytest.fixture
async def client(aiohttp_client: Client, ledger: Ledger) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(ledger))


def _leaves(ledger: Ledger, start: int, end: int) -> bytes:
    return b"".join(leaf_hash(ledger.log.entry(i)) for i in range(start, end))


def _bundle(entries: list[bytes]) -> bytes:
    return b"".join(len(e).to_bytes(2, "big") + e for e in entries)


def _assert_security_headers(headers: Any) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp and "form-action 'self'" in csp


async def _assert_json_error(resp: Any, status: int = 404) -> dict[str, Any]:
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    _assert_security_headers(resp.headers)
    return body["error"]


async def test_checkpoint_is_the_latest_and_verifies(client: TestClient[Any, Any], ledger: Ledger) -> None:
    """/checkpoint serves the latest signed checkpoint byte for byte, text/plain utf-8, barely cacheable."""
    resp = await client.get("/checkpoint")
    assert resp.status == 200
    text = await resp.text()
    assert text == ledger.log.latest_checkpoint
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "no-cache" in resp.headers["Cache-Control"] or "max-age" in resp.headers["Cache-Control"]
    assert "immutable" not in resp.headers["Cache-Control"]
    signed = verify_checkpoint(text, ledger.log.signer.verifier)
    assert signed.checkpoint.size == N
    assert signed.checkpoint.root == root_of_hashes([leaf_hash(ledger.log.entry(i)) for i in range(N)])
    _assert_security_headers(resp.headers)


async def test_log_key_is_the_verifier_key(client: TestClient[Any, Any], ledger: Ledger) -> None:
    """/log-key serves the log's verifier key string; it matches the key that signs /checkpoint."""
    resp = await client.get("/log-key")
    assert resp.status == 200
    vkey = (await resp.text()).strip()
    assert vkey == ledger.verifier_key
    key = Ed25519Verifier.from_string(vkey)
    assert key == ledger.log.signer.verifier
    assert key.name == ledger.log.origin
    checkpoint = await (await client.get("/checkpoint")).text()
    assert verify_checkpoint(checkpoint, key).checkpoint.size == N


async def test_full_level0_tile(client: TestClient[Any, Any], ledger: Ledger) -> None:
    """/tile/0/000 is the 256 leaf hashes of entries 0..255 (8192 bytes), cacheable forever."""
    resp = await client.get("/tile/0/000")
    assert resp.status == 200
    body = await resp.read()
    assert len(body) == 8192
    assert body == _leaves(ledger, 0, 256)
    assert body == ledger.log.tile(0, 0)[0]
    assert resp.content_type == "application/octet-stream"
    assert "immutable" in resp.headers["Cache-Control"]
    _assert_security_headers(resp.headers)


async def test_partial_level0_tile(client: TestClient[Any, Any], ledger: Ledger) -> None:
    """/tile/0/001.p/W (W = size mod 256) is the leaf hashes of entries 256..size; a narrower W is a prefix."""
    resp = await client.get(f"/tile/0/001.p/{W}")
    assert resp.status == 200
    assert await resp.read() == _leaves(ledger, 256, N)
    assert "immutable" in resp.headers["Cache-Control"], "a path names one width of one tile: it never changes"
    resp = await client.get("/tile/0/001.p/10")  # a log may serve or 404 a narrower partial tile
    assert resp.status in (200, 404)
    if resp.status == 200:
        assert await resp.read() == _leaves(ledger, 256, 266)


async def test_level1_partial_tile(client: TestClient[Any, Any], ledger: Ledger) -> None:
    """/tile/1/000.p/1 holds one hash: the Merkle Tree Hash of the full level-0 tile 0."""
    resp = await client.get("/tile/1/000.p/1")
    assert resp.status == 200
    body = await resp.read()
    assert body == root_of_hashes([leaf_hash(ledger.log.entry(i)) for i in range(256)])


async def test_entry_bundles(client: TestClient[Any, Any], ledger: Ledger) -> None:
    """/tile/entries/000 and /tile/entries/001.p/W are the entries with big-endian uint16 length prefixes."""
    resp = await client.get("/tile/entries/000")
    assert resp.status == 200
    body = await resp.read()
    assert body == _bundle(ledger.log.entries(0, 256))
    assert body == _bundle([ledger.log.entry(i) for i in range(256)])
    assert "immutable" in resp.headers["Cache-Control"]
    assert resp.headers.get("Content-Encoding") == "gzip", "entry bundles are compressed for a client that accepts it"
    plain = await client.get("/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and await plain.read() == body
    # Decode the bundle as a client would, and check it against level 0.
    entries, pos = [], 0
    while pos < len(body):
        n = int.from_bytes(body[pos : pos + 2], "big")
        entries.append(body[pos + 2 : pos + 2 + n])
        pos += 2 + n
    assert pos == len(body) and len(entries) == 256
    assert b"".join(leaf_hash(e) for e in entries) == await (await client.get("/tile/0/000")).read()
    resp = await client.get(f"/tile/entries/001.p/{W}")
    assert resp.status == 200
    assert await resp.read() == _bundle([ledger.log.entry(i) for i in range(256, N)])


@pytest.mark.parametrize(
    "path",
    [
        f"/tile/0/001.p/{W + 1}",  # wider than the log
        "/tile/0/001",  # the full tile does not exist yet
        "/tile/0/002.p/1",
        "/tile/1/000",
        "/tile/1/000.p/2",
        "/tile/2/000.p/1",  # empty tiles are never served
        f"/tile/entries/001.p/{W + 1}",
        "/tile/entries/001",
        "/tile/entries/002.p/1",
        "/tile/0/x001/000",
    ],
)
async def test_tiles_beyond_the_log_are_404_json(client: TestClient[Any, Any], path: str) -> None:
    """A tile or bundle the published tree does not have is a 404 in the error JSON shape."""
    await _assert_json_error(await client.get(path))


@pytest.mark.parametrize(
    "path",
    [
        "/tile/01/000",
        "/tile/64/000",
        "/tile/0/0",
        "/tile/0/1234",
        "/tile/0/001/000",
        "/tile/0/x001",
        "/tile/0/000.p/0",
        "/tile/0/000.p/256",
        "/tile/0/000.p/007",
        "/tile/x/000",
        "/tile/entries",
        "/tile/0/000/",
        "/tile/0/%C2%B2",
        "/tile/%C2%B2/000",  # SUPERSCRIPT TWO: str.isdigit() but not a decimal digit
        "/tile/%D9%A3/000",  # ARABIC-INDIC DIGIT THREE
        "/tile/0/000.p/%D9%A3",
    ],
)
async def test_garbage_tile_paths_are_404_json(client: TestClient[Any, Any], path: str) -> None:
    """A path that is not a canonical tile path is a 404 in the error JSON shape, never a 500 or a tile."""
    err = await _assert_json_error(await client.get(path))
    assert "tile" in err["message"]


async def test_unknown_route_has_the_same_error_shape(client: TestClient[Any, Any]) -> None:
    """Errors outside the tile routes use the same JSON shape and security headers."""
    await _assert_json_error(await client.get("/no-such-page"))


async def test_security_headers_on_every_response(client: TestClient[Any, Any]) -> None:
    """nosniff, no-referrer and a CSP forbidding framing are on success and error responses alike."""
    for path in ("/checkpoint", "/log-key", "/tile/0/000", "/tile/entries/000", "/healthz", "/tile/9/000"):
        resp = await client.get(path)
        _assert_security_headers(resp.headers)


async def _fetch_hash_range(client: TestClient[Any, Any], size: int, start: int, end: int,
                            cache: dict[str, bytes]) -> bytes:
    """The Merkle Tree Hash of leaves [start, end) of a tree of `size`, from tiles only."""
    subtrees = []
    for level, index in complete_subtrees(start, end):
        tl, r = divmod(level, 8)
        first = index << r  # position of the subtree's first hash in tile level tl
        tile_index = first >> 8
        available = (size >> (8 * tl)) - tile_index * 256
        width = min(256, available)
        path = "/" + tile_path(tl, tile_index, width)
        if path not in cache:
            resp = await client.get(path)
            assert resp.status == 200, path
            cache[path] = await resp.read()
            assert len(cache[path]) == 32 * width
        tile = cache[path]
        off = first & 255
        hashes = [tile[32 * k : 32 * k + 32] for k in range(off, off + (1 << r))]
        subtrees.append(root_of_hashes(hashes))
    return fold_right(subtrees)


async def test_client_rebuilds_root_and_proofs_from_tiles(client: TestClient[Any, Any], ledger: Ledger) -> None:
    """A client with only /checkpoint, /log-key and tiles gets the checkpoint's root and verifies inclusion."""
    key = Ed25519Verifier.from_string(await (await client.get("/log-key")).text())
    text = await (await client.get("/checkpoint")).text()
    cp = verify_checkpoint(text, key).checkpoint
    cache: dict[str, bytes] = {}
    assert await _fetch_hash_range(client, cp.size, 0, cp.size, cache) == cp.root
    assert set(cache) == {"/tile/1/000.p/1", f"/tile/0/001.p/{W}"}
    bundles = {}
    for index in (0, 1, 127, 255, 256, 257, 299):
        bpath = "/" + tile_path(None, index // 256, min(256, cp.size - index // 256 * 256))
        if bpath not in bundles:
            bundles[bpath] = await (await client.get(bpath)).read()
        data, pos, entries = bundles[bpath], 0, []
        while pos < len(data):
            n = int.from_bytes(data[pos : pos + 2], "big")
            entries.append(data[pos + 2 : pos + 2 + n])
            pos += 2 + n
        entry = entries[index % 256]
        proof = [await _fetch_hash_range(client, cp.size, a, b, cache) for a, b in inclusion_ranges(index, cp.size)]
        assert proof == list(ledger.prove(index).hashes)
        verify_inclusion(index, cp.size, leaf_hash(entry), proof, cp.root)


async def test_published_tiles_never_change_as_the_log_grows(aiohttp_client: Client, tmp_path: Path) -> None:
    """Tiles and bundles of a published tree are immutable: the same bytes after later appends."""
    led = Ledger.init(tmp_path / "home", clock=_clock)
    try:
        led.append("t", _created(N))
        client = await aiohttp_client(create_app(led))
        paths = ["/tile/0/000", f"/tile/0/001.p/{W}", "/tile/1/000.p/1", "/tile/entries/000",
                 f"/tile/entries/001.p/{W}"]
        before = {p: await (await client.get(p)).read() for p in paths}
        led.append("t", _created(10, start=N))
        for p in paths:
            resp = await client.get(p)
            assert resp.status == 200, p
            assert await resp.read() == before[p], p
        resp = await client.get(f"/tile/0/001.p/{W + 10}")
        assert resp.status == 200
        assert (await resp.read())[: 32 * W] == before[f"/tile/0/001.p/{W}"]
    finally:
        led.close()


async def test_entry_bundles_say_that_their_bytes_depend_on_accept_encoding(client: TestClient[Any, Any]) -> None:
    """A bundle is gzip for one client and plain for another, under the same immutable URL: every answer
    carries `Vary: Accept-Encoding`, so no cache hands the gzip bytes to a client that never asked."""
    for path in ("/tile/entries/000", f"/tile/entries/001.p/{W}"):
        for accept in ("gzip, deflate", "identity", ""):
            resp = await client.get(path, headers={"Accept-Encoding": accept})
            assert resp.status == 200
            assert "immutable" in resp.headers["Cache-Control"]
            vary = {v.strip().lower() for v in resp.headers.get("Vary", "").split(",")}
            assert "accept-encoding" in vary, (path, accept, resp.headers.get("Vary"))


async def test_a_consistency_proof_is_only_between_published_sizes(aiohttp_client: Client, tmp_path: Path) -> None:
    """Checkpoints of sizes 10, 20 and 25: a proof between two of them verifies; a size in between that
    no checkpoint was published at is refused, 404 `unpublished_size`, as the README says."""
    import base64

    from verifier.merkle import verify_consistency

    led = Ledger.init(tmp_path / "home", clock=_clock)
    try:
        for start, n in ((0, 10), (10, 10), (20, 5)):
            led.append("t", _created(n, start))  # one request, one checkpoint
        client = await aiohttp_client(create_app(led))
        for old, new in ((10, 20), (10, 25), (20, 25), (25, 25)):
            resp = await client.get(f"/proof/consistency/{old}/{new}")
            assert resp.status == 200, (old, new, await resp.text())
            proof = [base64.b64decode(line) for line in (await resp.text()).splitlines()]
            verify_consistency(old, new, led.log.root_at(old), led.log.root_at(new), proof)
        for old, new in ((5, 20), (10, 15), (15, 25), (3, 20), (11, 11)):
            err = await _assert_json_error(await client.get(f"/proof/consistency/{old}/{new}"))
            assert err["code"] == "unpublished_size", (old, new, err)
            assert "published no checkpoint of size" in err["message"]
        err = await _assert_json_error(await client.get("/proof/consistency/10/300"))  # beyond the log
        assert err["code"] == "bad_size"
    finally:
        led.close()
