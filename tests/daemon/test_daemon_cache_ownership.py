"""P0-10: `[cache] path` pointing at a file that is not a cpmsync cache is refused, never overwritten.

A typo in a config (or a shared data dir) must not wipe a user's notes or message store; only a
file stamped as a cpmsync cache (or a pre-stamp v3 cache, recognised by its tables) is migrated
or rebuilt.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from daemon_sync_helpers import cache_with_one_message

from cpmsync.config import ConfigError
from cpmsync.daemon.cache import Cache
from cpmsync.models.schema import APPLICATION_ID
from tests.msgstore.server_testlib import make_store
from tests.support import run_cli


def _msgstore_db(tmp_path: Path) -> Path:
    store = make_store(tmp_path)
    store.close()
    return tmp_path / "msgstore.sqlite"


def test_text_file_at_cache_path_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my precious notes\n" * 50)
    with pytest.raises(ConfigError, match="is not a cpmsync cache; refusing to overwrite it"):
        Cache.open(notes, "acct")
    assert notes.read_bytes() == b"my precious notes\n" * 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no -wal/-shm left either


def test_msgstore_database_at_cache_path_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    db = _msgstore_db(tmp_path)
    before = db.read_bytes()
    with pytest.raises(ConfigError, match=f"cache.path {db} is not a cpmsync cache"):
        Cache.open(db, "acct")
    assert db.read_bytes() == before
    with pytest.raises(ConfigError):  # readers (`daemon stats`) refuse it too
        Cache.open(db, "acct", upgrade=False)


def test_daemon_run_exits_2_with_one_line_for_a_foreign_cache_path(tmp_path: Path) -> None:
    db = _msgstore_db(tmp_path)
    before = db.read_bytes()
    cfg = tmp_path / "d.toml"
    cfg.write_text(
        f'[imap]\nhost = "127.0.0.1"\nport = 1\ntls = "none"\nusername = "alice"\n[cache]\npath = "{db}"\n'
    )
    r = run_cli(["daemon", "run", "--config", str(cfg)], env={"CPMSYNC_IMAP__PASSWORD": "pw"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [f"cpmsync daemon: cache.path {db} is not a cpmsync cache; refusing to overwrite it"]
    assert db.read_bytes() == before


def test_new_cache_is_stamped_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    assert sqlite3.connect(path).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    c = Cache.open(path, "acct")
    assert [m.subject for m in c.messages("INBOX")] == ["kept"]
    c.close()


def test_prestamp_v3_cache_still_opens_with_its_data_and_gets_stamped(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache_with_one_message(path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id = 0")  # as made before the stamp existed
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    c = Cache.open(path, "acct")
    assert (c.rebuilt, [m.subject for m in c.messages("INBOX")]) == (False, ["kept"])
    c.close()
    assert sqlite3.connect(path).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_empty_file_becomes_a_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.touch()
    c = Cache.open(path, "acct")
    assert c.rebuilt is False and c.folders() == {}
    c.close()
