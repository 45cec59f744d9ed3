"""A seeded random change stream from another IMAP client, every change recorded.

imaplib (the standard library's client, not ours) on its own connection, straight to the server
(never through the daemon's fault proxy). Each change is recorded with the folder, its
UIDVALIDITY and the message's UID as the server reported it (APPENDUID, COPYUID, the FETCH after
a STORE), so the checks can name the exact change whose event is missing.
"""

from __future__ import annotations

import imaplib
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tests.support import cpm_message, imap_quote
from tests.support.peers import ImapPeer

__all__ = ["Change", "ChangeStream", "StreamError", "list_name"]

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")
_COPYUID = re.compile(rb"(?:COPYUID )?(\d+) ([\d:,]+) ([\d:,]+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")

# (kind, weight). Flag kinds toggle: "seen" becomes seen+ or seen- by the message's current flags,
# so every recorded change really changes the server's state.
OPS: tuple[tuple[str, int], ...] = (
    ("append", 30),
    ("seen", 15),
    ("flagged", 5),
    ("keyword", 5),
    ("expunge", 10),
    ("move", 6),
    ("create", 5),
    ("rename", 4),
    ("delete", 3),
    ("recreate", 2),
)
_TOGGLE = {"seen": "\\Seen", "flagged": "\\Flagged", "keyword": "$SoakLabel"}


class StreamError(RuntimeError):
    """The server refused a change the stream made (the stream only makes valid ones)."""


@dataclass(frozen=True)
class Change:
    """One change on the server. `t` is wall-clock time just before its command was sent."""

    n: int
    t: float
    kind: str  # append seen+ seen- flagged+ flagged- keyword+ keyword- expunge move create rename delete
    folder: str
    uidvalidity: int | None
    uid: int | None = None
    dest: str | None = None  # move: the target folder; rename: the new name
    dest_uidvalidity: int | None = None
    dest_uid: int | None = None  # move: the UID in the target (COPYUID)
    flags: frozenset[str] | None = None  # the message's flags after the change, as the server said

    @property
    def is_flag_change(self) -> bool:
        return self.kind[-1] in "+-"

    def describe(self, t0: float) -> str:
        where = f"{self.folder!r} v{self.uidvalidity}" + (f" uid {self.uid}" if self.uid is not None else "")
        text = f"#{self.n} +{self.t - t0:.2f}s {self.kind.upper()} {where}"
        if self.kind == "move":
            text += f" -> {self.dest!r} v{self.dest_uidvalidity} uid {self.dest_uid}"
        elif self.kind == "rename":
            text += f" -> {self.dest!r}"
        if self.flags is not None:
            text += f" flags {' '.join(sorted(self.flags)) or '()'}"
        return text


def _ok(result: tuple[str, Sequence[object]], what: str) -> list[object]:
    typ, data = result
    if typ != "OK":
        raise StreamError(f"{what}: {typ} {data!r}")
    return list(data)


def _flags(data: list[object], uid: int) -> frozenset[str] | None:
    """The FLAGS of `uid` in FETCH replies (a reply about another message is not taken)."""
    for item in data:
        raw = item[0] if isinstance(item, tuple) else item
        if not isinstance(raw, bytes) or not re.search(rb"UID %d\b" % uid, raw):
            continue
        if m := _FLAGS.search(raw):
            return frozenset(f for f in m.group(1).decode().split() if f.upper() != "\\RECENT")
    return None


