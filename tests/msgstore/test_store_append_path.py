"""APPEND's four-statement path (UPDATE ... RETURNING on the counters, DBAPI cursor) keeps the
store's guarantees on SQLite and PostgreSQL: a refused APPEND takes no MODSEQ and no UID, events
arrive in commit order with the committed MODSEQ, mailbox ids and names both address the mailbox.
STORE and EXPUNGE of a mailbox by id (a session's selected one) run on the DBAPI cursor too and
give what the by-name path gives. PostgreSQL as in test_store_postgres.py (127.0.0.1:5432, a
fresh schema; a missing server fails)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpmsync.msgstore import FlagMode, MessageStore, NoSuchMailbox, NoSuchUser, UidSet
from cpmsync.msgstore.hub import StoreEvent
from tests.support.msgstore_cluster import pg_store

MSG = b"From: <tel:+15143457900>\r\nSubject: hi\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\n\r\nyo\r\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[MessageStore, str]]:
    if request.param == "postgresql":
        with pg_store() as s_user:
            yield s_user
        return
    s = MessageStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    s.add_user("alice", "pw")
    yield s, "alice"
    s.close()


def _capture(s: MessageStore) -> list[StoreEvent]:
    seen: list[StoreEvent] = []
    s.hub.publish = seen.extend  # type: ignore[method-assign]
    return seen


def test_refused_append_takes_no_modseq_and_no_uid(store: tuple[MessageStore, str]) -> None:
    s, u = store
    before = s.user_highest_modseq(u)
    with pytest.raises(NoSuchMailbox):
        s.append(u, "nope", MSG)
    with pytest.raises(NoSuchMailbox):
        s.append(u, 10**9, MSG)
    with pytest.raises(NoSuchUser):
        s.append("nobody-" + u, "INBOX", MSG)
    assert s.user_highest_modseq(u) == before
    r = s.append(u, "INBOX", MSG)
    assert (r.uid, r.modseq) == (1, before + 1)
    assert s.status(u, "INBOX").uidnext == 2


def test_append_by_id_and_name_record_everything(store: tuple[MessageStore, str]) -> None:
    s, u = store
    box = s.create_mailbox(u, "tel:+15143457900")
    events = _capture(s)
    a = s.append(u, box.id, MSG, ["\\Seen", "$Label"])
    b = s.append(u, "tel:+15143457900/", MSG)  # trailing delimiter, as the server may pass it
    assert a.mailbox_id == b.mailbox_id == box.id and a.uidvalidity == box.uidvalidity
    assert (a.uid, b.uid) == (1, 2) and b.modseq == a.modseq + 1
    st = s.status(u, box.id)
    assert (st.messages, st.unseen, st.uidnext, st.highestmodseq) == (2, 1, 3, b.modseq)
    recs = s.fetch(u, box.id, UidSet.all(), with_data=True)
    assert [r.flags for r in recs] == [frozenset({"\\Seen", "$Label"}), frozenset()]
    assert recs[0].data == MSG and recs[0].size == len(MSG) and recs[0].threadid is None
    assert [(e.mailbox, e.mailbox_id, e.uids, e.modseq) for e in events] == [
        ("tel:+15143457900", box.id, (1,), a.modseq),
        ("tel:+15143457900", box.id, (2,), b.modseq),
    ]


def test_concurrent_appends_publish_in_commit_order(store: tuple[MessageStore, str]) -> None:
    s, u = store
    names = [f"c{i}" for i in range(4)]
    for n in names:
        s.create_mailbox(u, n)
    events = _capture(s)
    start = s.user_highest_modseq(u)

    def worker(name: str) -> None:
        for _ in range(15):
            s.append(u, name, MSG)

    threads = [threading.Thread(target=worker, args=(n,)) for n in names for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    modseqs = [e.modseq for e in events]
    assert modseqs == list(range(start + 1, start + 1 + 8 * 15))
    for n in names:
        assert s.uids(u, n) == list(range(1, 31))


def _view(s: MessageStore, u: str, box: str) -> list[tuple[int, frozenset[str], bytes | None]]:
    return [(r.uid, r.flags, r.data) for r in s.fetch(u, box, UidSet.all(), with_data=True)]


def test_store_and_expunge_by_id_do_what_by_name_does(store: tuple[MessageStore, str]) -> None:
    """The same STOREs and EXPUNGEs on two mailboxes with the same messages, one addressed by id
    (DBAPI cursor), one by name (Core): same results, same events, same messages left, same
    tombstones; a blob still used by a copy elsewhere survives the EXPUNGE."""
    s, u = store
    by_id, by_name = s.create_mailbox(u, "by-id"), s.create_mailbox(u, "by-name")
    for box in ("by-id", "by-name"):
        for i in range(6):
            s.append(u, box, MSG + b"%d\r\n" % i, ["\\Seen"] if i % 2 else [])
    s.copy(u, "by-id", UidSet.from_uids([2]), "INBOX")  # shares message 2's blob
    events = _capture(s)
    ops: list[tuple[UidSet | None, FlagMode, list[str], int | None]] = [
        (UidSet.from_uids([1, 2, 3]), FlagMode.ADD, ["\\Flagged", "$Work"], None),
        (UidSet.from_uids([2, 3]), FlagMode.ADD, ["\\Flagged"], None),  # 2 and 3 unchanged: no MODSEQ
        (None, FlagMode.REMOVE, ["\\Seen"], None),
        (UidSet.from_ranges([(2, 4), (6, 6)]), FlagMode.REPLACE, ["\\Deleted", "$x"], None),
        (UidSet.from_uids([1, 5]), FlagMode.ADD, ["\\Deleted"], 0),  # UNCHANGEDSINCE 0: all modified
        (UidSet.from_uids([5]), FlagMode.ADD, ["\\Deleted"], None),
    ]
    for uids, mode, flags, since in ops:
        a = s.store_flags(u, by_id.id, uids, mode, flags, unchangedsince=since)
        b = s.store_flags(u, "by-name", uids, mode, flags, unchangedsince=since)
        assert [(r.uid, r.flags) for r in a.updated] == [(r.uid, r.flags) for r in b.updated]
        assert (a.changed_uids, a.modified.ranges) == (b.changed_uids, b.modified.ranges)
        assert (a.modseq is None) == (b.modseq is None)
        if a.modseq is not None:
            assert [r.modseq for r in a.updated if r.uid in a.changed_uids] == [a.modseq] * len(
                a.changed_uids
            )
    ex_a = s.expunge(u, by_id.id, UidSet.from_uids([1, 2, 3, 4]))  # UID EXPUNGE: 5 and 6 stay
    ex_b = s.expunge(u, "by-name", UidSet.from_uids([1, 2, 3, 4]))
    assert ex_a.uids == ex_b.uids == [2, 3, 4]
    assert s.expunge(u, by_id.id).uids == s.expunge(u, "by-name").uids == [5, 6]
    assert s.expunge(u, by_id.id).uids == []  # nothing left to expunge: no MODSEQ taken
    assert [(uid, flags) for uid, flags, _ in _view(s, u, "by-id")] == [
        (uid, flags) for uid, flags, _ in _view(s, u, "by-name")
    ]
    assert s.vanished_since(u, by_id.id, 0) == s.vanished_since(u, "by-name", 0) == [2, 3, 4, 5, 6]
    assert _view(s, u, "INBOX")[0][2] == MSG + b"1\r\n"  # the copy's bytes are still there
    per_box = {
        box.id: [(e.kind, e.uids) for e in events if e.mailbox_id == box.id] for box in (by_id, by_name)
    }
    assert per_box[by_id.id] == per_box[by_name.id] and len(per_box[by_id.id]) == 6
    assert {e.mailbox for e in events if e.mailbox_id == by_id.id} == {"by-id"}
    modseqs = [e.modseq for e in events]
    assert modseqs == sorted(modseqs) and s.status(u, by_id.id).highestmodseq == s.user_highest_modseq(u) - 1


def test_store_and_expunge_of_a_missing_or_foreign_mailbox_id_change_nothing(
    store: tuple[MessageStore, str],
) -> None:
    s, u = store
    other = f"o{uuid.uuid4().hex[:12]}"
    s.add_user(other, "pw")
    try:
        foreign = s.create_mailbox(other, "theirs")
        s.append(other, foreign.id, MSG, ["\\Deleted"])
        before = (s.user_highest_modseq(u), s.user_highest_modseq(other))
        for box in (foreign.id, 10**9):
            with pytest.raises(NoSuchMailbox):
                s.store_flags(u, box, None, FlagMode.ADD, ["\\Seen"])
            with pytest.raises(NoSuchMailbox):
                s.expunge(u, box)
        with pytest.raises(NoSuchUser):
            s.expunge("nobody-" + u, foreign.id)
        assert (s.user_highest_modseq(u), s.user_highest_modseq(other)) == before
        assert [flags for _, flags, _ in _view(s, other, "theirs")] == [frozenset({"\\Deleted"})]
    finally:
        s.delete_user(other)
