"""The link from HTTP workers to the writer: acknowledgements, refusals, outages, hostile frames."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.envelopes.core import Ledger
from ledger.envelopes.events import parse_events
from ledger.errors import RefusedError, StorageError
from portal.serving import writerlink
from portal.serving.writerlink import LINK_NAME, WriterLink, serve_link


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.init(tmp_path / "home")
    yield ledger
    ledger.close()


def _events(*objs: dict) -> list:
    return parse_events(orjson.dumps(list(objs)))


def test_requests_from_a_worker_are_acknowledged_in_one_sequence(led: Ledger) -> None:
    async def main() -> None:
        server = await serve_link(led, led.home / LINK_NAME)
        link = WriterLink(led.home / LINK_NAME)
        try:
            acks = await asyncio.gather(*[
                link.submit("t", _events({"type": "envelope.created", "envelope": f"E{i}", "title": "x"}))
                for i in range(50)])
            assert sorted(a[0]["index"] for a in acks) == list(range(50))
            assert all(a[0]["checkpoint_size"] >= a[0]["index"] + 1 for a in acks)
            with pytest.raises(RefusedError) as info:  # a refusal keeps its code, status and position
                await link.submit("t", _events(
                    {"type": "party.added", "envelope": "E1", "party": "p", "role": "cc", "name": "n"},
                    {"type": "envelope.created", "envelope": "E1", "title": "x"}))
            assert (info.value.code, info.value.status, info.value.event) == ("envelope_exists", 409, 1)
            with pytest.raises(RefusedError) as info:  # tenants stay apart across the link too
                await link.submit("other", _events({"type": "envelope.sent", "envelope": "E1"}))
            assert info.value.code == "unknown_envelope"
        finally:
            await link.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert led.log.size == 50  # the refused request wrote nothing


def test_requests_read_in_one_turn_from_every_worker_commit_together(led: Ledger) -> None:
    """The writer commits what it read from all connections in one turn as one batch: one checkpoint."""

    async def main() -> None:
        server = await serve_link(led, led.home / LINK_NAME)
        links = [WriterLink(led.home / LINK_NAME), WriterLink(led.home / LINK_NAME)]
        try:
            for n, link in enumerate(links):  # connected before the burst
                await link.submit("t", _events({"type": "envelope.created", "envelope": f"C{n}", "title": "x"}))
            acks = await asyncio.gather(*[
                links[i % 2].submit("t", _events({"type": "envelope.created", "envelope": f"E{i}", "title": "x"}))
                for i in range(40)])
            assert {a[0]["checkpoint_size"] for a in acks} == {42}, "one batch, one checkpoint"
            assert sorted(a[0]["index"] for a in acks) == list(range(2, 42))
        finally:
            for link in links:
                await link.close()
            server.close()

    asyncio.run(main())


def test_a_burst_larger_than_batch_max_commits_in_several_batches(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("batch_max = 15\n")
    led = Ledger.init(home)
    steps: list[str] = []
    commit, flush = led.commit_here, writerlink._WriterSide._flush
    monkeypatch.setattr(led, "commit_here", lambda batch: (steps.append("commit"), commit(batch))[1])
    monkeypatch.setattr(writerlink._WriterSide, "_flush", lambda self: (steps.append("answers"), flush(self))[1])

    async def main() -> None:
        server = await serve_link(led, led.home / LINK_NAME)
        link = WriterLink(led.home / LINK_NAME)
        try:
            await link.submit("t", _events({"type": "envelope.created", "envelope": "C", "title": "x"}))
            acks = await asyncio.gather(*[  # 20 requests of 1, 2 or 3 events: 39 events
                link.submit("t", _events(*[{"type": "envelope.created", "envelope": f"B{i}-{k}", "title": "x"}
                                           for k in range(1 + i % 3)])) for i in range(20)])
            sizes = sorted({a[0]["checkpoint_size"] for a in acks})
            per_batch = [b - a for a, b in zip([1, *sizes], sizes, strict=False)]
            assert sum(per_batch) == 39 and len(per_batch) == 3, per_batch
            assert all(n <= 15 + 2 for n in per_batch), per_batch  # a request is never split
            # each batch's answers are written out before the next batch is committed
            assert steps[-6:] == ["commit", "answers", "commit", "answers", "commit", "answers"], steps
        finally:
            await link.close()
            server.close()

    try:
        asyncio.run(main())
    finally:
        led.close()


def test_the_socket_is_the_owners_only(led: Ledger) -> None:
    async def main() -> None:
        server = await serve_link(led, led.home / LINK_NAME)
        assert (led.home / LINK_NAME).stat().st_mode & 0o777 == 0o600
        server.close()

    asyncio.run(main())


def test_no_writer_is_a_clear_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writerlink, "CONNECT_TIMEOUT_S", 0.3)

    async def main() -> None:
        link = WriterLink(tmp_path / "nothing.sock")
        with pytest.raises(StorageError, match="writer process is not reachable.*nothing was written"):
            await link.submit("t", _events({"type": "envelope.created", "envelope": "E", "title": "x"}))

    asyncio.run(main())


def test_a_lost_writer_fails_what_is_in_flight_honestly(tmp_path: Path) -> None:
    """The writer goes away with requests in flight: they fail saying they may or may not be written."""
    path = tmp_path / "w.sock"

    async def main() -> None:
        got = asyncio.Event()

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(4)
            got.set()
            writer.close()  # read a request, then die without answering

        server = await asyncio.start_unix_server(swallow, path=str(path))
        link = WriterLink(path)
        task = asyncio.create_task(link.submit("t", _events({"type": "envelope.created", "envelope": "E",
                                                             "title": "x"})))
        await got.wait()
        with pytest.raises(StorageError, match="may or may not have been written"):
            await asyncio.wait_for(task, 5)
        server.close()

    asyncio.run(main())


def test_a_garbled_answer_fails_its_requests_honestly_and_the_link_reconnects(tmp_path: Path) -> None:
    """A worker that reads an answer it cannot parse drops the connection: what was in flight fails as
    "may or may not have been written", and the next request opens a new connection."""
    path = tmp_path / "w.sock"
    connections = []

    async def main() -> None:
        async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(writer)
            n = int.from_bytes(await reader.readexactly(4), "big")
            rid = orjson.loads(await reader.readexactly(n))[0]
            if len(connections) == 1:
                writer.write(len(b"{oops").to_bytes(4, "big") + b"{oops")
            else:
                body = orjson.dumps([rid, [{"index": 7}]])
                writer.write(len(body).to_bytes(4, "big") + body)
            await writer.drain()
            await reader.read()  # until the worker closes

        server = await asyncio.start_unix_server(garble, path=str(path))
        link = WriterLink(path)
        event = _events({"type": "envelope.created", "envelope": "E", "title": "x"})
        with pytest.raises(StorageError, match="may or may not have been written"):
            await asyncio.wait_for(link.submit("t", event), 5)
        assert await asyncio.wait_for(link.submit("t", event), 5) == [{"index": 7}]
        assert len(connections) == 2
        await link.close()
        server.close()

    asyncio.run(main())


def test_hostile_frames_are_refused_and_the_writer_goes_on(led: Ledger) -> None:
    async def main() -> None:
        path = led.home / LINK_NAME
        server = await serve_link(led, path)
        try:
            r, w = await asyncio.open_unix_connection(str(path))
            for body in (b"not json", b"[1, 2]", orjson.dumps([7, "submit", "t", [["no.such.type", "E", {}]]]),
                         orjson.dumps([8, "head", "E", "not a size"]), orjson.dumps([9, "drop tables"])):
                w.write(len(body).to_bytes(4, "big") + body)
                n = int.from_bytes(await r.readexactly(4), "big")
                answer = orjson.loads(await r.readexactly(n))
                assert answer[1] is None and answer[2]["status"] >= 400, answer
            w.write((1 << 31).to_bytes(4, "big"))  # a frame larger than any request: the connection closes
            assert await r.read() == b""
            w.close()
            link = WriterLink(path)  # and the writer still serves others
            acks = await link.submit("t", _events({"type": "envelope.created", "envelope": "E", "title": "x"}))
            assert acks[0]["index"] == 0
            await link.close()
        finally:
            server.close()

    asyncio.run(main())


class _Recorder(writerlink._Framed):
    """A link end that keeps the frames it cut out, and whether it refused the stream."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.frames: list[bytes] = []
        self.refused = False

    def frame(self, body: bytes) -> None:
        self.frames.append(body)

    def refuse(self, why: str) -> None:
        self.refused = True
        super().refuse(why)


@given(st.lists(st.binary(max_size=300), max_size=20), st.lists(st.integers(1, 400), min_size=1, max_size=50))
def test_frames_come_out_whole_however_the_stream_is_cut(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(len(b).to_bytes(4, "big") + b for b in bodies)
    end = _Recorder(limit=300)
    pos, k = 0, 0
    while pos < len(stream):
        n = cuts[k % len(cuts)]
        end.data_received(stream[pos:pos + n])
        pos, k = pos + n, k + 1
    assert end.frames == bodies and not end.refused


@given(st.binary(max_size=2000), st.integers(1, 64))
def test_a_hostile_stream_is_cut_into_frames_or_refused(data: bytes, chunk: int) -> None:
    end = _Recorder(limit=256)
    for i in range(0, len(data), chunk):
        if end.refused:
            break
        end.data_received(data[i:i + chunk])
    assert all(len(f) <= 256 for f in end.frames)
    if not end.refused:  # what is left over is less than one whole frame
        rest = bytes(end._in)
        assert len(rest) < 4 or len(rest) - 4 < int.from_bytes(rest[:4], "big")