class ChangeStream:
    """Seeded random changes over the account's folders, `rate` per second, recorded in `changes`.

    `run(stop)` works until `stop` is set (or `max_ops` operations are done); call it in a thread.
    One operation is one change, or two or three for CREATE (+ its first APPEND) and DELETE + CREATE
    of the same name (+ APPEND)."""

    def __init__(self, peer: ImapPeer, seed: int, rate: float) -> None:
        self.peer = peer
        self.rng = random.Random(seed)
        self.rate = rate
        self.changes: list[Change] = []
        self.ops = 0
        self.error: BaseException | None = None
        self.last_done_mono = 0.0  # monotonic time the last change was acknowledged by the server
        self.folders: dict[str, int] = {}  # the account's folders now -> UIDVALIDITY
        self._m: imaplib.IMAP4 | None = None
        self._names = 0
        self._kinds = [k for k, _ in OPS]
        self._weights = [w for _, w in OPS]

    # ------------------------------------------------------------------ connection

    def open(self) -> None:
        m = imaplib.IMAP4(self.peer.host, self.peer.port, timeout=30)
        _ok(m.login(self.peer.user, self.peer.password), "LOGIN")
        self._m = m
        typ, listed = m.list('""', "*")
        _ok((typ, listed), "LIST")
        for line in listed:
            if not isinstance(line, bytes) or b"\\Noselect" in line or b"\\NonExistent" in line:
                continue
            name = list_name(line)
            self.folders[name] = self._uidvalidity(name)

    def close(self) -> None:
        if self._m is not None:
            try:
                self._m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
            self._m = None

    @property
    def m(self) -> imaplib.IMAP4:
        assert self._m is not None, "open() first"
        return self._m

    def _uidvalidity(self, name: str) -> int:
        data = _ok(self.m.status(imap_quote(name), "(UIDVALIDITY)"), f"STATUS {name!r}")
        raw = data[0]
        assert isinstance(raw, bytes)
        found = _UIDVALIDITY.search(raw)
        assert found is not None, raw
        return int(found.group(1))

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, max_ops: int | None = None) -> None:
        """Make changes at `rate` until `stop` is set or `max_ops` are done; errors go to `error`."""
        try:
            t0 = time.monotonic()
            done = 0
            while not stop.is_set() and (max_ops is None or done < max_ops):
                due = t0 + done / self.rate
                if (wait := due - time.monotonic()) > 0:
                    stop.wait(wait)
                    continue
                self.one()
                done += 1
        except BaseException as e:  # reported by the caller, never swallowed
            self.error = e

    def one(self) -> None:
        """One random operation."""
        kind = self.rng.choices(self._kinds, weights=self._weights)[0]
        self.ops += 1
        if kind == "append":
            self._append(self.rng.choice(sorted(self.folders)))
        elif kind == "create":
            self._create(self._new_name())
        elif kind in ("rename", "delete", "recreate"):
            leaves = self._leaves()
            if not leaves:
                self._append(self.rng.choice(sorted(self.folders)))
                return
            victim = self.rng.choice(leaves)
            if kind == "rename":
                self._rename(victim, self._new_name(moving=victim))
            else:
                self._delete(victim)
                if kind == "recreate":  # DELETE + CREATE of the same name: a new UIDVALIDITY
                    self._create(victim)
        else:
            self._message_op(kind, self.rng.choice(sorted(self.folders)))

    # ------------------------------------------------------------------ changes

    def _record(self, **kw: object) -> None:
        self.changes.append(Change(n=len(self.changes) + 1, **kw))  # type: ignore[arg-type]
        self.last_done_mono = time.monotonic()

    def _new_name(self, moving: str | None = None) -> str:
        """A fresh name, a third of the time under a top-level folder (never under `moving`, the
        folder being renamed: a mailbox cannot become its own child, RFC 3501 6.3.5)."""
        self._names += 1
        base = f"soak-{self._names:05d}-{self.rng.randrange(10_000):04d}"
        parents = [
            f for f in self.folders if "/" not in f and f.upper() not in ("INBOX", "DEFAULT") and f != moving
        ]
        if parents and self.rng.random() < 0.3:
            return f"{self.rng.choice(sorted(parents))}/{base}"
        return base

    def _leaves(self) -> list[str]:
        names = sorted(self.folders)
        parents = {n.rsplit("/", 1)[0] for n in names if "/" in n}
        return [n for n in names if n not in parents and n.upper() not in ("INBOX", "DEFAULT")]

    def _append(self, folder: str) -> None:
        flags = self.rng.choice(["", "\\Seen"])
        msg = cpm_message(self.rng, folder)
        t = time.time()
        data = _ok(self.m.append(imap_quote(folder), f"({flags})", None, msg), f"APPEND {folder!r}")
        raw = data[0]
        found = _APPENDUID.search(raw) if isinstance(raw, bytes) else None
        if found is None:
            raise StreamError(f"APPEND {folder!r}: no APPENDUID in {data!r}")
        v, uid = int(found.group(1)), int(found.group(2))
        self.folders[folder] = v
        self._record(t=t, kind="append", folder=folder, uidvalidity=v, uid=uid,
                     flags=frozenset(flags.split()))  # fmt: skip

    def _create(self, name: str) -> None:
        t = time.time()
        _ok(self.m.create(imap_quote(name)), f"CREATE {name!r}")
        v = self._uidvalidity(name)
        self.folders[name] = v
        self._record(t=t, kind="create", folder=name, uidvalidity=v)
        self._append(name)  # a conversation folder is created with its first message

    def _rename(self, old: str, new: str) -> None:
        v = self.folders.pop(old)
        t = time.time()
        _ok(self.m.rename(imap_quote(old), imap_quote(new)), f"RENAME {old!r} {new!r}")
        nv = self._uidvalidity(new)
        self.folders[new] = nv
        self._record(t=t, kind="rename", folder=old, uidvalidity=v, dest=new, dest_uidvalidity=nv)

    def _delete(self, name: str) -> None:
        v = self.folders.pop(name)
        t = time.time()
        _ok(self.m.delete(imap_quote(name)), f"DELETE {name!r}")
        self._record(t=t, kind="delete", folder=name, uidvalidity=v)

    def _message_op(self, kind: str, folder: str) -> None:
        m = self.m
        _ok(m.select(imap_quote(folder)), f"SELECT {folder!r}")
        raw_v = m.response("UIDVALIDITY")[1][0]
        assert isinstance(raw_v, bytes), raw_v
        v = int(raw_v)
        self.folders[folder] = v
        found_uids = _ok(m.uid("SEARCH", "ALL"), "UID SEARCH")[0]
        uids = [int(u) for u in found_uids.split()] if isinstance(found_uids, bytes) else []
        if not uids:
            _ok(m.unselect(), "UNSELECT")
            self._append(folder)
            return
        uid = self.rng.choice(uids)
        if kind in _TOGGLE:
            flag = _TOGGLE[kind]
            before = _flags(_ok(m.uid("FETCH", str(uid), "(FLAGS)"), "UID FETCH"), uid)
            if before is None:
                raise StreamError(f"UID FETCH {uid} in {folder!r}: no FLAGS")
            sign = "-" if flag in before else "+"
            t = time.time()
            data = _ok(m.uid("STORE", str(uid), f"{sign}FLAGS", f"({flag})"), "UID STORE")
            after = _flags(data, uid)
            if after is None:  # no FETCH in the reply: what the STORE must have made
                after = before - {flag} if sign == "-" else before | {flag}
            self._record(t=t, kind=f"{kind}{sign}", folder=folder, uidvalidity=v, uid=uid, flags=after)
        elif kind == "expunge":
            t = time.time()
            _ok(m.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE \\Deleted")
            _ok(m.uid("EXPUNGE", str(uid)), "UID EXPUNGE")
            self._record(t=t, kind="expunge", folder=folder, uidvalidity=v, uid=uid)
        else:  # move
            dest = self.rng.choice(sorted(set(self.folders) - {folder}))
            m.response("COPYUID")  # drop any stale one
            t = time.time()
            data = _ok(m.uid("MOVE", str(uid), imap_quote(dest)), f"UID MOVE {dest!r}")
            untagged = m.response("COPYUID")[1]
            found = None
            for item in [*untagged, *data]:
                if isinstance(item, bytes) and (found := _COPYUID.search(item)):
                    break
            if found is None:
                raise StreamError(
                    f"UID MOVE {uid} {folder!r} -> {dest!r}: no COPYUID in {untagged!r} {data!r}"
                )
            dv, dest_uid = int(found.group(1)), int(found.group(3))
            self.folders[dest] = dv
            self._record(t=t, kind="move", folder=folder, uidvalidity=v, uid=uid, dest=dest,
                         dest_uidvalidity=dv, dest_uid=dest_uid)  # fmt: skip
        _ok(m.unselect(), "UNSELECT")


def list_name(line: bytes) -> str:
    """The mailbox name of one LIST reply line (quoted or atom; the soak's names are ASCII)."""
    rest = line.rsplit(b") ", 1)[1]  # after the attributes
    rest = rest.split(b" ", 1)[1]  # after the delimiter
    if rest.startswith(b'"'):
        return rest[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\").decode()
    return rest.decode()
