"""Tiles as files (`ledger.storage.publish`), served by Debian's nginx with `deploy/nginx/tiles.conf`.

A log of 70,000 entries (273 full level-0 tiles and entry bundles, a full level-1 tile, partial tiles at
levels 0, 1 and 2) is published to a folder. Every file must be byte for byte what the portal's
`/tile/...` and `/checkpoint` routes serve; publishing again after appends rewrites nothing; a publish
cut short leaves no partial file at a final name and the next one completes. Then through real nginx:
a C2SP tlog-tiles client of its own (checkpoint signature, every tile and bundle, the root recomputed)
checks the whole log, and the portal with `tiles_url` set redirects full tiles and bundles there.
"""

from __future__ import annotations

import asyncio
import http.client
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from bench.scale.servers import running_nginx
from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.errors import IntegrityError, LedgerError, StorageError
from ledger.storage.publish import TMP_DIR, Publisher, publish_forever, published_size
from portal.app import create_app
from verifier.checkpoint import verify_checkpoint
from verifier.merkle import complete_subtrees, fold_right, leaf_hash, root_of_hashes
from verifier.note import Ed25519Verifier
from verifier.tiles import parse_tile_path, tile_path

N = 70_000
Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def _entries(start: int, count: int) -> list[bytes]:
    return [f"entry {i:07d} ".encode() * 3 for i in range(start, start + count)]


def _grow(led: Ledger, to: int) -> None:
    while led.log.size < to:
        n = min(10_000, to - led.log.size)
        led.log.append_batch(_entries(led.log.size, n))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """A ledger of N raw entries (the tiles do not care what an entry says), shared by the read-only tests."""
    led = Ledger.init(tmp_path_factory.mktemp("publish") / "home")
    _grow(led, N)
    yield led
    led.close()


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.init(tmp_path / "home")
    yield led
    led.close()


def _published(folder: Path) -> dict[str, Path]:
    """Every file at a final name in the folder, by its path relative to it (`.tmp/` and `.lock` are not)."""
    out = {}
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not rel.startswith("."):
            out[rel] = p
    return out


def _log_bytes(led: Ledger, rel: str) -> bytes:
    """What the log holds at a tlog-tiles path (the calls the portal's routes make)."""
    if rel == "checkpoint":
        return led.log.latest_checkpoint.encode()
    tp = parse_tile_path(rel.removeprefix("tile/"))
    if tp.level is None:
        return led.log.entry_bundle(tp.index, tp.width)
    return led.log.tile(tp.level, tp.index, tp.width)[0][: 32 * tp.width]


