"""C2SP tlog-tiles paths: `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`.

N is written in zero-padded 3-digit groups, all but the last prefixed with `x` (1234067 ->
x001/x234/067). Parsing is strict: no leading zeros beyond the padding, widths 1-255, levels 0-63.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from verifier.errors import FormatError

_GROUP = re.compile(r"[0-9]{3}")


def encode_index(n: int) -> str:
    s = f"{n:03d}"
    s = "0" * (-len(s) % 3) + s
    groups = [s[i : i + 3] for i in range(0, len(s), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_path(level: int | None, index: int, width: int = 256) -> str:
    """The path of a tile (level None = entry bundle), without a leading slash."""
    head = "tile/entries" if level is None else f"tile/{level}"
    tail = f".p/{width}" if width < 256 else ""
    return f"{head}/{encode_index(index)}{tail}"


@dataclass(frozen=True)
class TilePath:
    level: int | None  # None for an entry bundle
    index: int
    width: int  # 256 for a full tile


def parse_tile_path(path: str) -> TilePath:
    """Parse what follows `tile/`, e.g. `0/x001/234.p/7` or `entries/005`."""
    parts = path.split("/")
    if len(parts) < 2:
        raise FormatError("tile path needs a level and an index")
    head, rest = parts[0], parts[1:]
    if head == "entries":
        level = None
    elif head.isascii() and head.isdigit() and (head == "0" or not head.startswith("0")) and int(head) <= 63:
        level = int(head)
    else:
        raise FormatError(f"tile level {head!r} is not 0-63 without leading zeros")
    width = 256
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not (w.isascii() and w.isdigit()) or w.startswith("0") or not 1 <= int(w) <= 255:
            raise FormatError(f"partial tile width {w!r} is not 1-255")
        width = int(w)
        rest = rest[:-2] + [rest[-2][:-2]]
    if len(rest) > 7:
        raise FormatError("tile index is too long")
    digits = []
    for i, g in enumerate(rest):
        last = i == len(rest) - 1
        if not last:
            if not g.startswith("x"):
                raise FormatError("every tile index group but the last starts with 'x'")
            g = g[1:]
        if not _GROUP.fullmatch(g):
            raise FormatError(f"tile index group {g!r} is not three digits")
        digits.append(g)
    index = int("".join(digits))
    if encode_index(index) != "/".join(rest):
        raise FormatError("tile index is not in canonical form")
    return TilePath(level, index, width)
