"""The pg_notify payload between msgstore instances: every event arrives whole, in order, and no
payload reaches PostgreSQL's 8000-byte limit (beyond it pg_notify fails and so would the write)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cpmsync.msgstore.hub import EventKind, StoreEvent
from cpmsync.msgstore.pg_payload import decode_notification, encode_notifications

_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="*%"),
    min_size=1,
    max_size=1000,
)
_KINDS = [k for k in EventKind if k is not EventKind.OVERFLOW]


@st.composite
def _events(draw: st.DrawFn) -> list[StoreEvent]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(_KINDS))
        uids = draw(st.lists(st.integers(1, 2**32 - 1), max_size=3000, unique=True))
        old = draw(_NAME) if kind is EventKind.RENAME else None
        out.append(StoreEvent("alice", draw(_NAME), 7 + i, kind, tuple(sorted(uids)), 100 + i, old))
    return out


def _rejoin(events: list[StoreEvent]) -> list[tuple[object, ...]]:
    """Consecutive pieces of one split event joined again; names from the store stay empty."""
    out: list[tuple[object, ...]] = []
    for e in events:
        key = (e.kind, e.mailbox_id, e.modseq, e.mailbox, e.old_name)
        if out and out[-1][:5] == key:
            out[-1] = (*key, out[-1][5] + e.uids)  # type: ignore[operator]
        else:
            out.append((*key, e.uids))
    return out


@settings(max_examples=60, deadline=None)
@given(_events())
def test_events_survive_the_payload_and_every_payload_fits(events: list[StoreEvent]) -> None:
    payloads = encode_notifications("alice", "inst1", 42, events)
    assert all(len(p.encode()) < 8000 for p in payloads)
    got: list[StoreEvent] = []
    for p in payloads:
        note = decode_notification(p)
        assert (note.user, note.instance, note.token) == ("alice", "inst1", 42)
        got.extend(note.events)
    sent = _rejoin(events)
    back = _rejoin(got)
    assert len(back) == len(sent)
    for s, b in zip(sent, back, strict=True):
        if b[3] == "":  # names too long to travel: the listener reads them from the store
            assert s[:3] == b[:3] and s[5] == b[5]
        else:
            assert s == b


def test_a_rename_between_two_long_names_travels_without_them() -> None:
    ev = StoreEvent("alice", "\U0001f600" * 1000, 3, EventKind.RENAME, (), 9, "\U0001f601" * 1000)
    (payload,) = encode_notifications("alice", "i", 1, [ev])
    (back,) = decode_notification(payload).events
    assert decode_notification(payload).needs_names
    assert (back.kind, back.mailbox_id, back.modseq, back.mailbox, back.old_name) == (
        EventKind.RENAME,
        3,
        9,
        "",
        None,
    )


def test_a_thousand_contiguous_uids_take_one_small_payload() -> None:
    ev = StoreEvent("alice", "INBOX", 1, EventKind.APPEND, tuple(range(1, 1001)), 5)
    (payload,) = encode_notifications("alice", "i", 1, [ev])
    assert len(payload) < 80
    assert decode_notification(payload).events == (ev,)
