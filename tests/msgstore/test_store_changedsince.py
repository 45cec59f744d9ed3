"""LIST (CHANGEDSINCE m) at the storage level: CR Appendix I.3, I.4, I.5 and our gone/renamed extension.

The property: after any sequence of changes, for every m, the mailboxes listed as changed since m
are exactly those whose STATUS HIGHESTMODSEQ > m, NOMODSEQ ones excepted.
"""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cpmsync.msgstore import (
    BulkMailbox,
    BulkMessage,
    FlagMode,
    MailboxExists,
    MailboxHasChildren,
    MessageStore,
    NoSuchMailbox,
    StoreError,
    UidSet,
)

MSG = b"From: <tel:+15143457900>\r\nSubject: hi\r\n\r\nhello\r\n"
CR_NAMES = [
    "Default",
    "tel:15143457900",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2",
]


def _changed(store: MessageStore, m: int, **kw: object) -> list[str]:
    return [x.name for x in store.list_changed_since("alice", m, **kw)]  # type: ignore[arg-type]


def test_cr_example_1_only_changed_folders_are_listed(store: MessageStore) -> None:
    for n in CR_NAMES:
        store.create_mailbox("alice", n)
    for i in range(20):
        store.create_mailbox("alice", f"tel:+1514345{i:04d}")
    m = store.user_highest_modseq("alice")
    store.append("alice", "Default", MSG)
    store.append("alice", CR_NAMES[3], MSG)
    store.append("alice", "tel:15143457900", MSG)
    assert _changed(store, m) == ["Default", CR_NAMES[3], "tel:15143457900"]
    assert _changed(store, store.user_highest_modseq("alice")) == []


