"""Topic names: a mailbox name is exactly one topic level, free of MQTT's special characters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cpmsync.daemon.topics import Topics, decode_folder, encode_folder

names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@given(names)
def test_folder_level_round_trips_and_is_one_safe_level(name: str) -> None:
    level = encode_folder(name)
    assert decode_folder(level) == name
    assert level != ""
    assert not set(level) & {"/", "+", "#", "\0"}
    assert level.isascii()


@given(names, names)
def test_distinct_names_give_distinct_levels(a: str, b: str) -> None:
    assert (encode_folder(a) == encode_folder(b)) == (a == b)


@given(names)
def test_topics_parse_back_to_the_folder(name: str) -> None:
    t = Topics("cpm", "acct")
    assert t.parse(t.summary(name)) == ("summary", name)
    assert t.parse(t.events(name)) == ("events", name)
    assert t.parse(t.status) == ("status", None)


def test_examples_from_the_cr() -> None:
    assert encode_folder("tel:+15143457900") == "tel:%2B15143457900"
    assert (
        encode_folder("f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae")
        == "f81d4fae-7dec-11d0-a765-00a0c91e6bf5%2Fdfed4fae"
    )
    assert Topics("cpm", "acct").events("Default") == "cpm/acct/folders/Default/events"
