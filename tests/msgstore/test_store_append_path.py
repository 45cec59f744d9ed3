"""APPEND's four-statement path (UPDATE ... RETURNING on the counters, DBAPI cursor) keeps the
store's guarantees on SQLite and PostgreSQL: a refused APPEND takes no MODSEQ and no UID, events
arrive in commit order with the committed MODSEQ, mailbox ids and names both address the mailbox.
PostgreSQL as in test_store_postgres.py (127.0.0.1:5432, a fresh schema; a missing server fails)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpmsync.msgstore import MessageStore, NoSuchMailbox, NoSuchUser, UidSet
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