def test_cr_example_2_status_comes_with_the_list(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    m = store.user_highest_modseq("alice")
    a = store.append("alice", "Default", MSG)
    (item,) = store.list_changed_since("alice", m, with_status=True)
    assert item.status is not None
    assert (item.status.uidnext, item.status.highestmodseq) == (a.uid + 1, a.modseq)


def test_cr_i4_pattern_and_reference_still_apply(store: MessageStore) -> None:
    for n in CR_NAMES:
        store.create_mailbox("alice", n)
    assert _changed(store, 0, patterns=["tel:%"]) == ["tel:15143457900"]
    group = "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/"
    assert _changed(store, 0, reference=group, patterns=["%"]) == [CR_NAMES[3]]
    assert _changed(store, 0, patterns=["%"]) == [
        "INBOX",
        "Default",
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf5",
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "tel:15143457900",
    ]


def test_cr_i3_expunge_only_change_is_listed_with_and_without_qresync(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.append("alice", "Default", MSG, flags=["\\Deleted"])
    m = store.user_highest_modseq("alice")
    store.expunge("alice", "Default")
    assert _changed(store, m, qresync=True) == ["Default"]  # I.3 1a: SHALL
    assert _changed(store, m, qresync=False) == ["Default"]  # I.3 2a: MAY, and we do


def test_cr_i5_nomodseq_mailboxes_are_never_listed(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    store.set_nomodseq("alice", "Default", True)
    store.append("alice", "Default", MSG)
    assert "Default" not in _changed(store, 0)
    store.create_mailbox("alice", "gone")
    m = store.user_highest_modseq("alice")
    store.set_nomodseq("alice", "gone", True)
    store.delete_mailbox("alice", "gone")
    assert _changed(store, m) == []  # not even as \NonExistent
    store.set_nomodseq("alice", "Default", False)
    assert "Default" in _changed(store, m)  # clearing NOMODSEQ makes the client resync it


def test_subscribed_selection_combines(store: MessageStore) -> None:
    store.create_mailbox("alice", "a")
    store.create_mailbox("alice", "b")
    store.subscribe("alice", "a")
    assert _changed(store, 0, subscribed_only=True) == ["a"]
    (a,) = store.list_changed_since("alice", 0, subscribed_only=True)
    assert a.subscribed


def test_extension_deleted_mailbox_is_listed_once_as_nonexistent(store: MessageStore) -> None:
    store.create_mailbox("alice", "Default")
    box = store.create_mailbox("alice", "tel:15143457900")
    m = store.user_highest_modseq("alice")
    store.delete_mailbox("alice", "tel:15143457900")
    (gone,) = store.list_changed_since("alice", m)
    assert (gone.name, gone.nonexistent, gone.mailboxid) == ("tel:15143457900", True, box.mailboxid)
    assert store.list_changed_since("alice", store.user_highest_modseq("alice")) == []
    assert store.list_changed_since("alice", m, include_gone=False) == []  # strict CR


def test_extension_mailbox_created_and_deleted_after_m_is_not_reported(store: MessageStore) -> None:
    m = store.user_highest_modseq("alice")
    store.create_mailbox("alice", "brief")
    store.delete_mailbox("alice", "brief")
    assert store.list_changed_since("alice", m) == []


def test_extension_rename_carries_the_name_known_at_m(store: MessageStore) -> None:
    store.create_mailbox("alice", "a/b")
    m = store.user_highest_modseq("alice")
    store.rename_mailbox("alice", "a", "x")
    store.rename_mailbox("alice", "x", "y")
    got = {i.name: i.old_name for i in store.list_changed_since("alice", m)}
    assert got == {"y": "a", "y/b": "a/b"}
    got_strict = {i.name: i.old_name for i in store.list_changed_since("alice", m, include_gone=False)}
    assert got_strict == {"y": None, "y/b": None}


def test_extension_recreated_name_is_listed_once_as_existing(store: MessageStore) -> None:
    old = store.create_mailbox("alice", "Default")
    m = store.user_highest_modseq("alice")
    store.delete_mailbox("alice", "Default")
    new = store.create_mailbox("alice", "Default")
    (item,) = store.list_changed_since("alice", m)
    assert not item.nonexistent and item.mailboxid == new.mailboxid != old.mailboxid
    assert new.uidvalidity != old.uidvalidity  # RFC 3501 2.3.1.1: a new mailbox, a new UIDVALIDITY


# ---------------------------------------------------------------- the property

NAMES = st.sampled_from(["Default", "tel:+15143457900", "g1", "g1/s1", "g1/s2", "g2/s1/t"])


class ChangedSinceMachine(RuleBasedStateMachine):
    """Random changes; after each, CHANGEDSINCE must agree with STATUS for every m."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="cpm-changedsince-")
        self.store = MessageStore(f"sqlite:///{self.dir}/s.sqlite", sqlite_synchronous="OFF")
        self.store.add_user("alice", "pw")
        self.last_counter = self.store.user_highest_modseq("alice")

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _existing(self) -> list[str]:
        return [m.name for m in self.store.list_mailboxes("alice", "", ["*"])]

    def _after_change(self, name: str | None = None) -> None:
        before = self.last_counter
        counter = self.store.user_highest_modseq("alice")
        assert counter > before, "a change must take a new MODSEQ"
        self.last_counter = counter
        if name is not None:
            st_ = self.store.status("alice", name)
            if not st_.nomodseq:
                # Changed by this step (a RENAME's children may take later MODSEQs still).
                assert before < st_.highestmodseq <= counter

    @rule(name=NAMES)
    def create(self, name: str) -> None:
        try:
            self.store.create_mailbox("alice", name)
        except MailboxExists:
            return
        self._after_change(name)

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        try:
            self.store.delete_mailbox("alice", name)
        except (NoSuchMailbox, MailboxHasChildren):
            return
        self._after_change()

    @rule(old=NAMES, new=NAMES)
    def rename(self, old: str, new: str) -> None:
        try:
            self.store.rename_mailbox("alice", old, new)
        except StoreError:
            return
        self._after_change(new)

    @rule(name=NAMES, n=st.integers(1, 3), seen=st.booleans())
    def append(self, name: str, n: int, seen: bool) -> None:
        for _ in range(n):
            try:
                self.store.append("alice", name, MSG, flags=["\\Seen"] if seen else [])
            except NoSuchMailbox:
                return
            self._after_change(name)

    @rule(name=NAMES, flag=st.sampled_from(["\\Seen", "\\Flagged", "\\Deleted", "$Work"]), add=st.booleans())
    def flag(self, name: str, flag: str, add: bool) -> None:
        try:
            res = self.store.store_flags(
                "alice", name, UidSet.all(), FlagMode.ADD if add else FlagMode.REMOVE, [flag]
            )
        except NoSuchMailbox:
            return
        if res.modseq is not None:
            self._after_change(name)

    @rule(name=NAMES)
    def expunge(self, name: str) -> None:
        try:
            res = self.store.expunge("alice", name)
        except NoSuchMailbox:
            return
        if res.modseq is not None:
            self._after_change(name)

    @rule(src=NAMES, dst=NAMES, move=st.booleans())
    def copy_or_move(self, src: str, dst: str, move: bool) -> None:
        try:
            if move:
                self.store.move("alice", src, None, dst)
            else:
                self.store.copy("alice", src, None, dst)
        except NoSuchMailbox:
            return

    @rule(names=st.lists(NAMES, min_size=1, max_size=3), n=st.integers(0, 2))
    def bulk_load(self, names: list[str], n: int) -> None:
        before = self.last_counter
        self.store.bulk_load("alice", [BulkMailbox(x, [BulkMessage(MSG)] * n) for x in names])
        counter = self.store.user_highest_modseq("alice")
        assert counter >= before
        self.last_counter = counter

    @rule(name=NAMES, on=st.booleans())
    def nomodseq(self, name: str, on: bool) -> None:
        try:
            self.store.set_nomodseq("alice", name, on)
        except NoSuchMailbox:
            return
        self._after_change(name)

    @invariant()
    def changed_since_agrees_with_status(self) -> None:
        listing = self.store.list_mailboxes("alice", "", ["*"], with_status=True)
        status = {m.name: m.status for m in listing}
        counter = self.store.user_highest_modseq("alice")
        visible = [s.highestmodseq for s in status.values() if s is not None and not s.nomodseq]
        assert len(set(visible)) == len(visible), "HIGHESTMODSEQs must be unique across mailboxes (I.3)"
        for m in range(0, counter + 1):
            expected = {
                n for n, s in status.items() if s is not None and not s.nomodseq and s.highestmodseq > m
            }
            strict = self.store.list_changed_since("alice", m, include_gone=False)
            assert {x.name for x in strict} == expected, f"CHANGEDSINCE {m}"
            extended = self.store.list_changed_since("alice", m)
            assert {x.name for x in extended if not x.nonexistent} == expected
            for x in extended:
                if x.nonexistent:
                    assert x.name not in status


ChangedSinceMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_changed_since_equals_status_highestmodseq = ChangedSinceMachine.TestCase