def _expected_paths(size: int) -> set[str]:
    """The paths a tree of `size` is published at: full tiles and bundles, the right edge, the checkpoint."""
    out = {"checkpoint"}
    level = 0
    while size >> (8 * level):
        have = size >> (8 * level)
        for n in range(have // 256):
            out.add(tile_path(level, n))
            if level == 0:
                out.add(tile_path(None, n))
        if have % 256:
            out.add(tile_path(level, have // 256, have % 256))
            if level == 0:
                out.add(tile_path(None, have // 256, have % 256))
        level += 1
    return out


# ---- the folder ----------------------------------------------------------------------------------------


async def test_every_published_file_is_what_the_portal_serves(big: Ledger, tmp_path: Path,
                                                              aiohttp_client: Client) -> None:
    folder = tmp_path / "tiles"
    with Publisher(big.log, folder) as pub:
        written = pub.publish()
        assert pub.publish() == 0, "nothing new: nothing written"
    files = _published(folder)
    assert set(files) == _expected_paths(N)
    assert written == len(files)
    assert {"tile/1/000", "tile/1/001.p/17", "tile/2/000.p/1", "tile/0/273.p/112"} <= set(files)  # tlog-tiles' example
    client = await aiohttp_client(create_app(big, anchor=False))
    for rel, path in files.items():
        resp = await client.get("/" + rel)
        assert resp.status == 200, rel
        assert await resp.read() == path.read_bytes(), f"{rel} differs from the portal's"
    assert published_size(folder) == N
    assert oct(folder.joinpath("tile/0/000").stat().st_mode & 0o777) == "0o644"


def test_publishing_again_rewrites_nothing(small: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "tiles"
    _grow(small, 600)
    with Publisher(small.log, folder) as pub:
        pub.publish()
        before = {rel: (p.stat().st_ino, p.stat().st_mtime_ns) for rel, p in _published(folder).items()}
        old_checkpoint = (folder / "checkpoint").read_bytes()
        assert "tile/0/002.p/88" in before
        _grow(small, 800)  # tile 0/002 is full now: its partial tiles go
        pub.publish()
    after = _published(folder)
    # and the partial tiles of an older checkpoint stay while their tile is partial (tlog-tiles: a log MUST
    # serve them, and MAY delete them once the full tile is there)
    assert set(after) == _expected_paths(800) | {"tile/1/000.p/2"}
    for rel, (ino, mtime) in before.items():
        if rel == "checkpoint" or ".p/" in rel:
            continue
        st = after[rel].stat()
        assert (st.st_ino, st.st_mtime_ns) == (ino, mtime), f"{rel} was rewritten"
    assert (folder / "checkpoint").read_bytes() != old_checkpoint
    assert (folder / "checkpoint").read_text() == small.log.latest_checkpoint
    assert not (folder / "tile/0/002.p").exists(), "the partial tiles of a tile now full are deleted"
    for rel, p in after.items():
        assert p.read_bytes() == _log_bytes(small, rel), rel


def test_a_publish_cut_short_leaves_no_partial_file_and_the_next_completes(small: Ledger, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "tiles"
    _grow(small, 300)
    with Publisher(small.log, folder) as pub:
        pub.publish()
    first = (folder / "checkpoint").read_text()
    _grow(small, 2000)
    calls = {"n": 0}
    real_fsync = os.fsync

    def power_cut(fd: int) -> None:  # the 5th file is written but neither synced nor renamed
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("power cut")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", power_cut)
    pub = Publisher(small.log, folder)
    with pytest.raises(OSError, match="power cut"):
        pub.publish()
    pub.close()
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert any((folder / TMP_DIR).iterdir()), "the cut left a temporary file"
    assert (folder / "checkpoint").read_text() == first, "the checkpoint moves only after its tiles"
    for rel, p in _published(folder).items():  # at a final name: whole files of the log only
        assert p.read_bytes() == (first.encode() if rel == "checkpoint" else _log_bytes(small, rel)), rel
    with Publisher(small.log, folder) as pub:  # a restart finds where it is from the folder
        assert pub.size == 300
        assert not any((folder / TMP_DIR).iterdir())
        pub.publish()
    files = _published(folder)
    assert set(files) == _expected_paths(2000) | {"tile/1/000.p/1"}  # the first checkpoint's, still partial
    for rel, p in files.items():
        assert p.read_bytes() == _log_bytes(small, rel), rel


def test_a_publisher_behind_the_folder_in_the_same_log_waits_for_its_tree(small: Ledger, tmp_path: Path) -> None:
    """Two hosts sharing one folder take turns at its lock: the one taking over may not have taken in the
    other's last appends yet. Its tree is behind the folder's but in the same database: nothing to do yet,
    and no alarm (a database truly behind the folder is refused: `restored_backup`)."""
    folder = tmp_path / "tiles"
    other = Ledger.open(small.home)  # another writer of the same ledger, as a second host would be
    try:
        _grow(small, 10)
        other.append("t", [{"type": "envelope.created", "envelope": "E1", "title": "t"}])  # it takes in the 10
        _grow(small, 300)
        with Publisher(small.log, folder) as pub:
            pub.publish()
        ahead = published_size(folder)
        assert other.log.size == 11 < ahead == small.log.size
        with Publisher(other.log, folder) as pub:
            assert pub.publish() == 0, "behind the folder: it waits for its tree to catch up"
            assert published_size(folder) == ahead
            other.append("t", [{"type": "envelope.created", "envelope": "E2", "title": "t"}])
            assert pub.publish() > 0 and published_size(folder) == ahead + 1
    finally:
        other.close()


def test_a_folder_of_another_log_or_publisher_is_refused(small: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "tiles"
    _grow(small, 10)
    with Publisher(small.log, folder) as pub:
        pub.publish()
        with pytest.raises(StorageError, match="another process publishes"):
            Publisher(small.log, folder)
    other = Ledger.init(tmp_path / "other")
    try:
        _grow(other, 10)
        with pytest.raises(IntegrityError, match="did not publish"):
            Publisher(other.log, folder)
    finally:
        other.close()
    (folder / "tile/0/000.p/10").write_bytes(b"\0" * 320)  # changed by hand, and the checkpoint lost
    (folder / "checkpoint").unlink()
    with Publisher(small.log, folder) as pub, pytest.raises(IntegrityError, match="not the log's"):
        pub.publish()


async def test_the_writer_retries_a_failing_folder_and_catches_up(small: Ledger, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "tiles"
    folder.write_text("not a folder")  # as a full disk or a folder without permission would, it fails
    _grow(small, 300)
    task = asyncio.create_task(publish_forever(small.log, folder, poll_s=0.01, backoff_max_s=0.05))
    try:
        await _until(lambda: "could not publish tiles" in caplog.text)
        folder.unlink()
        await _until(lambda: published_size(folder) == 300)
        await asyncio.to_thread(_grow, small, 900)  # appends are not held up; the folder follows
        await _until(lambda: published_size(folder) == 900)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    with Publisher(small.log, folder):  # the lock went with the task
        pass


def test_config_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('tiles_folder = "tiles"\ntiles_url = "https://tiles.example.com/log/"\n')
    c = load_config(tmp_path)
    assert (c.tiles_folder, c.tiles_url) == ("tiles", "https://tiles.example.com/log")
    for bad, message in (('tiles_url = "https://tiles.example.com"', "needs tiles_folder"),
                         ('tiles_folder = "."', "folder of its own"),
                         ('tiles_folder = "t"\ntiles_url = "ftp://x"', "tiles_url")):
        cfg.write_text(bad + "\n")
        with pytest.raises(LedgerError, match=message):
            load_config(tmp_path)


# ---- through nginx -------------------------------------------------------------------------------------


class TilesClient:
    """A C2SP tlog-tiles client of its own, over one kept-alive connection: it trusts the log key only."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
        self.headers: dict[str, dict[str, str]] = {}

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200, f"{path}: {resp.status} {body[:200]!r}"
        self.headers[path] = {k.lower(): v for k, v in resp.getheaders()}
        return body

    def check_log(self, key: Ed25519Verifier) -> int:
        """Verify the checkpoint's signature, every entry bundle against its level-0 tile, every hash of a
        higher tile against the tile below, and the root from the tiles' complete subtrees; return the size."""
        cp = verify_checkpoint(self.get("/checkpoint"), key).checkpoint
        levels: list[list[bytes]] = []  # every hash of each tile level, in order
        while cp.size >> (8 * len(levels)):
            level, have = len(levels), cp.size >> (8 * len(levels))
            hashes: list[bytes] = []
            for n in range(-(-have // 256)):
                w = min(256, have - 256 * n)
                tile = self.get("/" + tile_path(level, n, w))
                assert len(tile) == 32 * w
                got = [tile[i : i + 32] for i in range(0, len(tile), 32)]
                if level == 0:
                    bundle, entries, pos = self.get("/" + tile_path(None, n, w)), [], 0
                    while pos < len(bundle):
                        k = int.from_bytes(bundle[pos : pos + 2], "big")
                        entries.append(bundle[pos + 2 : pos + 2 + k])
                        pos += 2 + k
                    assert [leaf_hash(e) for e in entries] == got, f"bundle {n} does not hash to tile 0/{n}"
                for i, h in enumerate(got if level else []):  # the root of 256 hashes of the level below
                    j = 256 * n + i
                    assert h == root_of_hashes(levels[-1][256 * j : 256 * j + 256]), f"tile {level}/{n}"
                hashes += got
            levels.append(hashes)
        parts = []
        for height, index in complete_subtrees(0, cp.size):  # each from the highest tile that holds it
            tl, r = height // 8, height % 8
            parts.append(root_of_hashes(levels[tl][index << r : (index + 1) << r]))
        assert fold_right(parts) == cp.root, "the tiles do not make the checkpoint's root"
        return cp.size


@pytest.fixture(scope="module")
def big_folder(big: Ledger, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiles") / "tiles"
    with Publisher(big.log, folder) as pub:
        pub.publish()
    return folder


async def test_a_tiles_client_checks_the_whole_log_through_nginx(big: Ledger, big_folder: Path,
                                                                 aiohttp_client: Client) -> None:
    portal = await aiohttp_client(create_app(big, anchor=False))
    with running_nginx(big_folder, f"127.0.0.1:{portal.port}") as ng:
        client = TilesClient(ng.url)
        assert await asyncio.to_thread(client.check_log, Ed25519Verifier.from_string(big.verifier_key)) == N
        h = client.headers
        assert h["/checkpoint"]["content-type"] == "text/plain; charset=utf-8"
        assert h["/checkpoint"]["cache-control"] == "no-cache, max-age=2"
        assert h["/tile/0/000"]["cache-control"] == "public, max-age=31536000, immutable"
        assert h["/tile/0/000"]["content-type"] == "application/octet-stream"
        assert h["/tile/entries/000"]["cache-control"] == "public, max-age=31536000, immutable"
        assert h["/tile/0/273.p/112"]["cache-control"] == "public, max-age=60"
        assert h["/tile/entries/273.p/112"]["cache-control"] == "public, max-age=60"
        assert "content-encoding" not in h["/tile/entries/000"]
        assert "content-security-policy" not in h["/tile/0/000"], "served by nginx itself, not the portal"
        async with ClientSession() as s:
            # what the folder does not hold comes from the portal: an older tree's partial tile
            async with s.get(ng.url + "/tile/0/273.p/5") as r:
                assert r.status == 200 and await r.read() == big.log.tile(0, 273, 5)[0][:160]
                assert "Content-Security-Policy" in r.headers, "the portal's answer (nginx sets no CSP)"
            gz = {"Accept-Encoding": "gzip"}  # entry bundles are compressed for a client that asks; tiles are not
            async with s.get(ng.url + "/tile/entries/005", headers=gz) as r:
                assert r.headers["Content-Encoding"] == "gzip" and r.headers["Vary"] == "Accept-Encoding"
                assert await r.read() == big.log.entry_bundle(5)
            async with s.get(ng.url + "/tile/0/005", headers=gz) as r:
                assert "Content-Encoding" not in r.headers and await r.read() == big.log.tile(0, 5)[0]
            async with s.get(ng.url + "/tile/0/") as r:  # no directory listing
                assert r.status == 404
            async with s.get(ng.url + "/.lock") as r:
                assert r.status == 404
            async with s.get(ng.url + "/log-key") as r:  # everything else: the portal
                assert r.status == 200 and (await r.text()).strip() == big.verifier_key


async def test_the_portal_redirects_full_tiles_to_nginx(small: Ledger, aiohttp_client: Client) -> None:
    """With `tiles_folder` the writer publishes by itself; with `tiles_url` the portal sends full tiles and
    bundles there (302) once they are published, and still serves partial tiles and the checkpoint."""
    _grow(small, 700)
    small.config = small.config.replace(tiles_folder="tiles")
    folder = small.home / "tiles"
    portal = await aiohttp_client(create_app(small, anchor=False))
    await _until(lambda: published_size(folder) == 700)
    with running_nginx(folder, f"127.0.0.1:{portal.port}") as ng:
        small.config = small.config.replace(tiles_url=ng.url)
        for path in ("/tile/0/000", "/tile/0/001", "/tile/entries/001"):
            resp = await portal.get(path, allow_redirects=False)
            assert resp.status == 302, path
            assert resp.headers["Location"] == ng.url + path
            async with ClientSession() as s, s.get(resp.headers["Location"]) as r:
                assert r.status == 200 and "Content-Security-Policy" not in r.headers
                assert await r.read() == _log_bytes(small, path[1:])
        for path in ("/tile/0/002.p/188", "/tile/entries/002.p/188", "/tile/1/000.p/2", "/checkpoint"):
            resp = await portal.get(path, allow_redirects=False)
            assert resp.status == 200, path
            assert await resp.read() == _log_bytes(small, path[1:])
        resp = await portal.get("/tile/0/000", headers={"X-Ledger-Tiles": "fallback"}, allow_redirects=False)
        assert resp.status == 200, "asked by nginx for a file it does not have: no redirect back"
        (folder / "tile/0/001").unlink()  # a folder that lost a file: nginx asks the portal, no loop
        async with ClientSession() as s, s.get(ng.url + "/tile/0/001") as r:
            assert r.status == 200 and await r.read() == small.log.tile(0, 1)[0]
        # the writer publishes each new checkpoint; a tile is redirected once it is there
        resp = await portal.get("/tile/0/003", allow_redirects=False)
        assert resp.status == 404
        await asyncio.to_thread(_grow, small, 1100)
        await _until(lambda: published_size(folder) == 1100)
        resp = await portal.get("/tile/0/003", allow_redirects=False)
        assert resp.status == 302
        assert (folder / "checkpoint").read_text() == small.log.latest_checkpoint


async def _until(done: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
