"""Apps act on the account: a durable, optimistic queue of actions, applied over the sync session.

An app publishes an action (cpmsync.models.actions) on `{prefix}/{account}/actions`. Accepting
it is ONE cache transaction: the queue row, the optimistic change (flags, removed messages) with
its events and retained summary, and the `accepted` result in the outbox. So the app sees its
own change at once, and a SIGKILL leaves either all of it or none. The push loop applies queued
actions on its own IMAP connection before it syncs (`apply`), in acceptance order, so they ride
the wake that sync or heartbeat pays anyway; an action on an idle link wakes it after
`[actions] window_ms`, so a burst costs one wake. A refusal rolls the optimistic change back by
resyncing the folder from the server; a refusal without a final reason (or a cut) is retried,
and parked after `max_tries`, never holding up the actions behind it.
"""

from __future__ import annotations

import asyncio
import email.parser
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiomqtt
import pydantic
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import bindparam, case, delete, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from cpmsync.daemon.cache import Cache, LocalChange
from cpmsync.daemon.imap_client import CommandResult, ImapClient, ImapCommandError, ImapError
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.daemon.sync import uid_search
from cpmsync.daemon.topics import Topics
from cpmsync.imap import (
    AppendCommand,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    ExpungeCommand,
    FetchCommand,
    FetchData,
    ListCommand,
    MoveCommand,
    RenameCommand,
    SearchKey,
    SelectCommand,
    SequenceSet,
    StatusResponse,
    StoreCommand,
)
from cpmsync.imap.responses import AppendUid, CopyUid, ListData, StatusData
from cpmsync.logs import kv
from cpmsync.models.actions import (
    ACTION_KINDS,
    ID_MAX_CHARS,
    ActionResult,
    ActionState,
    AppendAction,
    Reason,
    action_adapter,
)
from cpmsync.models.tables import ActionRow

if TYPE_CHECKING:
    from cpmsync.daemon.sync_engine import SyncEngine

__all__ = ["ActionInbox", "ActionQueue", "Reply"]

log = logging.getLogger("cpmsync.daemon.actions")

