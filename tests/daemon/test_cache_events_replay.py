"""An app that only reads the events ends up with what the cache holds.

A hypothesis state machine drives the cache API with random folder syncs, flag changes,
expunges, UIDVALIDITY resets, renames and deletions (some cut mid-way by an exception), then
replays the outbox the way a UI app would (dropping duplicate ids) and compares.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cpmsync.daemon.cache import Cache, MessageData
from cpmsync.daemon.topics import Topics

NAMES = ["INBOX", "Sent", "a/b", "tel:+1", "Ünïcode"]
FLAGS = ["\\Seen", "\\Flagged", "$Label1"]


class Cut(Exception):
    pass


def replay(items: list[Any], topics: Topics) -> dict[str, dict[int, frozenset[str]]]:
    state: dict[str, dict[int, frozenset[str]]] = {}
    seen: set[str] = set()
    for i in items:
        kind, _ = topics.parse(i.topic)
        if kind != "events":
            continue
        e = json.loads(i.payload)
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        f = e["folder"]
        if e["kind"] == "folder_added":
            state.setdefault(f, {})
        elif e["kind"] in ("message_added", "flags_changed"):
            for u in e["uids"]:
                state.setdefault(f, {})[u] = frozenset(e["flags"])
        elif e["kind"] == "message_removed":
            for u in e["uids"]:
                state.get(f, {}).pop(u, None)
        elif e["kind"] == "folder_removed":
            state.pop(f, None)
        elif e["kind"] == "folder_renamed":
            state[f] = state.pop(e["old_folder"], {})
    return state


class CacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.cache = Cache.open(Path(self.dir.name) / "c.sqlite", "acct")
        self.modseq = 1
        self.acked: list[Any] = []

    def teardown(self) -> None:
        self.cache.close()
        self.dir.cleanup()

    def _next(self) -> int:
        self.modseq += 1
        return self.modseq

    @rule(
        name=st.sampled_from(NAMES),
        new=st.lists(st.tuples(st.integers(1, 30), st.sets(st.sampled_from(FLAGS))), max_size=5),
        flag=st.lists(st.tuples(st.integers(1, 30), st.sets(st.sampled_from(FLAGS))), max_size=5),
        gone=st.lists(st.integers(1, 30), max_size=4),
        uidvalidity=st.sampled_from([1, 1, 1, 2]),
        cut=st.booleans(),
    )
    def folder_sync(
        self,
        name: str,
        new: list[tuple[int, set[str]]],
        flag: list[tuple[int, set[str]]],
        gone: list[int],
        uidvalidity: int,
        cut: bool,
    ) -> None:
        try:
            with self.cache.folder_sync(name) as fs:
                fs.set_status(uidvalidity=uidvalidity, highestmodseq=self._next())
                for uid, flags in new:
                    fs.add_message(MessageData(uid=uid, modseq=self._next(), flags=frozenset(flags)))
                for uid, flags in flag:
                    fs.set_flags(uid, flags, self._next())
                fs.vanish(gone, self._next())
                if cut:
                    raise Cut
        except Cut:
            pass

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        self.cache.delete_folder(name)

    @rule(name=st.sampled_from(NAMES))
    def delete_and_add_back(self, name: str) -> None:
        """The folder is dropped (a listing that missed it) and then found again unchanged: the
        same UIDVALIDITY, UIDs and MODSEQs. Its messages are news again for an app that dropped
        them with the folder, so they must come under ids it has not seen."""
        f = self.cache.folders().get(name)
        if f is None:
            return
        held = [(m.uid, m.modseq, frozenset(m.flags)) for m in self.cache.messages(name)]
        self.cache.delete_folder(name)
        with self.cache.folder_sync(name) as fs:
            fs.set_status(uidvalidity=f.uidvalidity, highestmodseq=f.highestmodseq)
            for uid, modseq, flags in held:
                fs.add_message(MessageData(uid=uid, modseq=modseq, flags=flags))

    @rule(old=st.sampled_from(NAMES), new=st.sampled_from(NAMES))
    def rename(self, old: str, new: str) -> None:
        self.cache.rename_folder(old, new)

    @rule(n=st.integers(1, 10))
    def publish_some(self, n: int) -> None:
        """The publisher acknowledges the oldest rows, as it does on PUBACK."""
        batch = self.cache.outbox_batch(n)
        self.acked += batch
        self.cache.outbox_ack([i.id for i in batch])

    @invariant()
    def events_rebuild_the_cache(self) -> None:
        stream = self.acked + self.cache.outbox_batch(100_000)
        state = replay(stream, self.cache.topics)
        cached = {
            name: {m.uid: frozenset(m.flags) for m in self.cache.messages(name)}
            for name in self.cache.folders()
        }
        assert state == cached


CacheMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_events_rebuild_the_cache = CacheMachine.TestCase
