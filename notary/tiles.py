"""A log's tree, fetched whole through its C2SP tlog-tiles paths and recomputed.

At tree size N the log serves level-L tiles `tile/L/<n>[.p/<w>]` (the hashes of its complete subtrees
of 256^L leaves, 256 a tile, the last one partial) and entry bundles `tile/entries/<n>[.p/<w>]` (each
entry as a big-endian 16-bit length and its bytes). `fetch_tree` reads every bundle, hashes every
entry (RFC 9162 leaf hash), checks each tile of each level against the hashes computed from the level
below, and checks that the root of all leaves is the checkpoint's. Nothing the log serves is believed
before it is recomputed.

What it does not do: cache tiles between runs, or fetch in parallel (a notary's check is not hurried).
"""

from __future__ import annotations

from dataclasses import dataclass

from notary._http import LogClient
from verifier.errors import FormatError, RootMismatchError, VerificationError
from verifier.merkle import inclusion_ranges, leaf_hash, root_of_hashes
from verifier.tiles import tile_path

TILE_WIDTH = 256
HASH_SIZE = 32
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + 0xFFFF)


@dataclass(frozen=True)
class Tree:
    """A tree of `size` entries, recomputed from what the log served."""

    size: int
    root: bytes
    entries: tuple[bytes, ...]
    leaves: tuple[bytes, ...]
    tiles: int
    bundles: int


def parse_bundle(data: bytes, width: int, where: str) -> list[bytes]:
    """The `width` entries of an entry bundle; anything else in it is malformed."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise FormatError(f"{where}: an entry's length is cut off")
        n = int.from_bytes(data[pos:pos + 2], "big")
        if pos + 2 + n > len(data):
            raise FormatError(f"{where}: entry {len(out)} is cut off")
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    if len(out) != width:
        raise FormatError(f"{where}: holds {len(out)} entries, not {width}")
    return out


def _widths(count: int) -> list[tuple[int, int]]:
    """(tile index, width) of the tiles that hold `count` hashes (or entries)."""
    return [(i, min(TILE_WIDTH, count - i * TILE_WIDTH)) for i in range((count + TILE_WIDTH - 1) // TILE_WIDTH)]


def fetch_tree(client: LogClient, size: int, root: bytes) -> Tree:
    """Fetch every entry bundle and tile of the tree of `size`, check them, and check its root is `root`.

    Raises:
        VerificationError: a bundle or tile is malformed or disagrees with the entries, or the root differs.
        FetchError: the log could not be asked.
    """
    entries: list[bytes] = []
    bundles = 0
    for index, width in _widths(size):
        path = "/" + tile_path(None, index, width)
        entries += parse_bundle(client.get(path, MAX_BUNDLE_BYTES), width, path)
        bundles += 1
    leaves = [leaf_hash(e) for e in entries]
    level, tiles, n = leaves, 0, 0
    while level:
        for index, width in _widths(len(level)):
            path = "/" + tile_path(n, index, width)
            served = client.get(path, TILE_WIDTH * HASH_SIZE)
            want = b"".join(level[index * TILE_WIDTH:index * TILE_WIDTH + width])
            if served != want:
                raise VerificationError(f"tile {path} is not the hashes of the entries below it "
                                        f"({len(served)} bytes served, {len(want)} computed)", code="tile_mismatch")
            tiles += 1
        level = [root_of_hashes(level[i:i + TILE_WIDTH]) for i in range(0, len(level) - TILE_WIDTH + 1, TILE_WIDTH)]
        n += 1
    computed = root_of_hashes(leaves)
    if computed != root:
        raise RootMismatchError(root, computed, f"root of the {size} entries the tiles hold")
    return Tree(size, computed, tuple(entries), tuple(leaves), tiles, bundles)


def inclusion_hashes(leaves: tuple[bytes, ...] | list[bytes], index: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of `index` in the first `size` leaves, computed from the leaves."""
    return [root_of_hashes(leaves[a:b]) for a, b in inclusion_ranges(index, size)]
