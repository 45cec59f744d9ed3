"""What "converged, nothing lost" means, checked strictly, with a precise diff.

- The cache equals the server: the same folders, UIDVALIDITY, counts, UIDs and flags.
- Every retained summary equals the server's STATUS (MESSAGES, UNSEEN, and UIDVALIDITY and
  HIGHESTMODSEQ where the payload has them); a deleted folder has no retained summary.
- An app that applied every event once (a repeated id dropped, as apps do) holds the server's
  state: folders, and per folder the messages by (UIDVALIDITY, UID) with their flags.
- Every change the stream made has its event: an APPEND (or the MOVE's copy) its message_added
  by UID, the last flag change of a message an announcement of the final flags made after it,
  an EXPUNGE (or the MOVE's source) of an announced message its message_removed, a CREATE its
  folder_added, a RENAME the new name, a DELETE its folder_removed.
- A change announced twice carries the same id, and an id never stands for two changes.

A message is identified by (UIDVALIDITY, UID): both servers give every mailbox of a user its own
UIDVALIDITY, so it also names the folder across renames.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.support.soak.state import FolderState, Received, Snapshot
from tests.support.soak.stream import Change

__all__ = [
    "AppState",
    "cache_problems",
    "change_problems",
    "convergence_time",
    "created_ts",
    "duplicate_problems",
    "folder_report",
    "mqtt_problem",
]

Flags = frozenset[str]
Key = tuple[int | None, int]  # (UIDVALIDITY, UID)


def _flags(ev: dict[str, Any]) -> Flags:
    return frozenset(f for f in (ev.get("flags") or ()) if f.upper() != "\\RECENT")


def created_ts(ev: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(ev["created"]).replace("Z", "+00:00")).timestamp()


def _short(items: Iterable[Any], n: int = 8) -> str:
    items = sorted(items, key=str)
    return "[" + ", ".join(map(str, items[:n])) + (f", … {len(items) - n} more]" if len(items) > n else "]")


def _fl(flags: Flags | None) -> str:
    return "-" if flags is None else (" ".join(sorted(flags)) or "()")


# ---------------------------------------------------------------------------- the app's view


@dataclass
class AppFolder:
    uidvalidity: int | None = None
    msgs: dict[Key, Flags] = field(default_factory=dict)


class AppState:
    """The state an app holds having applied the events in arrival order, each id once."""

    def __init__(self) -> None:
        self.folders: dict[str, AppFolder] = {}
        self.ids: set[str] = set()

    def apply(self, ev: dict[str, Any]) -> tuple[str, ...]:
        """Apply one event; returns the folders it touched (none when its id was seen)."""
        if ev["id"] in self.ids:
            return ()
        self.ids.add(ev["id"])
        kind, name, v = ev["kind"], ev["folder"], ev.get("uidvalidity")
        if kind == "folder_removed":
            self.folders.pop(name, None)
            return (name,)
        if kind == "folder_renamed":
            old = ev["old_folder"]
            self.folders[name] = self.folders.pop(old, AppFolder(v))
            return (old, name)
        f = self.folders.setdefault(name, AppFolder(v))
        if v is not None:
            f.uidvalidity = v
        if kind in ("message_added", "flags_changed"):
            for uid in ev["uids"]:
                f.msgs[(v, uid)] = _flags(ev)
        elif kind == "message_removed":
            for uid in ev["uids"]:
                if v is not None:
                    f.msgs.pop((v, uid), None)
                else:
                    for k in [k for k in f.msgs if k[1] == uid]:
                        del f.msgs[k]
        return (name,)


# ---------------------------------------------------------------------------- per-folder diffs


def summary_problem(name: str, truth: FolderState | None, s: dict[str, Any] | None) -> str | None:
    if truth is None:
        return None if s is None else "a retained summary of a folder the server does not have"
    if s is None:
        return "no retained summary"
    got: list[tuple[str, Any, int | None]] = [
        ("M", s.get("messages"), truth.messages),
        ("U", s.get("unseen"), truth.unseen),
    ]
    if s.get("uidvalidity") is not None:
        got.append(("v", s["uidvalidity"], truth.uidvalidity))
    if s.get("highestmodseq") is not None:
        got.append(("HMS", s["highestmodseq"], truth.highestmodseq))
    bad = [f"{k}={mine} (server {theirs})" for k, mine, theirs in got if mine != theirs]
    return "summary " + " ".join(bad) if bad else None


def _messages_problem(what: str, truth: FolderState, have: dict[Key, Flags]) -> list[str]:
    want = {(truth.uidvalidity, u): f for u, f in truth.msgs.items()}
    out = []
    missing = sorted(set(want) - set(have), key=str)
    extra = sorted(set(have) - set(want), key=str)
    if missing:
        out.append(f"{what} lacks {_short(f'v{v}/{u}' for v, u in missing)}")
    if extra:
        out.append(f"{what} still has {_short(f'v{v}/{u}' for v, u in extra)}")
    differ = [k for k in set(want) & set(have) if want[k] != have[k]]
    if differ:
        out.append(
            f"{what} flags differ "
            + _short(f"uid {k[1]}: server {_fl(want[k])}, {what} {_fl(have[k])}" for k in differ)
        )
    return out


def events_problem(name: str, truth: FolderState | None, app: AppFolder | None) -> str | None:
    if truth is None:
        return None if app is None else "events: the folder was never removed (an app still shows it)"
    if app is None:
        return "events: the folder is unknown to an app (never added, or removed and not added back)"
    out = _messages_problem("events", truth, app.msgs)
    return "; ".join(out) if out else None


def mqtt_problem(
    name: str, truth: FolderState | None, summary: dict[str, Any] | None, app: AppFolder | None
) -> str | None:
    parts = [p for p in (summary_problem(name, truth, summary), events_problem(name, truth, app)) if p]
    return "; ".join(parts) if parts else None


def cache_problem(name: str, truth: FolderState | None, cache: FolderState | None) -> str | None:
    if truth is None:
        return None if cache is None else "cache still has the folder"
    if cache is None:
        return "cache lacks the folder"
    out = []
    if cache.uidvalidity != truth.uidvalidity:
        out.append(f"cache v{cache.uidvalidity} (server v{truth.uidvalidity})")
    if (cache.messages, cache.unseen) != (truth.messages, truth.unseen):
        out.append(f"cache M={cache.messages} U={cache.unseen}")
    if cache.highestmodseq is not None and cache.highestmodseq != truth.highestmodseq:
        out.append(f"cache HMS={cache.highestmodseq}")
    out += _messages_problem("cache", truth, {(truth.uidvalidity, u): f for u, f in cache.msgs.items()})
    return "; ".join(out) if out else None


def cache_problems(truth: Snapshot, cache: Snapshot) -> dict[str, str]:
    out = {}
    for name in sorted(set(truth) | set(cache)):
        if p := cache_problem(name, truth.get(name), cache.get(name)):
            out[name] = p
    return out


def folder_report(
    truth: Snapshot,
    summaries: dict[str, dict[str, Any]],
    app: AppState,
    cache: Snapshot | None,
) -> dict[str, str]:
    """folder -> one line: the server's state, then each view that differs from it."""
    names = set(truth) | set(summaries) | set(app.folders) | set(cache or {})
    out = {}
    for name in sorted(names):
        t = truth.get(name)
        parts = [
            summary_problem(name, t, summaries.get(name)),
            events_problem(name, t, app.folders.get(name)),
            cache_problem(name, t, cache.get(name)) if cache is not None else None,
        ]
        bad = [p for p in parts if p]
        if bad:
            server = (
                f"server {t.brief()} uids {_short(t.msgs)}" if t is not None else "server: no such folder"
            )
            out[name] = f"{name!r}: {server} | " + " | ".join(bad)
    return out