SEEN = "\\Seen"
DELETED = "\\Deleted"
_RESULTS_KEY = "\x00actions"  # outbox ordering key of the results topic (never a folder name)
_MODIFIED_ROUNDS = 3  # re-read and re-store at most this often when others keep changing a message
_RETRY_MIN_S = 2.0
_RETRY_MAX_S = 600.0
_FLAG_KINDS = frozenset({"mark_read", "mark_unread", "set_flags"})
_UID_KINDS = _FLAG_KINDS | {"delete_messages", "move_messages"}
_ACTIONS = ActionRow.__table__  # type: ignore[attr-defined]  # SQLModel: the mapped Table
# Prebuilt (a statement built per call cost ten times the read): asked twice per push sync.
_QUEUED_SEQS = sa_select(_ACTIONS.c.seq).where(
    _ACTIONS.c.account_id == bindparam("account"), _ACTIONS.c.state == "queued"
)
# Codes after which a retry cannot help (RFC 5530): the action fails at once.
_FINAL_CODES = frozenset(
    {"CANNOT", "NOPERM", "CLIENTBUG", "OVERQUOTA", "LIMIT", "CONTACTADMIN", "PRIVACYREQUIRED"}
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reply:
    """A result for an MQTT 5 response topic; `seq` is the queue row to mark as replied (or None)."""

    topic: str
    correlation: bytes | None
    payload: bytes
    seq: int | None
    state: str


@dataclass
class _Outcome:
    state: ActionState | None  # None: retry later
    reason: Reason | None = None
    text: str | None = None
    folder: str | None = None
    dropped: list[int] = field(default_factory=list)
    modified: list[int] = field(default_factory=list)
    new_uids: list[int] = field(default_factory=list)
    uidvalidity: int | None = None
    modseq: int | None = None


class _Refused(Exception):
    """The server refused the action for good (or the action cannot be done on this server)."""

    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason: Reason = reason
        self.text = text


def _code(e: ImapCommandError) -> str | None:
    return e.code.upper() if e.code else None


def _gone(e: ImapCommandError) -> bool:
    """NO for a mailbox that is not there (RFC 5530 NONEXISTENT / TRYCREATE, or the words)."""
    text = e.result.status.text.lower()
    return _code(e) in ("NONEXISTENT", "TRYCREATE") or ("exist" in text and "already" not in text)


def _exists(e: ImapCommandError) -> bool:
    return _code(e) == "ALREADYEXISTS" or "already exist" in e.result.status.text.lower()


def _server_text(e: ImapCommandError) -> str:
    st = e.result.status
    return f"{st.status} {('[' + st.code.name + '] ') if st.code else ''}{st.text}".strip()


class ActionQueue:
    """The account's action queue: `accept` (MQTT side) and `apply` (IMAP side, in the push loop)."""

    def __init__(self, cache: Cache, settings: DaemonSettings) -> None:
        self.cache = cache
        self.cfg = settings.actions
        self.account_id = settings.account.id
        self.topics = Topics(settings.mqtt.topic_prefix, settings.account.id)
        self.arrived = asyncio.Event()  # an action was queued: the push loop may want to wake
        self.replies_due = asyncio.Event()  # something to send on a response topic
        self._retry_at: dict[int, float] = {}  # seq -> monotonic time of the next try
        self._suspect: set[int] = set()  # on the wire when the connection died
        # seq -> (uids [MODIFIED] in the batch, fresh UNCHANGEDSINCE, uids present): see _flag_batch
        self._carry: dict[int, tuple[list[int], int | None, list[int]]] = {}
        self._ephemeral: list[Reply] = []  # answers to input that never became a queue row
        self.wakes = 0  # apply() calls that sent commands (bench: actions cost per wake)

    # ------------------------------------------------------------------ accepting

    def accept(
        self, payload: bytes, *, response_topic: str | None = None, correlation: bytes | None = None
    ) -> ActionResult:
        """Validate, de-duplicate and queue one action; returns the answer (already in the outbox)."""
        try:
            obj = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as e:
            return self._reject(None, None, "invalid_json", f"not JSON: {e}", response_topic, correlation)
        if not isinstance(obj, dict):
            return self._reject(None, None, "invalid_json", "not a JSON object", response_topic, correlation)
        aid = obj.get("id")
        kind = obj.get("action")
        kind_s = kind if isinstance(kind, str) else None
        if aid is None:
            return self._reject(None, kind_s, "missing_field", "id: missing", response_topic, correlation)
        if not isinstance(aid, str) or not 1 <= len(aid) <= ID_MAX_CHARS:
            why = f"id: a string of 1 to {ID_MAX_CHARS} characters"
            return self._reject(None, kind_s, "invalid_field", why, response_topic, correlation)
        seen = self._recorded(aid)
        if seen is not None:
            return self._repeat(seen, response_topic, correlation)
        if kind is None:
            return self._reject(aid, None, "missing_field", "action: missing", response_topic, correlation)
        if kind_s not in ACTION_KINDS:
            why = f"action: {kind!r} is not one of {', '.join(ACTION_KINDS)}"
            return self._reject(aid, None, "unknown_action", why, response_topic, correlation)
        msg = obj.get("message")
        if kind == "append" and isinstance(msg, str) and len(msg) * 3 // 4 > self.cfg.max_message_bytes + 3:
            why = f"message: over {self.cfg.max_message_bytes} bytes"
            return self._reject(aid, kind_s, "too_large", why, response_topic, correlation)
        try:
            action = action_adapter.validate_python(obj)
        except pydantic.ValidationError as e:
            reason, why = _validation_reason(e)
            return self._reject(aid, kind_s, reason, why, response_topic, correlation)
        if isinstance(action, AppendAction) and len(action.raw()) > self.cfg.max_message_bytes:
            why = f"message: over {self.cfg.max_message_bytes} bytes"
            return self._reject(aid, kind_s, "too_large", why, response_topic, correlation)
        return self._queue(action.model_dump(), response_topic, correlation)

    def _queue(
        self, req: dict[str, Any], response_topic: str | None, correlation: bytes | None
    ) -> ActionResult:
        aid, kind, folder = req["id"], req["action"], req["folder"]
        now = _now()
        with self.cache.local_change() as lc:
            row = lc.session.exec(
                select(ActionRow).where(ActionRow.account_id == self.account_id, ActionRow.action_id == aid)
            ).first()
            if row is not None:  # raced with itself (a broker redelivery): the first one counts
                result = ActionResult.model_validate_json(row.result)
                lc.write(self.topics.action_results, result.to_json(), _RESULTS_KEY)
            else:
                self._optimistic(lc, req)
                result = ActionResult(
                    id=aid,
                    action=kind,
                    state="accepted",
                    folder=folder,
                    uids=req.get("uids") or [],
                    created=now,
                )
                row = ActionRow(
                    account_id=self.account_id,
                    action_id=aid,
                    kind=kind,
                    folder=folder,
                    request=json.dumps(req),
                    result=result.to_json(),
                    response_topic=response_topic,
                    correlation=correlation,
                    accepted=now,
                    updated=now,
                )
                lc.session.add(row)
                lc.write(self.topics.action_results, result.to_json(), _RESULTS_KEY)
        self.arrived.set()
        if response_topic:
            self.replies_due.set()
        log.debug("action accepted", extra=kv(id=aid, action=kind, folder=folder))
        return result

    def _optimistic(self, lc: LocalChange, req: dict[str, Any]) -> None:
        """The change as the app will see it once applied; records what apply needs from the cache."""
        kind, folder = req["action"], req["folder"]
        f = lc.folder(folder)
        req["uidvalidity"] = f.uidvalidity if f is not None else None
        req["mailbox_id"] = f.mailbox_id if f is not None else None
        tag = req["id"]
        if kind in ("mark_read", "mark_unread") and req.get("uids") is None:
            req["uids"] = sorted(lc.flags(folder, _all_uids(lc, folder)))
        if kind in _FLAG_KINDS:
            add, remove = _flag_change(req)
            known = lc.flags(folder, req["uids"])
            modseqs = [m for _f, m in known.values() if m]
            # UNCHANGEDSINCE: what the cache knew. A message changed on the server after it is
            # reported [MODIFIED] at apply time and re-read (README: conflict rules).
            complete = len(modseqs) == len(known) and modseqs
            req["unchangedsince"] = max(modseqs) if complete else None
            for uid, (flags, _m) in sorted(known.items()):
                lc.set_flags(folder, uid, (flags | add) - remove, tag=tag)
        elif kind in ("delete_messages", "move_messages"):
            lc.remove(folder, req["uids"], tag=tag)

    def _recorded(self, aid: str) -> ActionRow | None:
        with self.cache.read_session() as s:
            return s.exec(
                select(ActionRow).where(ActionRow.account_id == self.account_id, ActionRow.action_id == aid)
            ).first()

    def _repeat(self, row: ActionRow, response_topic: str | None, correlation: bytes | None) -> ActionResult:
        """A known id: its recorded result again, nothing applied twice."""
        result = ActionResult.model_validate_json(row.result)
        with self.cache.local_change() as lc:
            lc.write(self.topics.action_results, result.to_json(), _RESULTS_KEY)
        if response_topic:
            self._ephemeral.append(Reply(response_topic, correlation, result.to_json().encode(), None, ""))
            self.replies_due.set()
        log.debug("action repeated", extra=kv(id=row.action_id, state=result.state))
        return result

    def _reject(
        self,
        aid: str | None,
        kind: str | None,
        reason: Reason,
        text: str,
        response_topic: str | None,
        correlation: bytes | None,
    ) -> ActionResult:
        """Bad input: a failed result (durable on the results topic), nothing queued."""
        result = ActionResult(id=aid, action=kind, state="failed", reason=reason, text=text, created=_now())
        with self.cache.local_change() as lc:
            lc.write(self.topics.action_results, result.to_json(), _RESULTS_KEY)
        if response_topic:
            self._ephemeral.append(Reply(response_topic, correlation, result.to_json().encode(), None, ""))
            self.replies_due.set()
        log.info("action rejected", extra=kv(id=aid, reason=reason, text=text))
        return result

    # ------------------------------------------------------------------ the queue

    def queued(self) -> list[ActionRow]:
        with self.cache.read_session() as s:
            q = select(ActionRow).where(ActionRow.account_id == self.account_id, ActionRow.state == "queued")
            return list(s.exec(q.order_by(col(ActionRow.seq))))

    def _queued_seqs(self) -> list[int]:
        """The queued actions' numbers only: asked before and after every push sync, where
        reading whole rows cost the way from a change to its event a millisecond or more."""
        with self.cache.read_session() as s:
            seqs = s.connection().execute(_QUEUED_SEQS, {"account": self.account_id}).scalars()
            return [seq or 0 for seq in seqs]

    def pending(self) -> bool:
        """An action is due: the push loop applies before it syncs (or waits on `arrived`)."""
        return self.next_due() <= time.monotonic()

    def next_due(self) -> float:
        """Monotonic time the next queued action is due: 0 for one not refused yet, its retry time
        for one waiting after a refusal or cut, inf when none is queued (one read for both)."""
        return min((self._retry_at.get(seq, 0.0) for seq in self._queued_seqs()), default=math.inf)

    def result(self, aid: str) -> ActionResult | None:
        row = self._recorded(aid)
        return ActionResult.model_validate_json(row.result) if row is not None else None

    def _finish(self, row: ActionRow, out: _Outcome, req: dict[str, Any]) -> ActionResult:
        assert out.state is not None
        result = ActionResult(
            id=row.action_id,
            action=row.kind,
            state=out.state,
            reason=out.reason,
            text=out.text,
            folder=out.folder or row.folder,
            uids=req.get("uids") or [],
            dropped=out.dropped,
            modified=out.modified,
            new_uids=out.new_uids,
            uidvalidity=out.uidvalidity,
            modseq=out.modseq,
            tries=row.tries,
            created=_now(),
        )
        with self.cache.local_change() as lc:
            lc.session.exec(
                update(ActionRow)
                .where(col(ActionRow.seq) == row.seq)
                .values(state=out.state, result=result.to_json(), updated=_now(), folder=result.folder or "")
            )
            lc.write(self.topics.action_results, result.to_json(), _RESULTS_KEY)
            self._prune(lc.session)
        self._retry_at.pop(row.seq or 0, None)
        self._suspect.discard(row.seq or 0)
        if row.response_topic:
            self.replies_due.set()
        return result

    def _prune(self, s: Session) -> None:
        """Keep the newest keep_finished finished rows (a repeated id older than that is new again)."""
        n = s.exec(select(func.count()).select_from(ActionRow).where(col(ActionRow.state) != "queued")).one()
        if n <= self.cfg.keep_finished + 100:  # prune in steps, not at every action
            return
        cut = s.exec(
            select(ActionRow.seq)
            .where(col(ActionRow.state) != "queued")
            .order_by(col(ActionRow.seq).desc())
            .offset(self.cfg.keep_finished)
            .limit(1)
        ).first()
        if cut is not None:
            s.exec(delete(ActionRow).where(col(ActionRow.state) != "queued", col(ActionRow.seq) <= cut))

    def _count_try(self, row: ActionRow) -> None:
        """Counted before the commands go out: an action that kills the connection is still counted."""
        row.tries += 1
        with self.cache.local_change() as lc:
            lc.session.exec(update(ActionRow).where(col(ActionRow.seq) == row.seq).values(tries=row.tries))

    # ------------------------------------------------------------------ MQTT 5 responses

    def replies(self) -> list[Reply]:
        """Results still owed to response topics, oldest first."""
        out = list(self._ephemeral)
        with self.cache.read_session() as s:
            q = select(ActionRow).where(
                ActionRow.account_id == self.account_id,
                col(ActionRow.response_topic).is_not(None),
                # the result a queued row holds is "accepted"
                col(ActionRow.replied)
                != case((col(ActionRow.state) == "queued", "accepted"), else_=col(ActionRow.state)),
            )
            for r in s.exec(q.order_by(col(ActionRow.seq))):
                assert r.response_topic is not None
                state = json.loads(r.result)["state"]
                out.append(Reply(r.response_topic, r.correlation, r.result.encode(), r.seq, state))
        return out

    def replied(self, reply: Reply) -> None:
        """The broker took this reply (PUBACK)."""
        if reply.seq is None:
            if reply in self._ephemeral:
                self._ephemeral.remove(reply)
            return
        with self.cache.local_change() as lc:
            lc.session.exec(
                update(ActionRow).where(col(ActionRow.seq) == reply.seq).values(replied=reply.state)
            )

    # ------------------------------------------------------------------ applying

    async def apply(self, imap: ImapClient, engine: SyncEngine) -> int:
        """Apply every due action in acceptance order on this connection; returns how many finished.

        Raises ImapError when the connection fails (the actions stay queued, their try counted).
        """
        now = time.monotonic()
        rows = [r for r in self.queued() if self._retry_at.get(r.seq or 0, 0.0) <= now]
        # An action that was on the wire when the link died goes after the others: if it is
        # what kills the link, the rest must not wait for it to be parked.
        rows.sort(key=lambda r: (r.seq in self._suspect, r.seq))
        self.arrived.clear()
        if not rows:
            return 0
        self.wakes += 1
        done = 0
        resync: set[str] = set()  # optimistic changes to undo: the server's state again
        sync: set[str] = set()  # folders the applied actions changed
        try:
            pre = await self._flag_batch(imap, engine, rows)
            for row in rows:
                if engine.stop.is_set():
                    break
                if (row.seq or 0) in pre:
                    out = pre[row.seq or 0]
                    req = json.loads(row.request)
                    req["folder"] = row.folder
                    self._record(row, out, req, resync, sync)
                    done += 1
                    continue
                req = json.loads(row.request)
                req["folder"] = row.folder  # followed renames
                # An earlier try may have reached the server before a cut or a crash: the
                # non-idempotent steps check first (README: exactly once).
                req["retry"] = row.tries > 0
                carry = self._carry.pop(row.seq or 0, None)
                if carry is not None:
                    req["_again"], req["_since"], req["_present"] = carry
                if row.tries >= self.cfg.max_tries:
                    out = _Outcome("failed", "parked", f"gave up after {row.tries} tries (cut each time)")
                else:
                    self._count_try(row)
                    try:
                        out = await self._apply_one(imap, engine, row, req)
                    except ImapError:
                        self._suspect.add(row.seq or 0)
                        raise
                if out.state is None and row.tries >= self.cfg.max_tries:
                    out = _Outcome("failed", "parked", f"gave up after {row.tries} tries: {out.text}")
                if out.state is None:
                    delay = min(_RETRY_MAX_S, _RETRY_MIN_S * 2 ** (row.tries - 1))
                    self._retry_at[row.seq or 0] = time.monotonic() + delay
                    log.info(
                        "action refused, will retry",
                        extra=kv(id=row.action_id, tries=row.tries, text=out.text),
                    )
                    continue
                self._record(row, out, req, resync, sync)
                done += 1
        finally:
            await _leave(imap)
        if resync:
            self._forget_sync_state(resync)
        targets = sorted(sync | resync)
        if targets and not engine.stop.is_set():
            await engine.sync_folders(targets, strategy="actions")
        return done

    def _record(
        self, row: ActionRow, out: _Outcome, req: dict[str, Any], resync: set[str], sync: set[str]
    ) -> None:
        result = self._finish(row, out, req)
        if out.state == "failed" and row.kind in _UID_KINDS:
            resync.add(row.folder)
        elif out.state == "applied":
            sync.update(_touched(row.kind, out.folder or row.folder, req))
        log.info(
            "action done",
            extra=kv(id=row.action_id, action=row.kind, state=result.state, reason=result.reason),
        )

    async def _flag_batch(
        self, imap: ImapClient, engine: SyncEngine, rows: list[ActionRow]
    ) -> dict[int, _Outcome]:
        """First tries of flag changes, all in ONE pipeline (SELECT, STORE, FETCH per action): ten
        "mark read"s cost one round trip, not twenty. An action whose folder an earlier non-flag
        action touches waits for it (order per folder); anything not clean (a SELECT refused, a
        [MODIFIED], another UIDVALIDITY) is left to the one-by-one path, which handles it."""
        condstore = engine.condstore
        blocked: set[str] = set()
        batch: list[tuple[ActionRow, dict[str, Any]]] = []
        for row in rows:
            req = json.loads(row.request)
            if row.kind not in _FLAG_KINDS:
                blocked.update({row.folder, req.get("to") or row.folder})
                continue
            if row.tries or row.seq in self._suspect or row.folder in blocked or not req.get("uids"):
                continue
            req["folder"] = row.folder
            batch.append((row, req))
        if len(batch) < 2:
            return {}
        # UIDVALIDITY first (one pipelined STATUS round trip): the STOREs below go out before any
        # SELECT answer is read, so a recreated folder must be ruled out before, not after.
        await _leave(imap)
        folders = sorted({req["folder"] for _r, req in batch})
        status = await imap.status_many(folders, ("UIDVALIDITY",), window=64)

        def same(req: dict[str, Any]) -> bool:
            st = status.get(req["folder"])
            return st is not None and (req.get("uidvalidity") in (None, st.uidvalidity))

        batch = [(row, req) for row, req in batch if same(req)]
        if not batch:
            return {}
        cmds: list[Any] = []
        plan: list[tuple[ActionRow, dict[str, Any], int, list[int], int]] = []  # select, stores, fetch
        current: str | None = None
        sel = -1
        items = ("UID", "FLAGS", "MODSEQ") if condstore else ("UID", "FLAGS")
        for row, req in batch:
            if req["folder"] != current:
                current = req["folder"]
                sel = len(cmds)
                cmds.append(SelectCommand("", current, readonly=False))
            seqset = SequenceSet.from_ints(sorted(set(req["uids"])))
            add, remove = _flag_change(req)
            since = req.get("unchangedsince") if condstore else None
            stores = []
            for mode, flags in (("+", add), ("-", remove)):
                if flags:
                    stores.append(len(cmds))
                    flag_list = tuple(sorted(flags))
                    cmds.append(
                        StoreCommand("", seqset, mode, flag_list, silent=True, uid=True, unchangedsince=since)
                    )
            cmds.append(FetchCommand("", seqset, items, uid=True))
            plan.append((row, req, sel, stores, len(cmds) - 1))
            self._count_try(row)
        try:
            results = await imap.execute_pipelined(cmds, window=64, check=False)
        except ImapError:
            self._suspect.update(row.seq or 0 for row, *_ in plan)
            raise
        out: dict[int, _Outcome] = {}
        for row, req, s_i, store_is, f_i in plan:
            select, fetch = results[s_i], results[f_i]
            stored = [results[j] for j in store_is]
            if select.status.status != "OK" or fetch.status.status != "OK":
                continue
            was, now = req.get("uidvalidity"), _uidvalidity(select)
            if was is not None and now is not None and was != now:
                continue
            if any(r.status.status != "OK" for r in stored) or any(
                isinstance(r, StatusResponse)
                and r.code is not None
                and r.code.name.upper() in ("NOMODSEQ", "READ-ONLY")
                for r in select.responses
            ):
                continue
            present = _fetched(fetch)
            if not present:
                continue
            again = _modified(stored) & set(present)
            if again:
                # Stored but for messages another client changed: the one-by-one path re-stores
                # just those, from what this FETCH read (our own STORE moved the others' MODSEQ).
                fresh = [m for u in again if (m := present[u][1]) is not None]
                self._carry[row.seq or 0] = (sorted(again), max(fresh) if fresh else None, sorted(present))
                continue
            dropped = sorted(set(req["uids"]) - set(present))
            modseqs = [m for _f, m in present.values() if m is not None]
            out[row.seq or 0] = _Outcome(
                "applied",
                dropped=dropped,
                modseq=max(modseqs) if modseqs else None,
                text="expunged meanwhile: " + ",".join(map(str, dropped)) if dropped else None,
            )
        # The rest gets its one-by-one try now without counting it twice.
        for row, *_ in plan:
            if (row.seq or 0) not in out:
                row.tries -= 1
                with self.cache.local_change() as lc:
                    lc.session.exec(
                        update(ActionRow).where(col(ActionRow.seq) == row.seq).values(tries=row.tries)
                    )
        return out

    def _forget_sync_state(self, names: Iterable[str]) -> None:
        """The next sync of these folders compares every UID and flag: it undoes optimistic changes
        the server refused (an incremental sync would not: the server's MODSEQs did not move)."""
        with self.cache.local_change() as lc:
            for name in names:
                f = lc.folder(name)
                if f is not None:
                    f.last_synced_modseq = 0
                    lc.session.add(f)

    async def _apply_one(
        self, imap: ImapClient, engine: SyncEngine, row: ActionRow, req: dict[str, Any]
    ) -> _Outcome:
        try:
            try:
                return await self._dispatch(imap, engine, req)
            except _FolderMissing as missing:
                new = await _follow(imap, req, missing.name)
                if new is None:
                    return _Outcome("failed", "folder_not_found", f"{missing.name!r} does not exist")
                log.info(
                    "action follows a renamed folder", extra=kv(id=row.action_id, old=req["folder"], new=new)
                )
                self._move_row(row, new)
                req["folder"] = new
                out = await self._dispatch(imap, engine, req)
                out.folder = new
                out.text = (
                    (out.text + "; ") if out.text else ""
                ) + f"followed the rename of {missing.name!r}"
                return out
        except _FolderMissing as e:
            return _Outcome("failed", "folder_not_found", f"{e.name!r} does not exist")
        except _Refused as e:
            return _Outcome("failed", e.reason, e.text)
        except ImapCommandError as e:
            if e.result.status.status == "BAD" or _code(e) in _FINAL_CODES:
                return _Outcome("failed", "refused", _server_text(e))
            if _code(e) == "TOOBIG":
                return _Outcome("failed", "too_large", _server_text(e))
            return _Outcome(None, text=_server_text(e))

    def _move_row(self, row: ActionRow, folder: str) -> None:
        row.folder = folder
        with self.cache.local_change() as lc:
            lc.session.exec(update(ActionRow).where(col(ActionRow.seq) == row.seq).values(folder=folder))

    async def _dispatch(self, imap: ImapClient, engine: SyncEngine, req: dict[str, Any]) -> _Outcome:
        kind = req["action"]
        if kind in _FLAG_KINDS:
            return await _store(imap, engine, req)
        if kind == "delete_messages":
            return await _delete(imap, req)
        if kind == "move_messages":
            return await _move(imap, req)
        if kind == "create_folder":
            return await _create(imap, req)
        if kind == "rename_folder":
            return await _rename(imap, self.cache, req)
        if kind == "delete_folder":
            return await _delete_folder(imap, self.cache, req)
        if kind == "append":
            return await _append(imap, req)
        raise _Refused("unknown_action", kind)


class ActionInbox:
    """The MQTT side: the daemon's one subscription, and results owed to MQTT 5 response topics.

    The Publisher (publisher.py) runs it on its connection: `received` for each message on
    `subscriptions`, acknowledged only after it returns (the action is committed by then), and
    `serve` while connected."""

    def __init__(self, queue: ActionQueue, *, ack_timeout_s: float = 10.0) -> None:
        self.queue = queue
        self.subscriptions = [queue.topics.actions]
        self.ack_timeout_s = ack_timeout_s
        self.ready = asyncio.Event()  # subscribed on the current connection (tests, benches)

    async def received(self, message: aiomqtt.Message) -> None:
        raw = message.payload
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        props = message.properties
        topic = getattr(props, "ResponseTopic", None) if props is not None else None
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        self.queue.accept(
            payload,
            response_topic=topic if isinstance(topic, str) and topic else None,
            correlation=bytes(corr) if isinstance(corr, bytes | bytearray) else None,
        )

    async def serve(self, client: aiomqtt.Client) -> None:
        """Send owed replies (QoS 1, CorrelationData as the request had it); at least once."""
        q = self.queue
        q.replies_due.set()  # after a reconnect, whatever was owed
        self.ready.set()
        try:
            await self._replies(client)
        finally:
            self.ready.clear()

    async def _replies(self, client: aiomqtt.Client) -> None:
        q = self.queue
        while True:
            await q.replies_due.wait()
            q.replies_due.clear()
            for reply in q.replies():
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                if reply.correlation is not None:
                    props.CorrelationData = reply.correlation
                await client.publish(
                    reply.topic, reply.payload, qos=1, properties=props, timeout=self.ack_timeout_s
                )
                q.replied(reply)


class _FolderMissing(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _validation_reason(e: pydantic.ValidationError) -> tuple[Reason, str]:
    errs = e.errors()
    first = errs[0]
    where = ".".join(str(p) for p in first["loc"][1:]) or "payload"
    if any("bad_folder_name" in str(x.get("msg", "")) for x in errs):
        bad = next(x for x in errs if "bad_folder_name" in str(x.get("msg", "")))
        return "bad_folder_name", f"{'.'.join(str(p) for p in bad['loc'][1:])}: {bad['msg']}"
    if first["type"] == "missing":
        return "missing_field", f"{where}: missing"
    return "invalid_field", f"{where}: {first['msg']}"


def _all_uids(lc: LocalChange, folder: str) -> list[int]:
    f = lc.folder(folder)
    if f is None:
        return []
    from cpmsync.models.tables import Message

    return list(lc.session.exec(select(Message.uid).where(Message.folder_id == f.id)))


def _flag_change(req: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    kind = req["action"]
    if kind == "mark_read":
        return frozenset({SEEN}), frozenset()
    if kind == "mark_unread":
        return frozenset(), frozenset({SEEN})
    return frozenset(req.get("add") or ()), frozenset(req.get("remove") or ()) - frozenset(
        req.get("add") or ()
    )


def _touched(kind: str, folder: str, req: dict[str, Any]) -> list[str]:
    if kind == "move_messages":
        return [folder, req["to"]]
    if kind in ("rename_folder",):
        return [req["to"]]
    if kind == "delete_folder":
        return []
    return [folder]


# ---------------------------------------------------------------------- IMAP, one action each


async def _select_rw(imap: ImapClient, folder: str) -> CommandResult:
    """SELECT (read-write) without ever sending CLOSE on a read-write mailbox: CLOSE expunges
    every \\Deleted message, other clients' included (RFC 3501 6.4.2)."""
    cmd = SelectCommand("", folder, readonly=False)
    try:
        if imap.has("UNSELECT") or imap.selected is None:
            res = await imap.select(cmd)
        else:
            res = await imap.execute(cmd)  # SELECT closes the old mailbox without expunging (6.3.1)
    except ImapCommandError as e:
        if _gone(e):
            raise _FolderMissing(folder) from e
        raise
    for r in res.responses:
        if isinstance(r, StatusResponse) and r.code is not None and r.code.name.upper() == "READ-ONLY":
            raise _Refused("refused", f"{folder!r} is read-only on the server")
    if res.status.code is not None and res.status.code.name.upper() == "READ-ONLY":
        raise _Refused("refused", f"{folder!r} is read-only on the server")
    return res


async def _leave(imap: ImapClient) -> None:
    """Leave the mailbox the actions selected, never by CLOSE (see _select_rw)."""
    if imap.selected is None or imap.closed:
        return
    if imap.has("UNSELECT"):
        await imap.unselect()
        return
    # EXAMINE the same mailbox: read-only now, so the CLOSE a later switch sends expunges nothing.
    await imap.execute(SelectCommand("", imap.selected, readonly=True))


def _uidvalidity(res: CommandResult) -> int | None:
    for r in res.responses:
        if isinstance(r, StatusResponse) and r.code is not None and r.code.name.upper() == "UIDVALIDITY":
            v = r.code.value
            return v if isinstance(v, int) else None
    return None


def _check_uidvalidity(res: CommandResult, req: dict[str, Any]) -> int | None:
    now = _uidvalidity(res)
    was = req.get("uidvalidity")
    if was is not None and now is not None and now != was:
        raise _Refused("uidvalidity_changed", f"UIDVALIDITY is {now}, was {was} when accepted")
    return now


def _fetched(res: CommandResult) -> dict[int, tuple[frozenset[str], int | None]]:
    out: dict[int, tuple[frozenset[str], int | None]] = {}
    for r in res.responses:
        if isinstance(r, FetchData) and r.uid is not None:
            old = out.get(r.uid)
            flags = frozenset(r.flags) if r.flags is not None else (old[0] if old else frozenset())
            out[r.uid] = (flags, r.modseq if r.modseq is not None else (old[1] if old else None))
    return out


def _check(res: CommandResult) -> CommandResult:
    if res.status.status != "OK":
        raise ImapCommandError(res)
    return res


async def _store(imap: ImapClient, engine: SyncEngine, req: dict[str, Any]) -> _Outcome:
    """UID STORE +FLAGS/-FLAGS (UNCHANGEDSINCE the cache's MODSEQ) pipelined with a UID FETCH that
    reads the result (it also absorbs the STORE's own untagged FETCHes). [MODIFIED] messages are
    re-read and stored again over the other client's change, at most _MODIFIED_ROUNDS times."""
    folder, uids = req["folder"], sorted(set(req.get("uids") or []))
    add, remove = _flag_change(req)
    if not uids:
        return _Outcome("applied", text="no messages")
    res = await _select_rw(imap, folder)
    _check_uidvalidity(res, req)
    # A NOMODSEQ mailbox (RFC 7162 3.1.2.2) refuses UNCHANGEDSINCE: plain STORE there.
    nomodseq = any(
        isinstance(r, StatusResponse) and r.code is not None and r.code.name.upper() == "NOMODSEQ"
        for r in res.responses
    )
    condstore = engine.condstore and not nomodseq
    since: int | None = req.get("unchangedsince") if condstore else None
    todo = uids
    modified: set[int] = set()
    present: dict[int, tuple[frozenset[str], int | None]] = {}
    if req.get("_again"):  # the batch stored the rest already (ActionQueue._flag_batch)
        todo, since = req["_again"], req["_since"] if condstore else None
        modified = set(todo)
        present = dict.fromkeys(req["_present"], (frozenset(), None))
    for _round in range(_MODIFIED_ROUNDS + 1):
        seqset = SequenceSet.from_ints(todo)
        cmds: list[Any] = []
        if add:
            cmds.append(
                StoreCommand("", seqset, "+", tuple(sorted(add)), silent=True, uid=True, unchangedsince=since)
            )
        if remove:
            cmds.append(
                StoreCommand(
                    "", seqset, "-", tuple(sorted(remove)), silent=True, uid=True, unchangedsince=since
                )
            )
        items = ("UID", "FLAGS", "MODSEQ") if condstore else ("UID", "FLAGS")
        cmds.append(FetchCommand("", seqset, items, uid=True))
        results = await imap.execute_pipelined(cmds, window=len(cmds), check=False)
        for r in results:
            _check(r)
        present.update(_fetched(results[-1]))
        again = _modified(results[:-1]) & set(present)
        if not again:
            break
        modified |= again
        todo = sorted(again)
        fresh = [m for u in todo if (m := present[u][1]) is not None]
        since = max(fresh) if fresh and condstore else None
    else:
        raise _Refused("refused", f"messages {sorted(again)} kept changing on the server")
    dropped = sorted(set(uids) - set(present))
    if not present:
        return _Outcome("failed", "messages_gone", "every message was expunged meanwhile", dropped=dropped)
    modseqs = [m for _f, m in present.values() if m is not None]
    return _Outcome(
        "applied",
        dropped=dropped,
        modified=sorted(modified),
        modseq=max(modseqs) if modseqs else None,
        text="expunged meanwhile: " + ",".join(map(str, dropped)) if dropped else None,
    )


def _modified(results: Iterable[CommandResult]) -> set[int]:
    """UIDs in the [MODIFIED] codes of these STOREs (RFC 7162 3.1.3)."""
    out: set[int] = set()
    for r in results:
        code = r.status.code
        if code is not None and code.name.upper() == "MODIFIED" and isinstance(code.value, SequenceSet):
            out.update(code.value.iter_ints(0))
    return out


async def _existing(imap: ImapClient, uids: list[int]) -> set[int]:
    res = _check(
        await imap.execute(FetchCommand("", SequenceSet.from_ints(uids), ("UID",), uid=True), check=False)
    )
    return set(_fetched(res))


async def _expunge_exactly(imap: ImapClient, uids: list[int]) -> int | None:
    """\\Deleted + UID EXPUNGE of these UIDs only. Without UIDPLUS a plain EXPUNGE is used only
    when no other message carries \\Deleted (else it would expunge messages nobody asked for)."""
    seqset = SequenceSet.from_ints(uids)
    store = StoreCommand("", seqset, "+", (DELETED,), silent=True, uid=True)
    if imap.has("UIDPLUS"):
        r = await imap.execute_pipelined([store, ExpungeCommand("", seqset)], window=2, check=False)
        _check(r[0])
        _check(r[1])
        return _highestmodseq(r[1])
    others = await uid_search(imap, (SearchKey("DELETED"), SearchKey("NOT", (SearchKey("UID", (seqset,)),))))
    if others:
        raise _Refused(
            "unsupported", "no UIDPLUS, and other messages are \\Deleted: EXPUNGE would remove them too"
        )
    r = await imap.execute_pipelined([store, ExpungeCommand("")], window=2, check=False)
    _check(r[0])
    _check(r[1])
    return _highestmodseq(r[1])


def _highestmodseq(res: CommandResult) -> int | None:
    code = res.status.code
    if code is not None and code.name.upper() == "HIGHESTMODSEQ" and isinstance(code.value, int):
        return code.value
    return None


async def _delete(imap: ImapClient, req: dict[str, Any]) -> _Outcome:
    folder, uids = req["folder"], sorted(set(req["uids"]))
    res = await _select_rw(imap, folder)
    _check_uidvalidity(res, req)
    there = sorted(await _existing(imap, uids))
    dropped = sorted(set(uids) - set(there))
    if not there:
        return _Outcome("applied", dropped=dropped, text="already expunged")
    modseq = await _expunge_exactly(imap, there)
    return _Outcome("applied", dropped=dropped, modseq=modseq)


async def _move(imap: ImapClient, req: dict[str, Any]) -> _Outcome:
    folder, uids, to = req["folder"], sorted(set(req["uids"])), req["to"]
    res = await _select_rw(imap, folder)
    _check_uidvalidity(res, req)
    there = sorted(await _existing(imap, uids))
    dropped = sorted(set(uids) - set(there))
    if not there and req.get("retry"):
        return _Outcome("applied", dropped=dropped, text="no longer in the folder: moved by an earlier try")
    if not there:
        return _Outcome("failed", "messages_gone", "every message was expunged meanwhile", dropped=dropped)
    seqset = SequenceSet.from_ints(there)
    try:
        if imap.has("MOVE"):
            before = imap.push.drain()
            r = await imap.execute(MoveCommand("", seqset, to, uid=True))
            copyuid = _copyuid(r, imap, before)
        else:
            r = await imap.execute(CopyCommand("", seqset, to, uid=True))
            copyuid = _copyuid(r, imap, [])
            await _expunge_exactly(imap, there)
    except ImapCommandError as e:
        if _gone(e):
            raise _Refused("folder_not_found", f"target {to!r} does not exist: {_server_text(e)}") from e
        raise
    out = _Outcome("applied", dropped=dropped)
    if copyuid is not None:
        out.uidvalidity = copyuid.uidvalidity
        out.new_uids = list(copyuid.dest.iter_ints(0))
    return out


def _copyuid(res: CommandResult, imap: ImapClient, before: list[Any]) -> CopyUid | None:
    """COPYUID from the tagged OK (COPY) or the untagged OK that MOVE sends first (RFC 6851 4.3);
    the untagged one went to the push queue, which gets everything else back."""
    code = res.status.code
    if code is not None and isinstance(code.value, CopyUid):
        for ev in before:
            imap.push.put_back(ev.response, ev.selected)
        return code.value
    found: CopyUid | None = None
    for ev in [*before, *imap.push.drain()]:
        r = ev.response
        if (
            found is None
            and isinstance(r, StatusResponse)
            and r.code is not None
            and isinstance(r.code.value, CopyUid)
        ):
            found = r.code.value
            continue
        imap.push.put_back(r, ev.selected)
    return found


async def _create(imap: ImapClient, req: dict[str, Any]) -> _Outcome:
    try:
        await imap.execute(CreateCommand("", req["folder"]))
    except ImapCommandError as e:
        if _exists(e) and req.get("retry"):
            return _Outcome("applied", text="exists: created by an earlier try")
        if _exists(e):
            raise _Refused("folder_exists", _server_text(e)) from e
        raise
    return _Outcome("applied")


async def _rename(imap: ImapClient, cache: Cache, req: dict[str, Any]) -> _Outcome:
    old, new = req["folder"], req["to"]
    await _leave(imap)  # RFC 3501 does not let a client rename the mailbox it has selected everywhere
    try:
        await imap.execute(RenameCommand("", old, new))
    except ImapCommandError as e:
        if _exists(e):
            raise _Refused("folder_exists", _server_text(e)) from e
        if _gone(e) and req.get("retry") and await imap.status(new, ("UIDVALIDITY",)) is not None:
            cache.rename_folder(old, new)
            return _Outcome("applied", folder=new, text="renamed by an earlier try")
        if _gone(e):
            raise _FolderMissing(old) from e
        raise
    cache.rename_folder(old, new)
    return _Outcome("applied", folder=new)


async def _delete_folder(imap: ImapClient, cache: Cache, req: dict[str, Any]) -> _Outcome:
    name = req["folder"]
    await _leave(imap)
    try:
        await imap.execute(DeleteCommand("", name))
    except ImapCommandError as e:
        if _gone(e) and req.get("retry"):
            cache.delete_folder(name)
            return _Outcome("applied", text="gone: deleted by an earlier try")
        if _gone(e):
            raise _FolderMissing(name) from e
        raise
    cache.delete_folder(name)
    return _Outcome("applied")


async def _append(imap: ImapClient, req: dict[str, Any]) -> _Outcome:
    folder = req["folder"]
    raw = AppendAction.model_validate(req).raw()
    if req.get("retry"):
        earlier = await _appended_before(imap, folder, raw)
        if earlier is not None:
            return earlier
    try:
        r = await imap.execute(AppendCommand("", folder, raw, tuple(req.get("flags") or ())))
    except ImapCommandError as e:
        if _gone(e):
            raise _FolderMissing(folder) from e
        raise
    out = _Outcome("applied")
    code = r.status.code
    if code is not None and isinstance(code.value, AppendUid):
        out.uidvalidity = code.value.uidvalidity
        out.new_uids = list(code.value.uids.iter_ints(0))
    return out


async def _appended_before(imap: ImapClient, folder: str, raw: bytes) -> _Outcome | None:
    """A retried append whose message (by Message-ID) is in the folder already: the earlier try
    got there before the cut or the crash. Without a Message-ID a retry may store it twice."""
    mid = email.parser.BytesHeaderParser().parsebytes(raw).get("Message-ID")
    if not mid:
        return None
    try:
        await imap.select(SelectCommand("", folder, readonly=True))
    except ImapCommandError as e:
        if _gone(e):
            raise _FolderMissing(folder) from e
        raise
    found = await uid_search(imap, (SearchKey("HEADER", ("Message-ID", str(mid).strip())),))
    if not found:
        return None
    return _Outcome("applied", new_uids=sorted(found), text="stored by an earlier try")


async def _follow(imap: ImapClient, req: dict[str, Any], missing: str) -> str | None:
    """Where did `missing` go? The one folder with the same MAILBOXID (RFC 8474) or, without
    it, the same UIDVALIDITY (servers give every mailbox a distinct one): a rename by another
    client that this daemon has not seen yet. None: deleted (or ambiguous)."""
    uv, mid = req.get("uidvalidity"), req.get("mailbox_id")
    if uv is None and mid is None:
        return None
    items = ["UIDVALIDITY"] + (["MAILBOXID"] if imap.has("OBJECTID") else [])
    await _leave(imap)
    if imap.has("LIST-STATUS"):
        res = await imap.execute(ListCommand("", "", ("*",), return_status=tuple(items)))
        names = [r.name for r in res.responses if isinstance(r, ListData) and r.name != missing]
        statuses = {r.mailbox: r for r in res.responses if isinstance(r, StatusData)}
    else:
        res = await imap.execute(ListCommand("", "", ("*",)))
        names = [
            r.name
            for r in res.responses
            if isinstance(r, ListData)
            and r.name != missing
            and not any(a.upper() in ("\\NOSELECT", "\\NONEXISTENT") for a in r.attributes)
        ]
        many = await imap.status_many(names, items, window=64)
        statuses = {n: s for n, s in many.items() if s is not None}
    hits = []
    for n in names:
        st = statuses.get(n)
        if st is None:
            continue
        got_mid = st.items.get("MAILBOXID")
        if mid is not None and got_mid is not None:
            if str(got_mid).strip("()") == mid:
                hits.append(n)
        elif uv is not None and st.uidvalidity == uv:
            hits.append(n)
    return hits[0] if len(hits) == 1 else None
