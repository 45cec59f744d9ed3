"""Mailbox ids are never handed out twice (audit P0-3), over the wire and for an older SQLite file.

SQLite reuses the rowid of a deleted newest row unless the table is AUTOINCREMENT; rename and
tombstone history is keyed on that id, so a reused id put a live mailbox's OLDNAME on a deleted one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server_testlib import running_server
from sqlalchemy import MetaData, create_engine

from cpmsync.imap import ListData, StatusData
from cpmsync.msgstore import MessageStore
from cpmsync.msgstore import schema as t


async def test_deleted_newest_mailbox_gets_no_oldname_of_a_new_one() -> None:
    async with running_server() as srv, srv.client() as c:
        await c.login()
        for name in ("Default", "older", "newest"):
            assert (await c.cmd(f'CREATE "{name}"')).ok
        reply = await c.cmd('LIST "" * RETURN (STATUS (HIGHESTMODSEQ))')
        m = max(s.highestmodseq for s in reply.of(StatusData))
        assert (await c.cmd('DELETE "newest"')).ok  # the highest id: SQLite would hand it out again
        assert (await c.cmd('CREATE "x1"')).ok
        assert (await c.cmd('RENAME "x1" "x2"')).ok
        assert (await c.cmd('RENAME "older" "older2"')).ok
        listed = (await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')).of(ListData)
        got = {(r.name, r.attributes, r.oldname) for r in listed}
        assert ("newest", ("\\NonExistent",), None) in got
        assert ("older2", (), "older") in got
        assert not any(r.oldname == "x1" for r in listed)


def _old_schema_file(path: Path) -> None:
    """The schema as it was before AUTOINCREMENT (same tables, ids reusable)."""
    old = MetaData()
    for table in t.metadata.sorted_tables:
        copy = table.to_metadata(old)
        copy.dialect_options["sqlite"]["autoincrement"] = False
    engine = create_engine(f"sqlite:///{path}")
    old.create_all(engine)
    engine.dispose()
    sql = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master WHERE name = 'mailbox'").fetchone()[0]
    assert "AUTOINCREMENT" not in sql.upper()


def test_store_file_from_before_autoincrement_opens_and_stops_reusing_ids(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _old_schema_file(db)
    store = MessageStore(f"sqlite:///{db}")
    store.add_user("alice", "pw")
    store.create_mailbox("alice", "a")
    store.create_mailbox("alice", "b")
    store.append("alice", "a", b"Subject: kept\r\n\r\nbody\r\n")
    store.close()

    raw = sqlite3.connect(db)
    # Simulate history written by the old server: mailbox "b" (newest id) was deleted.
    b_id = raw.execute("SELECT id FROM mailbox WHERE name = 'b'").fetchone()[0]
    raw.execute("DELETE FROM mailbox WHERE id = ?", (b_id,))
    raw.execute(
        "INSERT INTO mailbox_rename (user_id, mailbox_id, old_name, new_name, modseq)"
        " VALUES (1, ?, 'b0', 'b', 1)",
        (b_id,),
    )
    raw.commit()
    raw.close()

    store = MessageStore(f"sqlite:///{db}")  # the upgrade happens on open
    try:
        store.create_mailbox("alice", "c")
        raw = sqlite3.connect(db)
        ids = dict(raw.execute("SELECT name, id FROM mailbox").fetchall())
        sqls = [
            r[0].upper()
            for r in raw.execute("SELECT sql FROM sqlite_master WHERE name IN ('mailbox', 'message', 'blob')")
        ]
        fk_problems = raw.execute("PRAGMA foreign_key_check").fetchall()
        messages = raw.execute(
            "SELECT count(*) FROM message JOIN blob ON blob.id = message.blob_id"
        ).fetchone()[0]
        raw.close()
        assert ids["c"] > b_id
        assert all("AUTOINCREMENT" in s for s in sqls) and len(sqls) == 3
        assert fk_problems == [] and messages == 1
        names = {mb.name for mb in store.list_mailboxes("alice", "", ["*"])}
        assert {"a", "c"} <= names and "b" not in names
    finally:
        store.close()