# ---------------------------------------------------------------------------- convergence


def convergence_time(timeline: Sequence[Received], truth: Snapshot, t_from: float) -> float | None:
    """Seconds from `t_from` until the MQTT view (summaries and the events' replay) equalled the
    server and stayed equal to the end of `timeline`; None if it did not end equal."""
    app = AppState()
    sums: dict[str, dict[str, Any]] = {}

    def apply(r: Received) -> tuple[str, ...]:
        if r.kind == "summary" and r.folder is not None:
            if r.payload is None:
                sums.pop(r.folder, None)
            else:
                sums[r.folder] = r.payload
            return (r.folder,)
        if r.kind == "event" and r.payload is not None:
            return app.apply(r.payload)
        return ()

    def bad(name: str) -> bool:
        return mqtt_problem(name, truth.get(name), sums.get(name), app.folders.get(name)) is not None

    i = 0
    while i < len(timeline) and timeline[i].t < t_from:
        apply(timeline[i])
        i += 1
    wrong = {n for n in set(truth) | set(sums) | set(app.folders) if bad(n)}
    equal_since: float | None = t_from if not wrong else None
    for r in timeline[i:]:
        for name in apply(r):
            if bad(name):
                wrong.add(name)
            else:
                wrong.discard(name)
        if wrong:
            equal_since = None
        elif equal_since is None:
            equal_since = r.t
    return None if equal_since is None else max(0.0, equal_since - t_from)


