"""C2SP tlog-tiles paths: the index encoding of the spec, exact round trips, strict refusal of other forms.

The spec (c2sp.org/tlog-tiles §Merkle Tree): `<L>` is a decimal ASCII integer 0-63 without leading
zeroes; `<N>` is zero-padded 3-digit groups, all but the last prefixed with `x`; `<W>` is a decimal
ASCII integer 1-255 without leading zeroes. Exactly one spelling per tile, so a path a client builds
and a path a server parses can never disagree, and a cache never holds one tile under two names.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.errors import FormatError
from verifier.tiles import TilePath, encode_index, parse_tile_path, tile_path


@pytest.mark.parametrize(
    ("index", "encoded"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),  # the example of the spec
        (1_000_000, "x001/x000/000"),
        (999_999_999, "x999/x999/999"),
    ],
)
def test_encode_index_matches_the_spec(index: int, encoded: str) -> None:
    """encode_index writes the zero-padded, x-prefixed 3-digit groups of c2sp.org/tlog-tiles."""
    assert encode_index(index) == encoded


def test_tile_path_spells_full_partial_and_entry_tiles() -> None:
    """tile_path adds `.p/<W>` only below 256, and `entries` for level None."""
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 5, 17) == "tile/2/005.p/17"
    assert tile_path(None, 0) == "tile/entries/000"
    assert tile_path(None, 1000, 1) == "tile/entries/x001/000.p/1"


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("0/000", TilePath(0, 0, 256)),
        ("0/x001/x234/067", TilePath(0, 1234067, 256)),
        ("63/001.p/255", TilePath(63, 1, 255)),
        ("1/000.p/1", TilePath(1, 0, 1)),
        ("entries/x001/000.p/7", TilePath(None, 1000, 7)),
        ("entries/999", TilePath(None, 999, 256)),
    ],
)
def test_parse_tile_path_reads_canonical_paths(path: str, want: TilePath) -> None:
    """Each canonical path parses to its level (None for entries), index and width."""
    assert parse_tile_path(path) == want


@given(
    level=st.one_of(st.none(), st.integers(0, 63)),
    index=st.one_of(st.integers(0, 2000), st.integers(0, 10**21 - 1)),
    width=st.integers(1, 256),
)
def test_parse_inverts_tile_path(level: int | None, index: int, width: int) -> None:
    """For every level, index and width, parsing the path tile_path writes gives them back."""
    path = tile_path(level, index, width)
    assert path.startswith("tile/")
    assert parse_tile_path(path[len("tile/") :]) == TilePath(level, index, width)


NON_CANONICAL = [
    ("", "empty"),
    ("0", "no index"),
    ("entries", "no index"),
    ("01/000", "level with a leading zero"),
    ("00/000", "level with a leading zero"),
    ("64/000", "level above 63"),
    ("-1/000", "negative level"),
    ("+1/000", "signed level"),
    ("x/000", "level not a number"),
    ("0/000.p/0", "width 0"),
    ("0/000.p/256", "width 256: a full tile has no .p suffix"),
    ("0/000.p/007", "width with leading zeros"),
    ("0/000.p/", "empty width"),
    ("0/000.p", "no width"),
    ("0/000.p/abc", "width not a number"),
    ("0/000.p/1/2", "two widths"),
    ("0/1234", "index not in 3-digit groups"),
    ("0/12", "short group"),
    ("0/0000", "long group"),
    ("0/001/234", "missing x"),
    ("0/x001", "x on the last group"),
    ("0/x000/001", "leading zero group"),
    ("0/x1234/000", "4 digits after x"),
    ("0/X001/000", "capital X"),
    ("0/x001/x002/x003/x004/x005/x006/x007/000", "too many groups"),
    ("0/000/", "trailing slash"),
    ("0//000", "empty group"),
    ("0/ 00", "space in a group"),
    ("0/+12", "sign in a group"),
    ("0/00a", "letter in a group"),
    ("0/000.q/5", "not a .p suffix"),
]


@pytest.mark.parametrize(("path", "why"), NON_CANONICAL)
def test_non_canonical_paths_are_refused(path: str, why: str) -> None:
    """Every other spelling is refused with FormatError, never mapped to a tile."""
    with pytest.raises(FormatError):
        parse_tile_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "\u0663/000",  # ARABIC-INDIC DIGIT THREE as the level
        "0/000.p/\u0663",  # ... as the width
        "0/\u0660\u0660\u0660",  # ... as the index
        "\u00b2/000",  # SUPERSCRIPT TWO as the level (str.isdigit() is true, int() fails)
        "0/000.p/\u00b2",  # ... as the width
        "\uff11/000",  # FULLWIDTH DIGIT ONE as the level
    ],
)
def test_non_ascii_digits_are_refused(path: str) -> None:
    """The spec asks for decimal *ASCII* integers: other Unicode digits are a FormatError, not a tile."""
    with pytest.raises(FormatError):
        parse_tile_path(path)


_LEVELS = st.sampled_from(["0", "1", "63", "64", "01", "entries", "x", "", "\u0663", "\u00b2"])
_GROUPS = st.lists(st.sampled_from(["000", "067", "x001", "x000", "1234", "x01", "00", "\u0660\u0660\u0660"]),
                   max_size=4)
_SUFFIXES = st.sampled_from(["", ".p/1", ".p/255", ".p/256", ".p/0", ".p/01", ".p/", ".p/\u0663", ".p/\u00b2"])


@given(_LEVELS, _GROUPS, _SUFFIXES)
def test_near_miss_paths_parse_canonically_or_are_refused(level: str, groups: list[str], suffix: str) -> None:
    """parse_tile_path returns only for the one canonical spelling of a tile; all else is FormatError."""
    path = "/".join([level, *groups]) + suffix
    try:
        tp = parse_tile_path(path)
    except FormatError:
        return
    assert tile_path(tp.level, tp.index, tp.width) == "tile/" + path
