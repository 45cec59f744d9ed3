"""A message's date as apps see it is what the email package reads from its Date header: the
one-regex fast path for the common form must agree with `email.utils.parsedate_to_datetime`
on every string, the odd ones (no weekday, -0000, +0160, day 31 of February) included."""

from __future__ import annotations

import email.utils
from datetime import datetime

from hypothesis import example, given
from hypothesis import strategies as st

from cpmsync.daemon.headers import header_date

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Fry", ""]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "jan", "Foo"]


def _reference(text: str) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


@st.composite
def date_headers(draw: st.DrawFn) -> str:
    day = draw(st.sampled_from(_DAYS))
    mon = draw(st.sampled_from(_MONTHS))
    zone = draw(
        st.one_of(
            st.sampled_from(
                ["+0000", "-0000", "+0100", "-0800", "+0530", "+0160", "+2400", "GMT", "EST", "Z"]
            ),
            st.from_regex(r"[+-]\d{4}", fullmatch=True),
        )
    )
    year = f"{draw(st.integers(0, 10000)):0{draw(st.sampled_from([2, 4]))}d}"
    hms = [draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))]
    clock = ":".join(f"{n:02d}" for n in hms)
    text = f"{day + ', ' if day else ''}{draw(st.integers(0, 40))} {mon} {year} {clock} {zone}"
    return draw(st.sampled_from([text, text + " (CET)", " " + text, text.replace(" ", "  ", 1)]))


@given(st.one_of(date_headers(), st.text(max_size=40)))
@example("Fri, 04 Dec 2026 12:00:05 +0100")
@example("4 Dec 2026 12:00:05 -0000")
@example("Fri, 04 Dec 2026 12:00:05 +0160")
@example("Sat, 31 Feb 2026 12:00:05 +0000")
@example("Mon, 1 Jan 1000 00:00:00 -000\u0660")  # an Arabic-Indic zero: a digit to both
def test_header_date_is_the_email_packages_reading(text: str) -> None:
    got, want = header_date(text), _reference(text)
    assert got == want
    if got is not None and want is not None:
        assert got.utcoffset() == want.utcoffset()  # the same instant and the same zone shown


def test_no_date_header() -> None:
    assert header_date(None) is None
    assert header_date("") is None
