"""Sequence and UID sets: parse, format, compact encoding, '*', membership, 2^32-1 bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpmsync.imap import MAX_UID, STAR, ImapProtocolError, SequenceSet


def test_parse_and_format_keep_ranges_as_written() -> None:
    s = SequenceSet.parse("1:3,5,7:*,*,9:8")
    assert s.ranges == ((1, 3), (5, 5), (7, STAR), (STAR, STAR), (9, 8))
    assert str(s) == "1:3,5,7:*,*,9:8"
    assert s.to_bytes() == b"1:3,5,7:*,*,9:8"
    assert s.has_star


def test_from_ints_is_compact_sorted_and_merged() -> None:
    assert str(SequenceSet.from_ints([9, 1, 2, 3, 5, 7, 8, 3])) == "1:3,5,7:9"
    assert str(SequenceSet.from_ints([MAX_UID])) == "4294967295"
    with pytest.raises(ValueError):
        SequenceSet.from_ints([])
    with pytest.raises(ValueError):
        SequenceSet.from_ints([0])


def test_membership_with_and_without_star_value() -> None:
    s = SequenceSet.parse("2:4,10:*")
    assert 3 in s and 4 in s and 1 not in s and 5 not in s
    assert 10**9 in s  # '*' without a known largest value is unbounded
    assert not s.contains(12, largest=11)  # 10:* with * = 11
    assert s.contains(11, largest=11)
    reversed_range = SequenceSet.parse("*:5")
    assert reversed_range.contains(7, largest=9) and not reversed_range.contains(4, largest=9)


def test_iter_ints_expands_star_and_dedups() -> None:
    assert list(SequenceSet.parse("3,1:2,2:4,6:*").iter_ints(largest=7)) == [1, 2, 3, 4, 6, 7]
    assert list(SequenceSet.parse("*").iter_ints(largest=5)) == [5]


def test_uid_bounds() -> None:
    assert SequenceSet.parse("4294967295").ranges == ((MAX_UID, MAX_UID),)
    with pytest.raises(ImapProtocolError):
        SequenceSet.parse("4294967296")


@pytest.mark.parametrize("bad", ["", "0", "1,", ",1", "1::2", "a", "1:2:3", "01", "1 2", "-1"])
def test_bad_sets_name_the_position(bad: str) -> None:
    with pytest.raises(ImapProtocolError) as ei:
        SequenceSet.parse(bad)
    assert ei.value.position is not None


@given(st.sets(st.integers(min_value=1, max_value=MAX_UID), min_size=1, max_size=200))
def test_compact_roundtrip(values: set[int]) -> None:
    s = SequenceSet.from_ints(values)
    again = SequenceSet.parse(str(s))
    assert again == s
    assert all(v in again for v in values)
    if len(values) < 500 and max(values) - min(values) < 5000:
        assert set(again.iter_ints(largest=max(values))) == values


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=MAX_UID), st.integers(min_value=0, max_value=MAX_UID)),
        min_size=1,
        max_size=20,
    )
)
def test_format_parse_roundtrip_any_ranges(ranges: list[tuple[int, int]]) -> None:
    s = SequenceSet(tuple(ranges))
    assert SequenceSet.parse(s.to_bytes()) == s


_SMALL = st.integers(min_value=0, max_value=60)  # 0 is STAR


@given(
    st.lists(st.tuples(_SMALL, _SMALL), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=70),
    st.none() | st.integers(min_value=1, max_value=60),
)
def test_membership_is_what_the_set_expands_to(
    ranges: list[tuple[int, int]], n: int, largest: int | None
) -> None:
    """`contains` (asked once per fetched message) agrees with the members the set names, any
    range order and `*` at either end; `*` with no known largest reaches past every UID."""
    s = SequenceSet(tuple(ranges))
    if largest is None:
        ends = [(MAX_UID + 1 if a == STAR else a, MAX_UID + 1 if b == STAR else b) for a, b in ranges]
        expected = any(min(a, b) <= n <= max(a, b) for a, b in ends)
    else:
        expected = n in set(s.iter_ints(largest=largest))
    assert s.contains(n, largest) is expected
    assert (n in s) is s.contains(n)
