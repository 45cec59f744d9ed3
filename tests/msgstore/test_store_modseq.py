"""MODSEQs: one counter per user, unique across mailboxes (CR Appendix I.3), every change counted.

A mailbox's HIGHESTMODSEQ is the MODSEQ of its latest change, its creation included, so a new,
renamed, flagged or expunged mailbox shows up in LIST (CHANGEDSINCE).
"""

from __future__ import annotations

from cpmsync.msgstore import FlagMode, MessageStore, UidSet

MSG = b"From: <tel:+15143457900>\r\nSubject: hi\r\nConversation-ID: c1\r\n\r\nhello\r\n"


def _hms(store: MessageStore, name: str) -> int:
    return store.status("alice", name).highestmodseq


def test_cr_i3_modseqs_are_unique_across_mailboxes(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.create_mailbox("alice", "tel:+15143457900")
    seen: list[int] = []
    for i in range(10):
        box = "Default" if i % 2 else "tel:+15143457900"
        seen.append(store.append("alice", box, MSG).modseq)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    # Every message of every mailbox has its own MODSEQ.
    all_modseqs = [r.modseq for b in ("Default", "tel:+15143457900") for r in store.fetch("alice", b, None)]
    assert len(set(all_modseqs)) == len(all_modseqs)


def test_highestmodseq_follows_each_kind_of_change(store: MessageStore) -> None:
    def counter() -> int:
        return store.user_highest_modseq("alice")

    created = store.create_mailbox("alice", "Default")
    assert created.highestmodseq == counter()  # creation counts
    store.create_mailbox("alice", "other")

    a = store.append("alice", "Default", MSG)
    assert _hms(store, "Default") == a.modseq == counter()

    st = store.store_flags("alice", "Default", UidSet.from_uids([a.uid]), FlagMode.ADD, ["\\Seen"])
    assert st.modseq == _hms(store, "Default") == counter()

    store.store_flags("alice", "Default", UidSet.from_uids([a.uid]), FlagMode.ADD, ["\\Deleted"])
    ex = store.expunge("alice", "Default")
    assert ex.uids == [a.uid]
    assert ex.modseq == _hms(store, "Default") == counter()

    b = store.append("alice", "Default", MSG)
    cp = store.copy("alice", "Default", UidSet.from_uids([b.uid]), "other")
    assert cp.modseq == _hms(store, "other") == counter()

    mv = store.move("alice", "Default", UidSet.from_uids([b.uid]), "other")
    assert mv.copy.modseq == _hms(store, "other")
    assert mv.modseq == _hms(store, "Default") == counter()
    assert mv.copy.modseq is not None and mv.modseq is not None and mv.copy.modseq < mv.modseq

    renamed = store.rename_mailbox("alice", "other", "renamed")
    assert renamed.highestmodseq == counter()

    store.set_nomodseq("alice", "renamed", True)
    assert store.status("alice", "renamed").highestmodseq == 0  # RFC 7162: NOMODSEQ shows 0
    store.set_nomodseq("alice", "renamed", False)
    assert _hms(store, "renamed") == counter()

    before = counter()
    store.delete_mailbox("alice", "renamed")
    assert counter() == before + 1  # deletion takes a MODSEQ too (its tombstone's)


def test_a_store_that_changes_nothing_takes_no_modseq(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    a = store.append("alice", "Default", MSG, flags=["\\Seen"])
    before = store.user_highest_modseq("alice")
    res = store.store_flags("alice", "Default", None, FlagMode.ADD, ["\\seen"])
    assert res.modseq is None and res.changed_uids == []
    assert [r.uid for r in res.updated] == [a.uid]
    assert store.user_highest_modseq("alice") == before


def test_one_store_command_shares_one_modseq(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    for _ in range(3):
        store.append("alice", "Default", MSG)
    res = store.store_flags("alice", "Default", None, FlagMode.REPLACE, ["\\Flagged", "$Work"])
    assert res.changed_uids == [1, 2, 3]
    assert {r.modseq for r in store.fetch("alice", "Default", None)} == {res.modseq}
    assert all(r.flags == {"\\Flagged", "$Work"} for r in res.updated)


def test_rfc7162_unchangedsince_reports_modified(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    m1 = store.append("alice", "Default", MSG)
    m2 = store.append("alice", "Default", MSG)
    # m2 changed after m1's modseq: a STORE conditioned on m1's modseq must refuse m2 only.
    res = store.store_flags(
        "alice", "Default", UidSet.from_uids([1, 2]), FlagMode.ADD, ["\\Seen"], unchangedsince=m1.modseq
    )
    assert list(res.modified.iter_uids()) == [m2.uid]
    assert res.changed_uids == [m1.uid]
    flags = {r.uid: r.flags for r in store.fetch("alice", "Default", None)}
    assert flags == {1: {"\\Seen"}, 2: frozenset()}


def test_rfc7162_unchangedsince_zero_always_fails(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.append("alice", "Default", MSG)
    res = store.store_flags("alice", "Default", None, FlagMode.ADD, ["\\Seen"], unchangedsince=0)
    assert list(res.modified.iter_uids()) == [1] and res.modseq is None


def test_expunge_leaves_tombstones_for_vanished(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    for _ in range(5):
        store.append("alice", "Default", MSG)
    mark = store.user_highest_modseq("alice")
    store.store_flags("alice", "Default", UidSet.from_uids([2, 4]), FlagMode.ADD, ["\\Deleted"])
    ex = store.expunge("alice", "Default")
    assert ex.uids == [2, 4]
    changes = store.changes_since("alice", "Default", mark)
    assert changes.vanished == [2, 4]
    assert changes.changed == []  # the flagged ones are gone; nothing else changed
    assert store.vanished_since("alice", "Default", mark, UidSet.from_ranges([(3, 5)])) == [4]
    assert store.vanished_since("alice", "Default", ex.modseq or 0) == []


def test_uid_expunge_only_touches_the_given_uids(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    for _ in range(3):
        store.append("alice", "Default", MSG, flags=["\\Deleted"])
    assert store.expunge("alice", "Default", UidSet.from_uids([2])).uids == [2]
    assert store.uids("alice", "Default") == [1, 3]
    assert store.expunge("alice", "Default", UidSet.from_uids([2])).modseq is None  # nothing to do


def test_changes_since_lists_new_and_reflagged_messages(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.append("alice", "Default", MSG)
    mark = store.user_highest_modseq("alice")
    store.append("alice", "Default", MSG)
    store.store_flags("alice", "Default", UidSet.from_uids([1]), FlagMode.ADD, ["\\Seen"])
    changes = store.changes_since("alice", "Default", mark)
    assert [r.uid for r in changes.changed] == [1, 2]
    assert [r.uid for r in store.fetch("alice", "Default", None, changedsince=mark)] == [1, 2]


def test_uids_are_never_reused_and_copy_keeps_flags_and_emailid(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.create_mailbox("alice", "other")
    a = store.append("alice", "Default", MSG, flags=["\\Flagged", "$Label1"])
    store.store_flags("alice", "Default", None, FlagMode.ADD, ["\\Deleted"])
    store.expunge("alice", "Default")
    b = store.append("alice", "Default", MSG)
    assert b.uid == a.uid + 1
    cp = store.copy("alice", "Default", None, "other")
    assert cp.src_uids == [b.uid] and cp.dst_uids == [1]
    src = store.fetch("alice", "Default", None)[0]
    dst = store.fetch("alice", "other", None, with_data=True)[0]
    assert dst.emailid == src.emailid and dst.data == MSG
    assert dst.threadid == src.threadid is not None  # from Conversation-ID


def test_delete_of_a_copied_message_keeps_the_other_copy(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.create_mailbox("alice", "other")
    store.append("alice", "Default", MSG)
    store.copy("alice", "Default", None, "other")
    store.delete_mailbox("alice", "Default")
    assert store.fetch_data("alice", "other", 1) == MSG
