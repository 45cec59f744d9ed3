"""Mailbox operations as RFC 3501 describes them: CREATE, DELETE, RENAME, SUBSCRIBE, LIST, STATUS, SELECT."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from cpmsync.msgstore import (
    CannotDeleteInbox,
    FlagMode,
    InvalidName,
    MailboxExists,
    MailboxHasChildren,
    MessageStore,
    NoSuchMailbox,
    NoSuchSubscription,
    NoSuchUser,
    SearchFilter,
    UidSet,
    UserExists,
)

MSG = (
    b"From: <tel:+15143457900>\r\nTo: <tel:+15143450000>\r\nSubject: Lunch tomorrow?\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nSee you at noon\r\n"
)


def _names(store: MessageStore, *patterns: str, reference: str = "") -> list[str]:
    return [m.name for m in store.list_mailboxes("alice", reference, list(patterns) or ["*"])]


def test_users_have_inbox_and_hashed_passwords(store: MessageStore) -> None:
    assert _names(store) == ["INBOX"]
    assert store.verify_password("alice", "alice-pw")
    assert not store.verify_password("alice", "wrong")
    assert not store.verify_password("nobody", "alice-pw")
    with pytest.raises(UserExists):
        store.add_user("alice", "x")
    store.add_user("bob", "bob-pw")
    assert store.list_users() == ["alice", "bob"]
    store.delete_user("bob")
    assert store.list_users() == ["alice"]
    with pytest.raises(NoSuchUser):
        store.create_mailbox("bob", "x")


def test_users_see_only_their_own_mailboxes(store: MessageStore) -> None:
    store.add_user("bob", "bob-pw")
    a = store.create_mailbox("alice", "secret")
    assert _names(store) == ["INBOX", "secret"]
    assert [m.name for m in store.list_mailboxes("bob", "", ["*"])] == ["INBOX"]
    with pytest.raises(NoSuchMailbox):
        store.status("bob", a.id)  # an id of another user's mailbox is not a way in
    with pytest.raises(NoSuchMailbox):
        store.append("bob", "secret", MSG)


def test_rfc3501_create_makes_missing_parents(store: MessageStore) -> None:
    store.create_mailbox("alice", "f81d4fae/dfed4fae/x/")  # trailing delimiter is dropped
    assert _names(store) == ["INBOX", "f81d4fae", "f81d4fae/dfed4fae", "f81d4fae/dfed4fae/x"]
    with pytest.raises(MailboxExists):
        store.create_mailbox("alice", "f81d4fae")
    with pytest.raises(MailboxExists):
        store.create_mailbox("alice", "inbox")


@pytest.mark.parametrize("bad", ["", "/x", "a//b", "a*", "a%b", "a\x01"])
def test_invalid_names_are_refused(store: MessageStore, bad: str) -> None:
    with pytest.raises(InvalidName):
        store.create_mailbox("alice", bad)


def test_delete_refuses_inbox_and_parents(store: MessageStore) -> None:
    store.create_mailbox("alice", "a/b")
    with pytest.raises(MailboxHasChildren):
        store.delete_mailbox("alice", "a")
    with pytest.raises(CannotDeleteInbox):
        store.delete_mailbox("alice", "inbox")
    with pytest.raises(NoSuchMailbox):
        store.delete_mailbox("alice", "zz")
    store.delete_mailbox("alice", "a/b")
    store.delete_mailbox("alice", "a")
    assert _names(store) == ["INBOX"]


def test_rfc3501_rename_moves_children_and_keeps_identity(store: MessageStore) -> None:
    store.create_mailbox("alice", "a/b/c")
    store.create_mailbox("alice", "ab")  # a sibling sharing a prefix must not move
    before = store.status("alice", "a/b")
    store.append("alice", "a/b", MSG)
    store.subscribe("alice", "a/b/c")
    store.rename_mailbox("alice", "a", "x/y")
    assert _names(store) == ["INBOX", "ab", "x", "x/y", "x/y/b", "x/y/b/c"]
    after = store.status("alice", "x/y/b")
    assert (after.uidvalidity, after.mailboxid, after.messages) == (before.uidvalidity, before.mailboxid, 1)
    assert [m.name for m in store.list_mailboxes("alice", "", ["*"], subscribed_only=True)] == ["x/y/b/c"]
    with pytest.raises(InvalidName):
        store.rename_mailbox("alice", "x", "x/inner")
    with pytest.raises(MailboxExists):
        store.rename_mailbox("alice", "ab", "x")


def test_rfc3501_rename_of_inbox_moves_its_messages(store: MessageStore) -> None:
    store.create_mailbox("alice", "INBOX/child")
    store.append("alice", "INBOX", MSG)
    store.rename_mailbox("alice", "INBOX", "old-inbox")
    assert store.status("alice", "INBOX").messages == 0
    assert store.status("alice", "old-inbox").messages == 1
    assert "INBOX/child" in _names(store)  # INBOX's children stay


def test_subscriptions_may_name_missing_mailboxes(store: MessageStore) -> None:
    store.create_mailbox("alice", "a/b")
    store.subscribe("alice", "a/b")
    store.subscribe("alice", "gone")
    store.subscribe("alice", "gone")  # idempotent
    subs = store.list_mailboxes("alice", "", ["*"], subscribed_only=True)
    assert [(m.name, m.nonexistent) for m in subs] == [("a/b", False), ("gone", True)]
    listing = {m.name: m for m in store.list_mailboxes("alice", "", ["*"])}
    assert listing["a"].has_subscribed_children and not listing["a"].subscribed
    assert listing["a"].has_children and not listing["a/b"].has_children
    store.unsubscribe("alice", "gone")
    with pytest.raises(NoSuchSubscription):
        store.unsubscribe("alice", "gone")


def test_list_with_reference_and_percent(store: MessageStore) -> None:
    for n in ("Default", "tel:+15143457900", "g1/s1", "g1/s2/deep"):
        store.create_mailbox("alice", n)
    assert _names(store, "%") == ["INBOX", "Default", "g1", "tel:+15143457900"]
    assert _names(store, "%", reference="g1/") == ["g1/s1", "g1/s2"]
    assert _names(store, "") == []  # the delimiter query is the server's to answer


def test_status_counts_and_list_status_agree(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.append("alice", "Default", MSG, flags=["\\Seen"])
    store.append("alice", "Default", MSG)
    st = store.status("alice", "Default")
    assert (st.messages, st.unseen, st.uidnext, st.size, st.recent) == (2, 1, 3, 2 * len(MSG), 2)
    assert st.mailboxid.startswith("F") and st.uidvalidity > 0
    listed = {m.name: m.status for m in store.list_mailboxes("alice", "", ["*"], with_status=True)}
    assert listed["Default"] == st


def test_rfc3501_select_claims_recent_examine_does_not(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.append("alice", "Default", MSG, flags=["$Work"])
    ex = store.select("alice", "Default", readonly=True)
    assert ex.recent_uids == [1] and ex.keywords == ["$Work"]
    sel = store.select("alice", "Default", readonly=False)
    assert sel.recent_uids == [1] and sel.uids == [1]
    assert store.select("alice", "Default", readonly=False).recent_uids == []
    store.append("alice", "Default", MSG)
    assert store.status("alice", "Default").recent == 1


def check_select_agrees_with_status(store: MessageStore, user: str) -> None:
    """SELECT reads the mailbox and its messages in one pass: what it answers (EXISTS, RECENT,
    [UNSEEN n], FLAGS, UIDNEXT, HIGHESTMODSEQ...) is what STATUS and FETCH say of the same state."""
    store.create_mailbox(user, "Work/Chats")
    for i, flags in enumerate([["\\Seen"], [], ["$Work", "\\Seen"], ["$Late", "$Work"], ["\\Seen"]]):
        store.append(user, "Work/Chats", MSG + b"x" * i, flags=flags)
    store.store_flags(user, "Work/Chats", UidSet.from_uids([1]), FlagMode.ADD, ["\\Deleted"])
    store.expunge(user, "Work/Chats")
    ex = store.select(user, "Work/Chats/", readonly=True)  # a trailing delimiter names the same
    st = store.status(user, "Work/Chats")
    assert ex.status == st and ex.id == st.id
    assert ex.uids == [m.uid for m in store.fetch(user, "Work/Chats", None)] == [2, 3, 4, 5]
    assert ex.first_unseen == 1 and ex.keywords == ["$Late", "$Work"] and ex.recent_uids == [2, 3, 4, 5]
    assert store.select(user, ex.id, readonly=True) == ex  # by id, as a session reselects
    sel = store.select(user, "Work/Chats", readonly=False)  # claims \Recent: the status shows it
    assert sel.status == st and sel.recent_uids == [2, 3, 4, 5]
    assert store.status(user, "Work/Chats").recent == 0
    store.set_nomodseq(user, "Work/Chats", True)
    again = store.select(user, "Work/Chats", readonly=True)
    assert again.status == store.status(user, "Work/Chats") and again.status.nomodseq
    assert again.status.highestmodseq == 0 and again.recent_uids == []
    empty = store.select(user, "inbox", readonly=True)
    assert empty.status == store.status(user, "INBOX") and empty.uids == [] and empty.first_unseen is None
    with pytest.raises(NoSuchMailbox):
        store.select(user, "Work/Missing", readonly=True)
    with pytest.raises(NoSuchMailbox):
        store.select(user, ex.id + 1000, readonly=True)
    with pytest.raises(NoSuchUser):
        store.select(user + "-nobody", "Work/Chats", readonly=True)


def test_select_agrees_with_status_and_fetch(store: MessageStore) -> None:
    check_select_agrees_with_status(store, "alice")


def test_select_of_another_users_mailbox_is_no_such_mailbox(store: MessageStore) -> None:
    store.add_user("bob", "bob-pw")
    theirs = store.select("bob", "INBOX", readonly=True).id
    with pytest.raises(NoSuchMailbox):
        store.select("alice", theirs, readonly=True)


def test_internaldate_keeps_its_zone(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    when = datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    store.append("alice", "Default", MSG, internaldate=when)
    rec = store.fetch("alice", "Default", None)[0]
    assert rec.internaldate == when and rec.internaldate.utcoffset() == timedelta(hours=-5)
    # SEARCH ON compares the day in the message's own zone (2024-03-01), not UTC's (03-02).
    assert store.search("alice", "Default", SearchFilter(on=date(2024, 3, 1))).uids == [1]


def test_search_criteria(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    now = datetime(2025, 6, 15, 12, tzinfo=UTC)
    store.append("alice", "Default", MSG, flags=["\\Seen"], internaldate=now)
    store.append("alice", "Default", MSG.replace(b"Lunch", b"Dinner"), flags=["$Work"], internaldate=now)
    big = b"Subject: x\r\n\r\n" + b"y" * 5000
    store.append("alice", "Default", big, internaldate=now - timedelta(days=3))

    def uids(**kw: object) -> list[int]:
        return store.search("alice", "Default", SearchFilter(**kw)).uids  # type: ignore[arg-type]

    assert uids(flags_set=["\\seen"]) == [1]
    assert uids(flags_unset=["\\Seen"]) == [2, 3]
    assert uids(flags_set=["$Work"]) == [2]
    assert uids(flags_unset=["$Work"]) == [1, 3]
    assert uids(headers=[("subject", "lunch")]) == [1]
    assert uids(headers=[("To", "")]) == [1, 2]
    assert uids(body=["NOON"]) == [1, 2]
    assert uids(text=["dinner"]) == [2]
    assert uids(larger=1000) == [3]
    assert uids(smaller=1000) == [1, 2]
    assert uids(since=date(2025, 6, 15)) == [1, 2]
    assert uids(before=date(2025, 6, 15)) == [3]
    assert uids(sent_on=date(1994, 2, 7)) == [1, 2]
    assert uids(uids=UidSet.from_ranges([(2, 3)]), flags_unset=["\\Seen"]) == [2, 3]
    res = store.search("alice", "Default", SearchFilter(modseq_min=0))
    assert res.uids == [1, 2, 3] and res.highest_modseq == store.status("alice", "Default").highestmodseq


def test_many_uid_ranges_are_matched_exactly(store: MessageStore) -> None:
    from cpmsync.msgstore import BulkMailbox, BulkMessage

    store.bulk_load("alice", [BulkMailbox("Default", [BulkMessage(MSG)] * 300)])
    odd = UidSet.from_uids(range(1, 301, 2))  # 150 ranges: beyond the OR-of-BETWEEN limit
    assert [r.uid for r in store.fetch("alice", "Default", odd)] == list(range(1, 301, 2))
    store.store_flags("alice", "Default", odd, FlagMode.ADD, ["\\Deleted"])
    assert store.expunge("alice", "Default").uids == list(range(1, 301, 2))
