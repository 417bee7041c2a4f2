"""Hostile bundles are refused by `verifier verify` in bounded time and memory, each with a clear error
naming the problem: zip bombs (a member's ratio, the total), a member claiming or being 2 GB, names that
leave the folder, duplicate names, truncated or damaged zips, a directory claiming too many members.
Nothing is extracted: the verifier reads members in memory, each with a cap."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.evidence.conftest import World, verify
from verifier import cli as verifier_cli
from verifier.evidence.archive import MAX_MEMBER_BYTES, MAX_TOTAL_BYTES, Archive, ArchiveError

TIME_LIMIT_S = 3.0
MEMORY_LIMIT = 64 << 20
GB2 = 2 << 30


def zip_of(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of duplicate names: that is the point
        with zipfile.ZipFile(buf, "w", method) as z:
            for name, data in members:
                z.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue()


def claim(data: bytes, sizes: dict[int, int]) -> bytes:
    """The zip with the uncompressed sizes its central directory claims set for some members (by number)."""
    out = bytearray(data)
    at = out.rfind(b"PK\x05\x06")
    (count, cd_size, cd_at) = struct.unpack("<HLL", out[at + 10:at + 20])
    pos = cd_at
    for n in range(count):
        assert out[pos:pos + 4] == b"PK\x01\x02"
        if n in sizes:
            out[pos + 24:pos + 28] = struct.pack("<L", sizes[n])
        name_len, extra_len, comment_len = struct.unpack("<HHH", out[pos + 28:pos + 34])
        pos += 46 + name_len + extra_len + comment_len
    return bytes(out)


def zeros_deflated(total: int, block: int = 1 << 20) -> bytes:
    """A raw deflate stream that inflates to `total` zero bytes, made without `total` bytes of work: one
    fully flushed block of zeros repeated (each starts afresh, so copies concatenate)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    c.compress(b"\0" * block)
    c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(b"\0" * block) + c.flush(zlib.Z_FULL_FLUSH)
    return piece * (total // block) + c.flush()


def lying_member(name: str, stream: bytes, claimed: int, crc: int) -> bytes:
    """A zip of one deflated member whose headers claim `claimed` bytes with `crc`, holding `stream`."""
    fname = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(stream), claimed, len(fname), 0)
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(stream), claimed,
                          len(fname), 0, 0, 0, 0, 0, 0)
    body = local + fname + stream
    cd = central + fname
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(body), 0)
    return body + cd + end


def bounded(check: Callable[[], object]) -> object:
    tracemalloc.start()
    t = time.perf_counter()
    try:
        return check()
    finally:
        elapsed = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < TIME_LIMIT_S, f"took {elapsed:.1f} s"
        assert peak < MEMORY_LIMIT, f"used {peak >> 20} MiB"


def refused(data: bytes, *words: str) -> str:
    def attempt() -> str:
        with pytest.raises(ArchiveError) as e:
            Archive(io.BytesIO(data))
        return str(e.value)

    message = str(bounded(attempt))
    for w in words:
        assert w in message, message
    return message


def test_a_zip_bomb_member() -> None:
    bomb = zip_of([("manifest.json", b"{}"), ("documents/x.pdf", b"\0" * (40 << 20))])
    refused(bomb, "documents/x.pdf", "zip bomb")


def test_a_bomb_of_many_members_within_the_ratio() -> None:
    n = MAX_TOTAL_BYTES // (150 << 20) + 1
    members = [(f"documents/{k}.bin", bytes(range(256)) * (8 << 10)) for k in range(n)]  # 2 MiB each, stored
    data = claim(zip_of(members, zipfile.ZIP_STORED), {k: 200 << 20 for k in range(n)})
    refused(data, "zip bomb")  # each member now claims 100x its stored bytes
    data = claim(zip_of(members, zipfile.ZIP_STORED), {k: 150 << 20 for k in range(n)})
    refused(data, "more than", str(MAX_TOTAL_BYTES), "in all")


def test_a_member_claiming_2_gb() -> None:
    data = claim(zip_of([("manifest.json", b"{}"), ("report.pdf", b"%PDF-1.4")], zipfile.ZIP_STORED), {1: GB2})
    refused(data, "report.pdf", str(GB2), str(MAX_MEMBER_BYTES))


def test_a_member_being_2_gb() -> None:
    stream = zeros_deflated(GB2)
    refused(lying_member("documents/big.pdf", stream, GB2, 0), "documents/big.pdf", "claims")


def test_a_member_that_is_2_gb_but_claims_little_is_read_no_further(tmp_path: Path) -> None:
    """Its claim is believed: reading stops there (and the bytes read are not what a manifest is)."""
    stream = zeros_deflated(GB2)
    data = lying_member("manifest.json", stream, 1000, zlib.crc32(b"\0" * 1000))
    rep = bounded(lambda: verify(data))
    assert not rep.ok and "manifest.json cannot be used" in rep.verdict()  # type: ignore[attr-defined]
    path = tmp_path / "lying.zip"
    path.write_bytes(data)
    assert bounded(lambda: verifier_cli.main(["verify", str(path)])) == 1


@pytest.mark.parametrize("name", ["../x.json", "entries/../../x.json", "/etc/passwd", "C:/x.json", "a\\b.json",
                                  "./manifest.json", "entries//1.json", "ok\x07.json"])
def test_names_that_could_leave_the_folder(name: str) -> None:
    refused(zip_of([("manifest.json", b"{}"), (name, b"x")]), "refused")


def test_duplicate_names() -> None:
    refused(zip_of([("manifest.json", b"{}"), ("entries/1.json", b"a"), ("entries/1.json", b"b")]),
            "entries/1.json", "twice")
    refused(zip_of([("manifest.json", b"{}"), ("Manifest.json", b"{}")]), "differ only in case")


def test_truncated_and_damaged_zips(world: World) -> None:
    good = world.export("withdrawn")
    refused(good[: len(good) // 2], "truncated")
    refused(good[:-10], "truncated")
    refused(b"not a zip at all" * 100, "not a complete zip")
    damaged = bytearray(good)
    at = good.find(b"entries/")
    damaged[at + 60:at + 120] = b"\0" * 60  # inside a member's data
    rep = bounded(lambda: verify(bytes(damaged)))
    assert not rep.ok  # type: ignore[attr-defined]


def test_a_directory_claiming_too_many_members() -> None:
    data = bytearray(zip_of([("manifest.json", b"{}")]))
    at = data.rfind(b"PK\x05\x06")
    data[at + 8:at + 12] = struct.pack("<HH", 0xFFFE, 0xFFFE)
    refused(bytes(data), "claims 65534 members")


def test_the_command_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.zip"
    path.write_bytes(zip_of([("manifest.json", b"{}"), ("../../etc/cron.d/x", b"boom")]))
    assert verifier_cli.main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("REFUSED") and "../../etc/cron.d/x" in out and len(out.splitlines()) == 1
    assert not (tmp_path.parent / "etc").exists()
    assert verifier_cli.main(["verify", str(path), "--json"]) == 1
    assert '"ok": false' in capsys.readouterr().out
