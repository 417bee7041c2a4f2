"""Entries are RFC 8785 canonical JSON: the fast encoder agrees with the reference package."""

from __future__ import annotations

import re

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from verifier import entry
from verifier.entry import canonical, canonical_trusted, strict_loads
from verifier.errors import FormatError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=20,
)
_ascii = st.text(st.characters(max_codepoint=127))
ascii_values = st.recursive(  # the ledger's own values are mostly ASCII: the fast path's case
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | _ascii,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_ascii, kids, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_fast_canonical_equals_rfc8785(value: object) -> None:
    try:
        want = rfc8785.dumps(value)
    except Exception:
        with pytest.raises(FormatError):
            canonical(value)
        return
    assert canonical(value) == want


@given(json_values | ascii_values)
def test_trusted_canonical_equals_rfc8785_with_and_without_orjson(value: object) -> None:
    """The ledger's fast path (orjson where installed) writes the very bytes of the reference."""
    try:
        want = rfc8785.dumps(value)
    except Exception:
        return  # not a value the ledger builds (canonical refuses it, above)
    assert canonical_trusted(value) == want
    saved = entry._orjson
    try:
        entry._orjson = None
        assert canonical_trusted(value) == want
    finally:
        entry._orjson = saved


def test_orjson_is_used_here() -> None:
    assert entry._orjson is not None


def test_astral_keys_sort_by_utf16() -> None:
    value = {"\U0001f600": 1, "\ufb33": 2}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value).index("\ufb33".encode()) > canonical(value).index("\U0001f600".encode())


@pytest.mark.parametrize("bad", [1.5, {"a": [1.0]}, float("nan")])
def test_floats_refused(bad: object) -> None:
    with pytest.raises(FormatError, match="floats"):
        canonical(bad)


@pytest.mark.parametrize("raw, word", [
    (b'{"a":1,"a":2}', "duplicate key"),
    (b'{"a":1.0}', "not an integer"),
    (b'{"a":NaN}', "not valid JSON"),
    (b'\xff{}', "UTF-8"),
    (b'[' * 50 + b']' * 50, "nested"),
    (b'{"a":9007199254740993}', "2^53"),
])
def test_strict_loads_refuses(raw: bytes, word: str) -> None:
    with pytest.raises(FormatError, match=re.escape(word)):
        strict_loads(raw, max_bytes=1000)
