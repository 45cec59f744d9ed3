"""What every part of the store shares: constants, flag and date encodings, the pre-built hot
statements (compiled once at import; APPEND runs them on the DBAPI cursor through `_RawStatement`)
and the row-to-record functions."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.errors import (
    InvalidName,
)
from cpmsync.msgstore.fetch_render import address_search_text
from cpmsync.msgstore.mailbox_pattern import canonical_name
from cpmsync.msgstore.message_meta import day_number, header_values, split_message
from cpmsync.msgstore.records import (
    MailboxListing,
    MailboxStatus,
    MessageRecord,
    SearchFilter,
    UidSet,
)
from cpmsync.sql_chunks import IN_LIST_MAX, in_chunks

log = logging.getLogger("cpmsync.msgstore")

DELIMITER = "/"
_INBOX = "INBOX"
_MAX_NAME_CHARS = 1000
_CHUNK = IN_LIST_MAX  # bound on IN (...) lists: SQLite's variable limit, PostgreSQL plan size
_chunks = in_chunks
_MAX_OR_RANGES = 64  # more UID ranges than this: one BETWEEN window + exact filter in Python
_SEEN = t.FLAG_BITS["\\seen"]
_DELETED = t.FLAG_BITS["\\deleted"]
_FLAG_NAMES = {
    t.FLAG_BITS[k.lower()]: k for k in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}


# ---------------------------------------------------------------- helpers


def _names_in(conn: Connection, table: Table, user_id: int, names: Sequence[str]) -> set[str]:
    """Which of `names` the user has in `table` (mailbox or subscription), in IN-list chunks."""
    found: set[str] = set()
    for chunk in _chunks(names):
        rows = conn.execute(select(table.c.name).where(table.c.user_id == user_id, table.c.name.in_(chunk)))
        found.update(r[0] for r in rows)
    return found


def _parent_of(name: str) -> str:
    i = name.rfind(DELIMITER)
    return "" if i < 0 else name[:i]


def _ancestors(name: str) -> list[str]:
    """ "a/b/c" -> ["a", "a/b"] (outermost first)."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def _new_objectid(prefix: str) -> str:
    # RFC 8474 objectid: 1*255 of ALPHA / DIGIT / "_" / "-".
    return prefix + secrets.token_hex(12)


def _split_flags(flags: Iterable[str]) -> tuple[int, frozenset[str]]:
    """System flags to bits (case-insensitive), other atoms to keywords; \\Recent and unknown
    backslash flags are dropped (a client cannot create system flags, RFC 3501 2.3.2)."""
    bits = 0
    keywords: set[str] = set()
    for f in flags:
        if not f:
            continue
        low = f.lower()
        if low in t.FLAG_BITS:
            bits |= t.FLAG_BITS[low]
        elif not f.startswith("\\"):
            keywords.add(f)
    return bits, frozenset(keywords)


def _kw_text(keywords: Iterable[str]) -> str:
    kws = sorted(keywords)
    return " " + " ".join(kws) + " " if kws else ""


def _kw_parse(text: str) -> frozenset[str]:
    return frozenset(text.split())


@functools.lru_cache(maxsize=4096)
def _flags_of(bits: int, keywords_text: str) -> frozenset[str]:
    """Flags of a stored row; cached, as a mailbox's messages share a few flag combinations."""
    return frozenset([name for bit, name in _FLAG_NAMES.items() if bits & bit]) | _kw_parse(keywords_text)


