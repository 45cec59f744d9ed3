"""Schema version: a newer daemon migrates an older cache, or rebuilds it saying so in one line."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from daemon_sync_helpers import cache_with_one_message

from cpmsync.daemon.cache import Cache, MessageData
from cpmsync.models.schema import RETIRED_INDEXES, open_engine
from cpmsync.models.tables import SCHEMA_VERSION


def downgrade_to_v1(path: Path) -> None:
    """Shape the file like schema v1: no trace/outbox_seq tables, no per-folder outbox sequence."""
    con = sqlite3.connect(path)
    con.executescript(
        """
        DROP TABLE trace;
        DROP TABLE outbox_seq;
        DROP INDEX IF EXISTS ix_outbox_folder_seq;
        ALTER TABLE outbox DROP COLUMN seq;
        ALTER TABLE outbox DROP COLUMN folder;
        UPDATE schema_version SET version = 1;
        """
    )
    con.commit()
    con.close()


def downgrade_to_v2(path: Path) -> None:
    """Shape the file like schema v2: the outbox without AUTOINCREMENT (ids could be reused)."""
    con = sqlite3.connect(path)
    cols = "id, topic, payload, qos, retain, created, folder, seq, event_id"
    con.executescript(
        f"""
        ALTER TABLE outbox RENAME TO outbox_x;
        DROP INDEX IF EXISTS ix_outbox_folder_seq;
        DROP INDEX ix_outbox_topic;
        CREATE TABLE outbox (id INTEGER NOT NULL PRIMARY KEY, topic VARCHAR NOT NULL,
            payload VARCHAR NOT NULL, qos INTEGER NOT NULL, retain BOOLEAN NOT NULL,
            created DATETIME NOT NULL, folder VARCHAR NOT NULL, seq INTEGER NOT NULL, event_id VARCHAR);
        CREATE INDEX ix_outbox_topic ON outbox (topic);
        CREATE INDEX ix_outbox_folder_seq ON outbox (folder, seq);
        INSERT INTO outbox ({cols}) SELECT {cols} FROM outbox_x;
        DROP TABLE outbox_x;
        UPDATE schema_version SET version = 2;
        """
    )
    con.commit()
    con.close()


def test_v2_outbox_becomes_autoincrement_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    before = sqlite3.connect(path).execute("SELECT id, topic, payload FROM outbox ORDER BY id").fetchall()
    downgrade_to_v2(path)
    c = Cache.open(path, "acct")
    assert c.migrated_from == 2
    after = sqlite3.connect(path).execute("SELECT id, topic, payload FROM outbox ORDER BY id").fetchall()
    assert after == before
    ddl = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
    assert "AUTOINCREMENT" in ddl
    c.outbox_ack([before[-1][0]])
    with c.folder_sync("INBOX") as fs:
        fs.add_message(MessageData(uid=2, modseq=11))
    ids = [i.id for i in c.outbox_batch(100)]
    assert before[-1][0] not in ids  # the freed id is not handed out again


def cache_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cpmsync.daemon.cache" and "cache" in r.getMessage()]


def test_older_cache_is_migrated_keeping_its_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    downgrade_to_v1(path)
    caplog.set_level(logging.INFO, logger="cpmsync")
    c = Cache.open(path, "acct")
    assert (c.rebuilt, c.migrated_from) == (False, 1)
    assert [m.subject for m in c.messages("INBOX")] == ["kept"]
    assert c.watermark == 10
    assert c.outbox_count() > 0  # unsent events survive the migration
    c.add_trace("x", [(1.0, "in", 3)])  # the v2 table exists now
    (line,) = cache_logs(caplog)
    assert line.getMessage() == "cache migrated" and line.levelno == logging.INFO
    ver = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchone()[0]
    assert ver == SCHEMA_VERSION


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 5, 0])
def test_unknown_schema_is_dropped_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = ?", (version,))
    con.commit()
    con.close()
    caplog.set_level(logging.INFO, logger="cpmsync")
    c = Cache.open(path, "acct")
    assert c.rebuilt is True
    assert c.folders() == {} and c.watermark == 0  # a full resync from the server follows
    (line,) = cache_logs(caplog)
    assert line.levelno == logging.WARNING and "rebuilt" in line.getMessage()
    assert f"v{version}" in line.reason or "migration" in line.reason  # type: ignore[attr-defined]


def test_damaged_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Our own (stamped) cache, damaged after its header. A file that is not ours is refused
    # instead (tests/daemon/test_daemon_cache_ownership.py).
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    data = bytearray(path.read_bytes())
    data[100:] = b"this is not a database" * ((len(data) - 100) // 22) + b"x" * ((len(data) - 100) % 22)
    path.write_bytes(bytes(data))
    caplog.set_level(logging.INFO, logger="cpmsync")
    c = Cache.open(path, "acct")
    assert c.rebuilt is True
    c.begin_discovery(1, [])
    assert c.watermark == 1
    assert len(cache_logs(caplog)) == 1


def test_current_cache_opens_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    caplog.set_level(logging.INFO, logger="cpmsync")
    c = Cache.open(path, "acct")
    assert (c.rebuilt, c.migrated_from) == (False, None)
    assert cache_logs(caplog) == []
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _indexes(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        con.close()


def test_unused_message_indexes_are_dropped_at_open(tmp_path: Path) -> None:
    # A cache made by an earlier version carries indexes no query uses; every message insert paid
    # for them. Opening it drops them and keeps the data, the apps' date index and the outbox's.
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    assert not _indexes(path) & set(RETIRED_INDEXES)  # a new cache never has them
    con = sqlite3.connect(path)
    con.execute("CREATE INDEX ix_message_message_id ON message (message_id)")
    con.execute("CREATE INDEX ix_message_folder_modseq ON message (folder_id, modseq)")
    con.execute("CREATE INDEX ix_outbox_folder_seq ON outbox (folder, seq)")
    con.commit()
    con.close()
    c = Cache.open(path, "acct")
    assert [m.subject for m in c.messages("INBOX")] == ["kept"]
    c.close()
    got = _indexes(path)
    assert not got & set(RETIRED_INDEXES)
    assert {"ix_message_folder_date", "ix_outbox_topic"} <= got


def test_a_reader_leaves_the_indexes_alone(tmp_path: Path) -> None:
    # `cpmsync daemon stats` opens the cache without upgrading it: it changes nothing in the file.
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    con = sqlite3.connect(path)
    con.execute("CREATE INDEX ix_message_message_id ON message (message_id)")
    con.commit()
    con.close()
    open_engine(path, upgrade=False).engine.dispose()
    assert "ix_message_message_id" in _indexes(path)
