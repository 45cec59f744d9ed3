"""The same store on PostgreSQL (127.0.0.1:5432, trust auth, database `test`).

Skipped only when no PostgreSQL driver is installed (`pip install 'psycopg[binary]'`); a server
that is not there is a failure, not a skip. Runs in a fresh schema so it cannot touch other tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cpmsync.msgstore import FlagMode, MessageStore, SearchFilter, UidSet
from tests.msgstore.test_store_mailboxes import check_select_agrees_with_status
from tests.support.msgstore_cluster import pg_store

MSG = b"From: <tel:+15143457900>\r\nSubject: Lunch\r\n\r\nsee you\r\n"


@pytest.fixture
def store() -> Iterator[MessageStore]:
    with pg_store() as (s, user):
        s.test_user = user  # type: ignore[attr-defined]
        yield s


def test_core_operations_on_postgresql(store: MessageStore) -> None:
    u: str = store.test_user  # type: ignore[attr-defined]
    assert store.verify_password(u, "pw") and not store.verify_password(u, "no")
    store.create_mailbox(u, "f81d4fae/dfed4fae")
    store.create_mailbox(u, "Default")
    m = store.user_highest_modseq(u)
    a = store.append(u, "Default", MSG, flags=["\\Seen"])
    assert [x.name for x in store.list_changed_since(u, m)] == ["Default"]
    r = store.store_flags(u, "Default", UidSet.from_uids([a.uid]), FlagMode.ADD, ["\\Deleted", "$Work"])
    assert r.modseq == a.modseq + 1
    assert store.search(u, "Default", SearchFilter(flags_set=["$Work"], text=["SEE YOU"])).uids == [a.uid]
    cp = store.copy(u, "Default", None, "f81d4fae/dfed4fae")
    assert cp.dst_uids == [1]
    ex = store.expunge(u, "Default")
    assert ex.uids == [a.uid]
    assert store.changes_since(u, "Default", m).vanished == [a.uid]
    store.rename_mailbox(u, "f81d4fae", "x")
    changed = {i.name: i.old_name for i in store.list_changed_since(u, m)}
    assert changed == {"Default": None, "x": "f81d4fae", "x/dfed4fae": "f81d4fae/dfed4fae"}
    store.delete_mailbox(u, "Default")
    gone = [i for i in store.list_changed_since(u, m) if i.nonexistent]
    assert [g.name for g in gone] == ["Default"]
    st = store.status(u, "x/dfed4fae")
    assert (st.messages, st.unseen) == (1, 0)
    store.set_nomodseq(u, "x", True)
    assert "x" not in {i.name for i in store.list_changed_since(u, 0)}


def test_select_agrees_with_status_on_postgresql(store: MessageStore) -> None:
    check_select_agrees_with_status(store, store.test_user)  # type: ignore[attr-defined]


def test_concurrent_sessions_on_postgresql(store: MessageStore) -> None:
    """FOR UPDATE on the user row serializes MODSEQ allocation across connections."""
    u: str = store.test_user  # type: ignore[attr-defined]
    store.create_mailbox(u, "a")
    store.create_mailbox(u, "b")
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def session(n: int) -> None:
        try:
            for _ in range(5):
                res = store.append(u, "a" if n % 2 else "b", MSG)
                with lock:
                    got.append(res.modseq)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(got) == 100 and len(set(got)) == 100
    assert store.status(u, "a").messages + store.status(u, "b").messages == 100