def _to_epoch(internaldate: datetime | None) -> tuple[int, int, int]:
    """(epoch seconds, zone minutes east, calendar day in that zone)."""
    if internaldate is None:
        internaldate = datetime.now(UTC)
    if internaldate.tzinfo is None:
        internaldate = internaldate.replace(tzinfo=UTC)
    offset = internaldate.utcoffset() or timedelta(0)
    tz_min = int(offset.total_seconds() // 60)
    epoch = int(internaldate.timestamp())
    return epoch, tz_min, (epoch + tz_min * 60) // 86400


@functools.lru_cache(maxsize=256)
def _zone(tz_min: int) -> timezone:
    return timezone(timedelta(minutes=tz_min))


def _from_epoch(epoch: int, tz_min: int) -> datetime:
    return datetime.fromtimestamp(epoch, _zone(tz_min))


def _check_name(name: str) -> str:
    """Canonical form of a client-supplied mailbox name, or InvalidName saying why."""
    if name.endswith(DELIMITER):
        name = name[: -len(DELIMITER)]
    if not name:
        raise InvalidName("empty mailbox name")
    if len(name) > _MAX_NAME_CHARS:
        raise InvalidName(f"mailbox name longer than {_MAX_NAME_CHARS} characters")
    if name.startswith(DELIMITER) or DELIMITER * 2 in name:
        raise InvalidName("empty hierarchy level in mailbox name")
    if any(c in name for c in "*%"):
        raise InvalidName("wildcards are not allowed in mailbox names")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidName("control characters are not allowed in mailbox names")
    return canonical_name(name, DELIMITER)


def _lookup_name(mailbox: str) -> str:
    """The stored form of a mailbox name a client gave (a trailing delimiter dropped, INBOX in any
    case as INBOX), to look an existing mailbox up by."""
    return canonical_name(mailbox.rstrip(DELIMITER) or mailbox, DELIMITER)


def _uid_ranges(uids: UidSet) -> tuple[list[tuple[int, int]], UidSet | None]:
    """The (lo, hi) ranges SQL tests for a non-empty `uids`, plus the set to re-check in Python
    when they are only a window (more than _MAX_OR_RANGES ranges). Padded to a power of two by
    repeating the last range, so a statement comes in at most 7 shapes: every new shape is a
    compile and an entry in SQLAlchemy's statement cache, and clients send sets of every shape."""
    if len(uids.ranges) > _MAX_OR_RANGES:
        return [(uids.ranges[0][0], uids.ranges[-1][1])], uids
    ranges = list(uids.ranges)
    ranges += [ranges[-1]] * ((1 << (len(ranges) - 1).bit_length()) - len(ranges))
    return ranges, None


def _uid_filter(col: Any, uids: UidSet | None) -> tuple[ColumnElement[bool], UidSet | None]:
    """SQL predicate for `uids`, plus the set to re-check in Python when the SQL is only a window."""
    if uids is None or uids.is_all:
        return true(), None
    if not uids.ranges:
        return false(), None
    ranges, recheck = _uid_ranges(uids)
    return or_(*[col.between(lo, hi) for lo, hi in ranges]), recheck


_MSG_COLS = (
    t.message.c.id,
    t.message.c.uid,
    t.message.c.modseq,
    t.message.c.sysflags,
    t.message.c.keywords,
    t.message.c.internaldate,
    t.message.c.tz_min,
    t.message.c.size,
    t.message.c.emailid,
    t.message.c.threadid,
    t.message.c.blob_id,
)


def _record_of_tuple(row: Sequence[Any]) -> MessageRecord:
    """A MessageRecord from a DBAPI row of `_MSG_COLS` (+ the blob's data, when selected)."""
    data = row[11] if len(row) > 11 else None
    return MessageRecord(
        uid=row[1],
        modseq=row[2],
        flags=_flags_of(row[3], row[4]),
        internaldate=_from_epoch(row[5], row[6]),
        size=row[7],
        emailid=row[8],
        threadid=row[9],
        data=data if data is None or type(data) is bytes else bytes(data),
    )


def _record(row: Any, data: bytes | None = None) -> MessageRecord:
    return MessageRecord(
        uid=row.uid,
        modseq=row.modseq,
        flags=_flags_of(row.sysflags, row.keywords),
        internaldate=_from_epoch(row.internaldate, row.tz_min),
        size=row.size,
        emailid=row.emailid,
        threadid=row.threadid,
        data=data,
    )


# ---------------------------------------------------------------- pre-built statements

# Built once with bindparam(): building a Core statement per call (coercions, cache-key generation)
# cost more than executing it; a module-level statement memoizes its cache key, so each execute is a
# compiled-cache hit. Bind names carry a "p_" prefix because INSERT/UPDATE reserve column names.
_LOCK_USER = (
    select(t.user.c.id, t.user.c.modseq, t.user.c.uidvalidity_next)
    .where(t.user.c.name == bindparam("p_user"))
    .with_for_update()
)
_SAVE_USER_COUNTERS = (
    update(t.user)
    .where(t.user.c.id == bindparam("p_id"))
    .values(modseq=bindparam("p_modseq"), uidvalidity_next=bindparam("p_uvn"))
)
_USER_ID = select(t.user.c.id).where(t.user.c.name == bindparam("p_user"))
_MAILBOX_BY_ID = select(t.mailbox).where(
    t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.id == bindparam("p_mb")
)
_MAILBOX_BY_NAME = select(t.mailbox).where(
    t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.name == bindparam("p_name")
)
_INSERT_BLOB = insert(t.blob).returning(t.blob.c.id)
_INSERT_MESSAGE = insert(t.message)
# APPEND in four statements: each UPDATE ... RETURNING both changes a counter and reads it, and the
# user row UPDATE takes the same row lock as the generic path's SELECT ... FOR UPDATE (PostgreSQL).
_TAKE_USER_MODSEQ = (
    update(t.user)
    .where(t.user.c.name == bindparam("p_user"))
    .values(modseq=t.user.c.modseq + 1)
    .returning(t.user.c.id, t.user.c.modseq)
)
_TAKE_UID_SET = {
    "uidnext": t.mailbox.c.uidnext + 1,
    "highestmodseq": bindparam("p_modseq"),
}
_TAKE_UID_RETURNING = (t.mailbox.c.id, t.mailbox.c.name, t.mailbox.c.uidnext, t.mailbox.c.uidvalidity)
_PASSWORD_HASH = select(t.user.c.password_hash).where(t.user.c.name == bindparam("p_user"))


# The lowest UID still unclaimed as \Recent in mailbox :p_mb of user :p_user (claim_recent).
# SELECT/EXAMINE in two statements (MailboxOps._select): the mailbox's row found through its
# owner's name, then one ordered pass over its messages that gives the UIDs, [UNSEEN n], the
# STATUS counts and the keywords in use. Five Core statements per SELECT cost 200-300 us of CPU,
# and a first sync SELECTs every folder.
def _select_mailbox(where: ColumnElement[bool]) -> Any:
    mb = t.mailbox
    return (
        select(
            mb.c.id,
            mb.c.name,
            mb.c.mailboxid,
            mb.c.highestmodseq,
            mb.c.nomodseq,
            mb.c.uidnext,
            mb.c.uidvalidity,
            mb.c.first_recent_uid,
        )
        .select_from(mb.join(t.user, t.user.c.id == mb.c.user_id))
        .where(t.user.c.name == bindparam("p_user"), where)
    )


_SELECT_MAILBOX_BY_ID = _select_mailbox(t.mailbox.c.id == bindparam("p_mb"))
_SELECT_MAILBOX_BY_NAME = _select_mailbox(t.mailbox.c.name == bindparam("p_name"))
_SELECT_MESSAGES = (
    select(t.message.c.uid, t.message.c.sysflags.op("&")(_SEEN), t.message.c.size, t.message.c.keywords)
    .where(t.message.c.mailbox_id == bindparam("p_mb"))
    .order_by(t.message.c.uid)
)
_FIRST_RECENT_UID = (
    select(t.mailbox.c.first_recent_uid)
    .select_from(t.mailbox.join(t.user, t.user.c.id == t.mailbox.c.user_id))
    .where(t.mailbox.c.id == bindparam("p_mb"), t.user.c.name == bindparam("p_user"))
)
# LOGIN: the user's subscribed names (what a session's NOTIFY "subscribed" filter and LSUB use).
_SUBSCRIBED_NAMES = (
    select(t.subscription.c.name)
    .select_from(t.subscription.join(t.user, t.user.c.id == t.subscription.c.user_id))
    .where(t.user.c.name == bindparam("p_user"))
)
# EXPUNGE and STORE on the DBAPI cursor (MessageOps._raw_expunge, _raw_store_flags): the mailbox's
# name for the event (owner checked), then per-row changes as executemany.
_MAILBOX_NAME = select(t.mailbox.c.name).where(
    t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.id == bindparam("p_mb")
)
_SET_USER_MODSEQ = update(t.user).where(t.user.c.id == bindparam("p_id")).values(modseq=bindparam("p_modseq"))
_SET_HIGHESTMODSEQ = (
    update(t.mailbox).where(t.mailbox.c.id == bindparam("p_mb")).values(highestmodseq=bindparam("p_modseq"))
)
_DELETE_MESSAGE = delete(t.message).where(t.message.c.id == bindparam("p_id"))
_INSERT_EXPUNGED = insert(t.expunged)
_EXPUNGED_KEYS = ("mailbox_id", "uid", "modseq")
# A blob goes with the last message that uses it (copies share it).
_DELETE_UNUSED_BLOB = delete(t.blob).where(
    t.blob.c.id == bindparam("p_blob"), ~exists().where(t.message.c.blob_id == bindparam("p_blob"))
)
_SET_MESSAGE_FLAGS = (
    update(t.message)
    .where(t.message.c.mailbox_id == bindparam("p_mb"), t.message.c.uid == bindparam("p_uid"))
    .values(sysflags=bindparam("p_bits"), keywords=bindparam("p_kw"), modseq=bindparam("p_modseq"))
)
_TAKE_UID_BY_ID = (
    update(t.mailbox)
    .where(t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.id == bindparam("p_mb"))
    .values(_TAKE_UID_SET)
    .returning(*_TAKE_UID_RETURNING)
)
_TAKE_UID_BY_NAME = (
    update(t.mailbox)
    .where(t.mailbox.c.user_id == bindparam("p_uid"), t.mailbox.c.name == bindparam("p_name"))
    .values(_TAKE_UID_SET)
    .returning(*_TAKE_UID_RETURNING)
)


# STATUS: each mailbox row with its message aggregates, as plain tuples (see _status_row).
# Filtered by primary key only (the user is checked in Python): with a (user_id, ...) index in
# reach, SQLite may scan the whole account instead of looking the ids up.
def _status_select(where: ColumnElement[bool]) -> Any:
    mb, m = t.mailbox, t.message
    return (
        select(
            mb.c.id,
            mb.c.name,
            mb.c.user_id,
            mb.c.mailboxid,
            mb.c.highestmodseq,
            mb.c.nomodseq,
            mb.c.uidnext,
            mb.c.uidvalidity,
            func.count(m.c.id),
            func.sum(case((m.c.sysflags.op("&")(_SEEN) == 0, 1), else_=0)),
            func.sum(m.c.size),
            func.sum(case((m.c.uid >= mb.c.first_recent_uid, 1), else_=0)),
        )
        .select_from(mb.outerjoin(m, m.c.mailbox_id == mb.c.id))
        .where(where)
        .group_by(mb.c.id)
    )


_STATUS_OF_ONE = _status_select(t.mailbox.c.id == bindparam("p_mb"))
_STATUS_OF_IDS = _status_select(t.mailbox.c.id.in_(bindparam("p_ids", expanding=True)))
_STATUS_OF_USER = _status_select(t.mailbox.c.user_id == bindparam("p_uid"))


def _status_row(r: Any) -> MailboxStatus:
    """MailboxStatus from a STATUS row: `_status_select` and `_listing_query(..., with_status=True)`
    share one column order (the third column, user id or parent, is not part of the status). Rows
    are unpacked by position: named access on SQLAlchemy rows costs more than the rest of a
    10,000-mailbox LIST-STATUS."""
    mb_id, name, _third, mailboxid, hms, nomodseq, uidnext, uidvalidity, n, unseen, size, recent = r
    return MailboxStatus(
        mb_id,
        name,
        int(n or 0),
        int(recent or 0),
        uidnext,
        uidvalidity,
        int(unseen or 0),
        0 if nomodseq else hms,
        int(size or 0),
        mailboxid,
        bool(nomodseq),
    )


_MESSAGE_KEYS = (
    "mailbox_id",
    "uid",
    "modseq",
    "sysflags",
    "keywords",
    "internaldate",
    "tz_min",
    "internal_day",
    "sent_day",
    "size",
    "blob_id",
    "emailid",
    "threadid",
)


class _RawStatement:
    """A Core statement compiled once for the store's dialect and run on the DBAPI cursor.

    On APPEND, SQLAlchemy's per-execute work (context, result setup, events) cost three times
    SQLite's own work for the four statements; the SQL text still comes from the Core statement,
    so it stays portable (qmark for SQLite, pyformat for psycopg)."""

    __slots__ = ("_defaults", "_positions", "sql")

    def __init__(self, stmt: Any, dialect: Any, column_keys: Sequence[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        self.sql: str = compiled.string
        # Literals inside the statement (the 1 of "modseq + 1") are bind parameters with values;
        # `type(...) is int` skips the REQUIRED marker, an int subclass.
        self._defaults = {k: v for k, v in compiled.params.items() if type(v) is int}
        self._positions = tuple(compiled.positiontup) if compiled.positional else None

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self._defaults, **values} if self._defaults else values
        if self._positions is None:
            return merged
        return tuple([merged[k] for k in self._positions])

    def run(self, cur: Any, values: dict[str, Any]) -> Any:
        """Execute; the first row of a RETURNING statement (None when no row matched)."""
        cur.execute(self.sql, self.params(values))
        return cur.fetchone() if cur.description is not None else None

    def rows(self, cur: Any, values: dict[str, Any]) -> list[Any]:
        """Execute a SELECT; all its rows."""
        cur.execute(self.sql, self.params(values))
        return list(cur.fetchall())

    def run_many(self, cur: Any, values: Sequence[dict[str, Any]]) -> None:
        """One statement for each set of values (executemany)."""
        if values:
            cur.executemany(self.sql, [self.params(v) for v in values])


def _with_status(m: MailboxListing, st: MailboxStatus | None) -> MailboxListing:
    # Positional construction: dataclasses.replace costs a third of a 10,000-mailbox LIST-STATUS.
    return MailboxListing(
        m.name,
        m.id,
        m.mailboxid,
        m.has_children,
        m.has_subscribed_children,
        m.subscribed,
        m.nonexistent,
        m.old_name,
        m.highestmodseq,
        m.nomodseq,
        st,
    )


def _day_conds(
    col: Any, before: date | None, on: date | None, since: date | None
) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if before is not None:
        out.append(col < day_number(before))
    if on is not None:
        out.append(col == day_number(on))
    if since is not None:
        out.append(col >= day_number(since))
    return out


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})


def _text_match(data: bytes, flt: SearchFilter) -> bool:
    header, body = split_message(data)
    for name, needle in flt.headers:
        values = header_values(data, name)
        if not values:
            return False
        if name.lower() in _ADDRESS_HEADERS:
            values = [address_search_text(v) for v in values]
        if needle and not any(needle.casefold() in v.casefold() for v in values):
            return False
    if flt.body:
        b = body.decode("utf-8", "replace").casefold()
        if not all(s.casefold() in b for s in flt.body):
            return False
    if flt.text:
        whole = (header + body).decode("utf-8", "replace").casefold()
        if not all(s.casefold() in whole for s in flt.text):
            return False
    return True