# ---------------------------------------------------------------------------- every change


@dataclass
class _Life:
    """A message's life in the stream: the change that made it, the last that touched it, its end."""

    born: Change | None = None
    last: Change | None = None
    died: Change | None = None


def change_problems(
    changes: Sequence[Change], events: Sequence[dict[str, Any]], truth: Snapshot
) -> list[str]:
    """For every change the stream made whose effect an app must learn: the missing event."""
    t0 = changes[0].t if changes else 0.0
    # -- what the events said, by message and by folder (UIDVALIDITY), in arrival order
    announced: dict[Key, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    removed: dict[Key, list[int]] = defaultdict(list)
    by_v: dict[int | None, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for i, ev in enumerate(events):
        v = ev.get("uidvalidity")
        by_v[v].append((i, ev))
        if ev["kind"] in ("message_added", "flags_changed"):
            for uid in ev["uids"]:
                announced[(v, uid)].append((i, ev))
        elif ev["kind"] == "message_removed":
            for uid in ev["uids"]:
                removed[(v, uid)].append(i)
    folder_removed = {v: [i for i, ev in evs if ev["kind"] == "folder_removed"] for v, evs in by_v.items()}
    on_server: dict[Key, Flags] = {}
    name_of_v: dict[int | None, str] = {}
    for name, f in truth.items():
        name_of_v[f.uidvalidity] = name
        for uid, flags in f.msgs.items():
            on_server[(f.uidvalidity, uid)] = flags

    # -- what the stream did, by message and by folder
    lives: dict[Key, _Life] = defaultdict(_Life)
    created: dict[int | None, Change] = {}
    renamed: dict[int | None, Change] = {}
    deleted: dict[int | None, Change] = {}
    for c in changes:
        key = (c.uidvalidity, c.uid or 0)
        if c.kind == "append":
            lives[key].born = lives[key].last = c
        elif c.is_flag_change:
            lives[key].last = c
        elif c.kind == "expunge":
            lives[key].died = c
        elif c.kind == "move":
            lives[key].died = c
            dest = (c.dest_uidvalidity, c.dest_uid or 0)
            lives[dest].born = lives[dest].last = c
        elif c.kind == "create":
            created[c.uidvalidity] = c
        elif c.kind == "rename":
            if c.dest_uidvalidity == c.uidvalidity:
                renamed[c.uidvalidity] = c
            else:  # a server that gives a renamed mailbox a new UIDVALIDITY: gone, and a new one
                deleted[c.uidvalidity] = c
                created[c.dest_uidvalidity] = c
        elif c.kind == "delete":
            deleted[c.uidvalidity] = c

    out: list[str] = []

    def at(ev: dict[str, Any]) -> str:
        return f"+{created_ts(ev) - t0:.2f}s"

    # -- messages that are on the server at the end
    for key, life in lives.items():
        if life.last is None or key not in on_server:
            continue
        final = on_server[key]
        anns = announced.get(key, [])
        if life.born is not None and not any(ev["kind"] == "message_added" for _, ev in anns):
            out.append(f"{life.born.describe(t0)}: no message_added for v{key[0]} uid {key[1]}")
            continue
        last = max(anns, key=lambda a: a[0])[1] if anns else None
        if last is not None and _flags(last) == final:
            continue  # what an app holds last is the server's (changes that cancel out need no event)
        if not any(created_ts(ev) >= life.last.t and _flags(ev) == final for _, ev in anns):
            seen = f"{last['kind']} flags {_fl(_flags(last))} at {at(last)}" if last else "nothing"
            out.append(
                f"{life.last.describe(t0)}: the final flags {_fl(final)} were never announced after it "
                f"(last announcement: {seen})"
            )

    # -- messages an app was told of that are gone from the server
    for key, anns in announced.items():
        if key in on_server:
            continue
        last_i = max(i for i, _ in anns)
        gone = [i for i in removed.get(key, []) + folder_removed.get(key[0], []) if i > last_i]
        if gone:
            continue
        ended = lives[key].died if key in lives else None
        if ended is None and key[0] in deleted:
            ended = deleted[key[0]]
        cause = ended.describe(t0) if ended is not None else "no change of the stream removed it"
        out.append(
            f"{cause}: v{key[0]} uid {key[1]} was announced ({anns[-1][1]['kind']} at "
            f"{at(anns[-1][1])}) and never removed (no message_removed or folder_removed after it)"
        )

    # -- folders
    for v, c in created.items():
        if v not in name_of_v:
            continue
        evs = by_v.get(v, [])
        if any(ev["kind"] in ("folder_added", "message_added") for _, ev in evs):
            continue
        name = name_of_v[v]
        if any(ev["folder"] == name and created_ts(ev) >= c.t for ev in events):
            continue  # the name an app already holds, re-created (message_removed of the old one)
        out.append(f"{c.describe(t0)}: no folder_added for v{v}")
    for v, c in renamed.items():
        if v not in name_of_v:
            continue
        final_name = name_of_v[v]
        # The app learns the name by a folder event under that name (a rename notice may carry
        # the UIDVALIDITY the daemon knew, if the folder was re-created just before) or by the
        # folder's messages announced under it.
        if not any(
            created_ts(ev) >= c.t
            and ev["folder"] == final_name
            and (
                ev["kind"] in ("folder_renamed", "folder_added")
                or (ev["kind"] == "message_added" and ev.get("uidvalidity") == v)
            )
            for ev in events
        ):
            out.append(f"{c.describe(t0)}: an app never learned the name {final_name!r} (no folder_renamed)")
    # A folder deleted on the server must be gone from what an app holds, under whatever name the
    # app knew it (it may never have learned a rename made while the daemon was down, and a
    # re-created name is a new UIDVALIDITY: message_removed under the old one).
    app = AppState()
    for ev in events:
        app.apply(ev)
    for v, c in deleted.items():
        if v in name_of_v or not by_v.get(v):
            continue  # still on the server (renamed to a new UIDVALIDITY), or never announced
        held = [n for n, f in app.folders.items() if f.uidvalidity == v and n not in truth]
        held += [n for n, f in app.folders.items() if any(k[0] == v for k in f.msgs)]
        if held:
            out.append(
                f"{c.describe(t0)}: v{v} is gone from the server and an app still holds it as {held[0]!r}"
            )
    return out


# ---------------------------------------------------------------------------- duplicates


def _content(ev: dict[str, Any]) -> tuple[Any, ...]:
    return (
        ev["kind"],
        ev["folder"],
        ev.get("old_folder"),
        ev.get("uidvalidity"),
        tuple(sorted(ev.get("uids") or ())),
        ev.get("modseq"),
        tuple(sorted(_flags(ev))),
    )


def duplicate_problems(events: Sequence[dict[str, Any]]) -> tuple[list[str], int]:
    """Duplicates under different ids, and ids used for two different changes; and how many
    events were repeats with the same id (allowed: at least once delivery)."""
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        by_id[ev["id"]].append(ev)
    out = []
    repeats = 0
    for eid, evs in by_id.items():
        repeats += len(evs) - 1
        contents = {_content(ev) for ev in evs}
        if len(contents) > 1:
            out.append(f"id {eid[:12]} stands for {len(contents)} different changes: {_short(contents, 3)}")
    ids_of: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for ev in events:
        ids_of[_content(ev)].add(ev["id"])
    for content, ids in ids_of.items():
        if len(ids) > 1 and content[0] != "message_added":  # those are checked by UID below
            out.append(f"the same change under {len(ids)} ids: {content}")
    # A message_added under a new id for a message an app still holds is a duplicate it cannot
    # drop; after the message (or its folder) was removed, announcing it again is news.
    app = AppState()
    for ev in events:
        if ev["kind"] == "message_added" and ev["id"] not in app.ids:
            v = ev.get("uidvalidity")
            for uid in ev["uids"]:
                held = [n for n, f in app.folders.items() if (v, uid) in f.msgs]
                if held:
                    out.append(
                        f"message v{v} uid {uid} announced again under a new id {ev['id'][:10]} in "
                        f"{ev['folder']!r} while an app holds it (in {held[0]!r})"
                    )
        app.apply(ev)
    return out, repeats
