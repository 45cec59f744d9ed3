"""LIST pattern matching, RFC 3501 6.3.8 and RFC 5258 3: `*` crosses levels, `%` does not."""

from __future__ import annotations

import pytest

from cpmsync.msgstore.mailbox_pattern import (
    MailboxPattern,
    PatternSet,
    canonical_name,
    join_reference,
    match_mailbox,
)

NAMES = [
    "INBOX",
    "INBOX/Sent",
    "Default",
    "tel:+15143457900",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf5",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2",
    "a/b/c",
]


def _matching(pattern: str, reference: str = "") -> list[str]:
    return [n for n in NAMES if match_mailbox(reference, pattern, n)]


def test_rfc3501_star_matches_every_level() -> None:
    assert _matching("*") == NAMES


def test_rfc3501_percent_stops_at_the_delimiter() -> None:
    assert _matching("%") == ["INBOX", "Default", "tel:+15143457900", "f81d4fae-7dec-11d0-a765-00a0c91e6bf5"]


def test_percent_in_the_middle_matches_one_level_only() -> None:
    assert _matching("a/%/c") == ["a/b/c"]
    assert _matching("a/%") == []
    assert _matching("a/*") == ["a/b/c"]


def test_star_and_percent_combined_with_literals() -> None:
    assert _matching("f81d4fae*/%") == [NAMES[5]]
    assert _matching("tel:*") == ["tel:+15143457900"]
    assert _matching("*00a0c91a3bf2") == [NAMES[5]]
    assert _matching("Def%") == ["Default"]


def test_rfc3501_inbox_is_case_insensitive_but_nothing_else_is() -> None:
    assert _matching("inbox") == ["INBOX"]
    assert _matching("InBoX/%") == ["INBOX/Sent"]
    assert _matching("inbox/sent") == []  # only the INBOX level folds case
    assert _matching("default") == []
    assert _matching("inb*") == ["INBOX", "INBOX/Sent"]


def test_rfc3501_reference_is_prefixed() -> None:
    assert join_reference("a/", "b/%") == "a/b/%"
    assert join_reference("a/", "/b") == "a/b"
    assert join_reference("", "x") == "x"
    assert _matching("%", reference="a/b/") == ["a/b/c"]
    assert _matching("*", reference="f81d4fae-7dec-11d0-a765-00a0c91e6bf5/") == [NAMES[5]]


def test_regex_metacharacters_in_names_are_literal() -> None:
    assert MailboxPattern("a.b").matches("a.b")
    assert not MailboxPattern("a.b").matches("axb")
    assert MailboxPattern("tel:+1(514)*").matches("tel:+1(514)345")
    assert MailboxPattern("[x]").matches("[x]")


def test_rfc5258_pattern_list_is_a_union() -> None:
    ps = PatternSet("", ["Default", "tel:%"])
    assert [n for n in NAMES if ps.matches(n)] == ["Default", "tel:+15143457900"]
    assert PatternSet("", ["%", "*"]).matches_everything


@pytest.mark.parametrize(
    ("given", "canonical"), [("inbox", "INBOX"), ("Inbox/x", "INBOX/x"), ("inboxy", "inboxy")]
)
def test_inbox_has_one_canonical_spelling(given: str, canonical: str) -> None:
    assert canonical_name(given) == canonical


def test_literal_prefix_is_the_part_before_the_first_wildcard() -> None:
    assert MailboxPattern("abc/%/x*").literal_prefix == "abc/"
    assert MailboxPattern("abc").literal_prefix == "abc"
