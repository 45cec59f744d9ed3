"""Folder syncs against a model: whatever mix of new, refreshed, re-flagged and expunged messages
and UIDVALIDITY resets a transaction holds, the committed rows, counts, retained summaries and
events say what the model says, and each folder's outbox sequence only ever grows (also across a
restart). The writes are batched at the end of a transaction, so the order of operations inside
one is what this checks most."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpmsync.daemon.cache import Cache, FolderSync, MessageData

FOLDERS = ("INBOX", "Chats/Bob")
UIDS = st.integers(1, 3)  # few, so later transactions meet the messages of earlier ones
FLAGS = st.sets(st.sampled_from(("\\Seen", "\\Flagged", "$Label")), max_size=2)
# Mostly messages arriving and changing flags; an expunge or a new UIDVALIDITY now and then.
KIND = st.sampled_from(("add", "add", "add", "flags", "flags", "flags", "vanish", "reset"))


def _op(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    if kind in ("add", "flags"):
        return st.tuples(st.just(kind), UIDS, FLAGS)
    if kind == "vanish":
        return st.tuples(st.just(kind), st.sets(UIDS, min_size=1, max_size=2))
    return st.just((kind, None))


# A transaction: per folder the operations it applies, and whether the daemon restarts after it.
TXN = st.tuples(
    st.dictionaries(
        st.sampled_from(FOLDERS), st.lists(KIND.flatmap(_op), min_size=1, max_size=4), min_size=1
    ),
    st.sampled_from((False, False, False, True)),
)


@dataclass
class ModelFolder:
    uidvalidity: int = 1
    messages: dict[int, frozenset[str]] = field(default_factory=dict)


def _apply(fs: FolderSync, m: ModelFolder, ops: list[Any]) -> set[int]:
    """Run `ops` on the folder sync and on the model; the UIDs expunged."""
    gone: set[int] = set()
    fs.set_status(uidvalidity=m.uidvalidity, highestmodseq=1)
    for op in ops:
        if op[0] == "add":
            _, uid, flags = op
            m.messages[uid] = frozenset(flags)
            fs.add_message(MessageData(uid=uid, flags=frozenset(flags), subject=f"s{uid}"))
        elif op[0] == "flags":
            _, uid, flags = op
            old = m.messages.get(uid)
            if old is not None:
                m.messages[uid] = frozenset(flags)
            assert fs.set_flags(uid, flags) == (old is not None and old != frozenset(flags))
        elif op[0] == "vanish":
            held = {u for u in op[1] if u in m.messages}
            for u in held:
                del m.messages[u]
            gone |= held
            assert set(fs.vanish(op[1])) == held
        else:
            m.uidvalidity += 1
            m.messages.clear()
            fs.set_status(uidvalidity=m.uidvalidity)
    return gone


def _check_events(
    before: dict[int, frozenset[str]], m: ModelFolder, gone: set[int], reset: bool, evs: list[Any]
) -> None:
    """What apps learn from one transaction's events about a folder that had `before` (`gone`:
    expunged in it, so a message added again under that UID is news)."""
    got: dict[str, set[int]] = {"message_added": set(), "message_removed": set(), "flags_changed": set()}
    for ev in evs:
        if ev["kind"] in got:
            got[ev["kind"]] |= set(ev["uids"])
    assert set(before) - set(m.messages) <= got["message_removed"]
    if reset:
        assert set(before) <= got["message_removed"]
        return
    assert set(m.messages) - set(before) <= got["message_added"]
    assert not got["message_added"] & (set(before) - gone)  # a cached message is never news again
    changed = {u for u in set(before) & set(m.messages) - gone if before[u] != m.messages[u]}
    assert changed <= got["flags_changed"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TXN, min_size=1, max_size=8))
def test_folder_syncs_commit_what_the_model_holds(script: list[tuple[dict[str, Any], bool]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.sqlite"
        cache = Cache.open(path, "acct")
        model = {name: ModelFolder() for name in FOLDERS}
        last_seq: dict[str, int] = {}
        seen_ids: set[int] = set()
        for txn, restart in script:
            before = {name: dict(model[name].messages) for name in txn}
            gone: dict[str, set[int]] = {}
            with cache.folders_sync(sorted(txn)) as folder:
                for name, ops in sorted(txn.items()):
                    gone[name] = _apply(folder(name), model[name], ops)
            items = [i for i in cache.outbox_batch(100_000) if i.id not in seen_ids]
            seen_ids.update(i.id for i in items)
            for name, ops in txn.items():
                m = model[name]
                assert {x.uid: frozenset(x.flags) for x in cache.messages(name)} == m.messages
                state = cache.folder(name)
                assert state is not None and state.uidvalidity == m.uidvalidity
                unseen = sum(1 for f in m.messages.values() if "\\Seen" not in f)
                assert (state.messages, state.unseen) == (len(m.messages), unseen)
                mine = [i for i in items if i.folder == name]
                seqs = [i.seq for i in mine]
                assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
                assert seqs[0] > last_seq.get(name, 0)  # numbering goes on, across restarts too
                last_seq[name] = seqs[-1]
                summary = json.loads(next(i.payload for i in reversed(mine) if i.retain))
                assert (summary["messages"], summary["unseen"]) == (len(m.messages), unseen)
                assert (summary["last"] or {}).get("uid") == max(m.messages, default=None)
                reset = any(op[0] == "reset" for op in ops)
                evs = [json.loads(i.payload) for i in mine if not i.retain]
                _check_events(before[name], m, gone[name], reset, evs)
            if restart:
                cache.close()
                cache = Cache.open(path, "acct")
        cache.close()
