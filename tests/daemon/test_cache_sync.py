"""The cache's folder-sync transaction: rows, outbox events and summary commit together or not at all."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpmsync.daemon.cache import Cache, MessageData
from cpmsync.models.events import FolderEvent, FolderSummary, event_id


def msg(uid: int, modseq: int, flags: tuple[str, ...] = (), subject: str = "s") -> MessageData:
    return MessageData(uid=uid, modseq=modseq, flags=frozenset(flags), subject=subject, from_="a@example.org")


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache.open(tmp_path / "cache.sqlite", "acct")


def events(cache: Cache) -> list[dict[str, Any]]:
    return [json.loads(i.payload) for i in cache.outbox_batch(10_000) if i.topic.endswith("/events")]


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read with plain sqlite3 (nothing from the code under test)."""
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {n: sorted(con.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}
    finally:
        con.close()


def seed(cache: Cache) -> None:
    with cache.folder_sync("INBOX") as fs:
        fs.set_status(uidvalidity=7, uidnext=3, highestmodseq=20)
        fs.add_message(msg(1, 10, ("\\Seen",)))
        fs.add_message(msg(2, 20))


def test_folder_sync_writes_rows_events_and_summary(cache: Cache) -> None:
    seed(cache)
    f = cache.folder("INBOX")
    assert f is not None
    assert (f.uidvalidity, f.messages, f.unseen, f.last_synced_modseq) == (7, 2, 1, 20)
    assert cache.known_uids("INBOX") == [1, 2]
    kinds = [(e["kind"], e["uids"]) for e in events(cache)]
    assert kinds == [("folder_added", []), ("message_added", [1]), ("message_added", [2])]
    for e in events(cache):
        FolderEvent.model_validate(e)
    items = cache.outbox_batch(100)
    summary = [i for i in items if i.retain]
    assert [i.topic for i in summary] == ["cpm/acct/folders/INBOX"]
    s = FolderSummary.model_validate_json(summary[0].payload)
    assert (s.messages, s.unseen, s.last.uid if s.last else None) == (2, 1, 2)
    # per-folder sequence numbers follow commit order
    assert [i.seq for i in items] == sorted(i.seq for i in items)


def test_exception_mid_folder_sync_leaves_cache_and_outbox_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = Cache.open(path, "acct")
    seed(cache)
    cache.begin_discovery(50, ["INBOX", "Sent"])
    before = snapshot(path)
    woke: list[int] = []
    cache.set_commit_listener(lambda: woke.append(1))

    class Cut(Exception):
        pass

    with pytest.raises(Cut), cache.folder_sync("INBOX") as fs:
        fs.set_status(uidvalidity=7, uidnext=5, highestmodseq=50)
        fs.add_message(msg(3, 30))
        fs.set_flags(1, [], 40)
        fs.vanish([2], 50)
        raise Cut("connection cut mid-sync")
    with pytest.raises(Cut), cache.folder_sync("Sent") as fs:
        fs.set_status(uidvalidity=1, highestmodseq=45)
        raise Cut
    assert snapshot(path) == before
    assert woke == []
    assert cache.pending_folders() == ["INBOX", "Sent"]


def test_flags_and_vanish_events_only_for_real_changes(cache: Cache) -> None:
    seed(cache)
    n = len(events(cache))
    with cache.folder_sync("INBOX") as fs:
        fs.set_status(highestmodseq=30)
        assert fs.set_flags(1, ["\\Seen"], 21) is False  # unchanged: no event
        assert fs.set_flags(2, ["\\Seen", "\\Flagged"], 25) is True
        assert fs.set_flags(99, ["\\Seen"], 26) is False  # unknown uid
        assert fs.vanish([1, 77], 30) == [1]
    new = events(cache)[n:]
    assert [(e["kind"], e["uids"]) for e in new] == [("flags_changed", [2]), ("message_removed", [1])]
    assert new[0]["flags"] == ["\\Flagged", "\\Seen"]
    f = cache.folder("INBOX")
    assert f is not None and (f.messages, f.unseen) == (1, 0)


def test_uidvalidity_change_drops_the_folders_messages(cache: Cache) -> None:
    seed(cache)
    with cache.folder_sync("INBOX") as fs:
        fs.set_status(uidvalidity=8, uidnext=2, highestmodseq=60)
        assert fs.uidvalidity_reset
        fs.add_message(msg(1, 60, subject="new world"))
    assert [m.subject for m in cache.messages("INBOX")] == ["new world"]
    removed = [e for e in events(cache) if e["kind"] == "message_removed"]
    assert removed and removed[-1]["uidvalidity"] == 7 and removed[-1]["uids"] == [1, 2]
    added = [e for e in events(cache) if e["kind"] == "message_added"]
    assert added[-1]["uidvalidity"] == 8


def test_deleted_folder_leaves_the_cache_with_its_events(cache: Cache) -> None:
    seed(cache)
    assert cache.delete_folder("INBOX") is True
    assert cache.folder("INBOX") is None and cache.messages("INBOX") == []
    assert events(cache)[-1]["kind"] == "folder_removed"
    retained = [i for i in cache.outbox_batch(100) if i.retain]
    # the unsent summary was superseded by the empty one that clears the retained topic
    assert [(i.topic, i.payload) for i in retained] == [("cpm/acct/folders/INBOX", b"")]
    assert cache.delete_folder("INBOX") is False


def test_rename_moves_the_folder_and_tells_both_topics(cache: Cache) -> None:
    seed(cache)
    assert cache.rename_folder("INBOX", "Archive/2026")
    assert cache.folder("INBOX") is None
    assert [m.uid for m in cache.messages("Archive/2026")] == [1, 2]
    items = cache.outbox_batch(100)
    renamed = [(i.topic, json.loads(i.payload)) for i in items if b"folder_renamed" in i.payload]
    assert [t for t, _ in renamed] == [
        "cpm/acct/folders/INBOX/events",
        "cpm/acct/folders/Archive%2F2026/events",
    ]
    assert renamed[0][1]["id"] == renamed[1][1]["id"]
    assert renamed[0][1]["old_folder"] == "INBOX" and renamed[0][1]["folder"] == "Archive/2026"
    retained = {i.topic: i.payload for i in items if i.retain}
    assert retained["cpm/acct/folders/INBOX"] == b""
    assert json.loads(retained["cpm/acct/folders/Archive%2F2026"])["messages"] == 2


def test_same_change_detected_twice_has_the_same_event_id(tmp_path: Path) -> None:
    ids = []
    for n in range(2):
        c = Cache.open(tmp_path / f"c{n}.sqlite", "acct")
        seed(c)
        with c.folder_sync("INBOX") as fs:
            fs.set_flags(2, ["\\Seen"], 30)
            fs.vanish([1], 31)
        ids.append([e["id"] for e in events(c)])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == len(ids[0])


def test_event_ids_stay_what_earlier_versions_published() -> None:
    # Apps drop an id they have seen: a daemon upgraded with unsent rows, or one that detects the
    # same change again after the upgrade, must derive the very same ids (values published so far).
    assert event_id("acct\0imap://alice@mail.example:993", "Inbox/Déjà", 7, [3, 1], 42, "message_added") == (
        "ad5f1cedc3d931416d2b55bc3f784287"
    )
    assert event_id("acct", "INBOX", 7, [5], None, "flags_changed", "\\Seen", 2) == (
        "2c58eb3f39fb1e27bccd23bb5699c5e7"
    )


def test_outbox_ack_removes_only_acknowledged_rows(cache: Cache) -> None:
    seed(cache)
    items = cache.outbox_batch(100)
    cache.outbox_ack([items[0].id, items[2].id])
    assert [i.id for i in cache.outbox_batch(100)] == [
        i.id for i in items if i.id not in (items[0].id, items[2].id)
    ]


def test_runs_and_trace_are_recorded(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c.sqlite", "acct", trace_max_entries=3)
    run = cache.start_run("list-changedsince")
    cache.finish_run(run, bytes_in=100, bytes_out=20, wire_bytes_in=60, wire_bytes_out=15, folders_touched=3)
    (r,) = cache.runs()
    assert (r.strategy, r.bytes_in, r.wire_bytes_in, r.folders_touched, r.error) == (
        "list-changedsince",
        100,
        60,
        3,
        None,
    )
    assert r.ended is not None
    cache.add_trace("c1", [(1.0, "out", 10), (1.5, "in", 200), (2.0, "out", 5), (2.5, "in", 7)])
    assert cache.trace("c1") == [("c1", 1.5, "in", 200), ("c1", 2.0, "out", 5), ("c1", 2.5, "in", 7)]


def test_ack_during_an_open_folder_sync_waits_for_its_end(tmp_path: Path) -> None:
    """The publisher (same event loop) may ack while a folder sync holds the write lock: the ack
    must neither block nor fail, and the row must not be handed out again."""
    path = tmp_path / "c.sqlite"
    cache = Cache.open(path, "acct")
    seed(cache)
    first = cache.outbox_batch(1)[0]
    n = cache.outbox_count()
    with cache.folder_sync("INBOX") as fs:
        fs.add_message(msg(3, 30))  # the transaction now holds SQLite's write lock
        cache.outbox_ack([first.id])  # returns at once
        assert first.id not in [i.id for i in cache.outbox_batch(100)]
        assert cache.outbox_count() == n - 1
    assert first.id not in [r[0] for r in sqlite3.connect(path).execute("SELECT id FROM outbox")]


def test_late_ack_of_a_superseded_summary_never_deletes_a_newer_row(cache: Cache) -> None:
    """Regression: a summary superseded while in flight freed its id; the next commit reused it,
    and the old summary's PUBACK deleted the new, unsent event (found by a latency bench)."""
    seed(cache)
    in_flight = cache.outbox_batch(100)  # all sent, no PUBACK yet
    with cache.folder_sync("INBOX") as fs:  # supersedes the in-flight summary
        fs.add_message(msg(3, 30, subject="must arrive"))
    cache.outbox_ack([i.id for i in in_flight])  # the late PUBACKs
    left = [json.loads(i.payload) for i in cache.outbox_batch(100)]
    assert [(e.get("kind"), e.get("uids")) for e in left if "kind" in e] == [("message_added", [3])]
    assert any(e.get("name") == "INBOX" and e["messages"] == 3 for e in left)  # the new summary


def _reference_id(
    account: str,
    folder: str,
    uidvalidity: int | None,
    uids: list[int],
    modseq: int | None,
    kind: str,
    detail: str | None,
    generation: int,
) -> str:
    """The definition the ids were first published under: sha256 of json.dumps of the parts."""
    parts: list[object] = [account, folder, uidvalidity, sorted(uids), modseq, kind]
    if detail is not None:
        parts.append(detail)
    if generation:
        parts.append(["generation", generation])
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()[:32]


_ints = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
_names = st.text(st.characters(exclude_categories=()))  # lone surrogates too


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(
        _names,
        _names,
        _ints,
        st.lists(st.integers(min_value=1, max_value=2**32 - 1), max_size=6),
        _ints,
        st.sampled_from(["message_added", "flags_changed", "message_removed", "folder_added"]),
        st.none() | _names,
        st.integers(min_value=0, max_value=1000),
    )
)
def test_event_ids_are_the_json_definition_for_any_names(args: tuple[Any, ...]) -> None:
    """Any account or folder name (quotes, controls, non-ASCII, surrogates), any numbers: the
    directly written key hashes to the id json.dumps of the parts gives, so no id moves."""
    assert event_id(*args) == _reference_id(*args)
