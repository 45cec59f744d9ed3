"""Many rows through one prebuilt statement, with SQLAlchemy's per-row work done once per batch.

`Connection.execute(stmt, rows)` checks, converts and re-keys every row of an executemany through
the compiled statement's machinery: for the 11,000 message and outbox rows of a 1,000-folder
first sync that cost as much as SQLite's own inserting. `Bulk` compiles the statement once per
dialect and key set, converts values with the same bind processors SQLAlchemy would use (a
DateTime becomes the same text, so reads see no difference) and hands plain tuples to the
driver's executemany on the same connection, inside the caller's transaction. SQLModel's aware
datetime on SQLite, three per message, has a processor of its own that writes the same text in
a third of the time (tests/daemon/test_sql_bulk.py holds it to SQLAlchemy's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine
from sqlmodel.sql.sqltypes import UTCDateTime

__all__ = ["Bulk"]

_Processor = Callable[[Any], Any]
_Row = Mapping[str, Any]
_Prepared = tuple[str, Callable[[_Row], tuple[Any, ...]]]


class Bulk:
    """`Bulk(stmt).execute(conn, rows)`: rows are mappings with the same keys (a statement's
    bound names: the columns of an INSERT, the bindparams of an UPDATE)."""

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._prepared: dict[tuple[str, tuple[str, ...]], _Prepared] = {}

    def execute(self, conn: Connection, rows: Sequence[_Row]) -> None:
        if not rows:
            return
        keys = tuple(rows[0])
        dialect = conn.dialect
        prepared = self._prepared.get((dialect.name, keys))
        if prepared is None:
            prepared = self._prepared[(dialect.name, keys)] = self._prepare(dialect, keys)
        sql, to_tuple = prepared
        conn.exec_driver_sql(sql, [to_tuple(r) for r in rows])

    def _prepare(self, dialect: Dialect, keys: tuple[str, ...]) -> _Prepared:
        compiled = self.stmt.compile(dialect=dialect, column_keys=list(keys))
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"Bulk needs a SQL statement, not {type(self.stmt).__name__}")
        order = compiled.positiontup
        if order is None:
            raise ValueError(f"Bulk needs a positional paramstyle, not {dialect.paramstyle!r}")
        missing = [n for n in order if n not in keys]
        if missing:
            raise ValueError(f"rows lack the statement's parameters {missing}")
        procs = [_processor(compiled.binds[n].type, dialect) for n in order]
        get = itemgetter(*order)
        if len(order) == 1:
            one = order[0]
            p0 = procs[0]
            if p0 is None:
                return compiled.string, lambda r: (r[one],)
            return compiled.string, lambda r: (None if r[one] is None else p0(r[one]),)
        if not any(procs):
            return compiled.string, get
        conv = [(i, p) for i, p in enumerate(procs) if p is not None]

        def to_tuple(r: _Row) -> tuple[Any, ...]:
            v = list(get(r))
            for i, p in conv:
                if v[i] is not None:
                    v[i] = p(v[i])
            return tuple(v)

        return compiled.string, to_tuple


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> _Processor | None:
    """The bind processor SQLAlchemy would apply for this type, or one that writes the same."""
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        impl = type_.dialect_impl(dialect).impl_instance  # type: ignore[attr-defined]
        if isinstance(impl, SQLITE_DATETIME) and impl._storage_format == SQLITE_DATETIME._storage_format:
            return _utc_text
    return type_.dialect_impl(dialect).bind_processor(dialect)


_last_text: tuple[datetime | None, str] = (None, "")
"""The last value `_utc_text` formatted and its text: every outbox row of a cache transaction
shares one `created` object, formatted once (one tuple, replaced whole: safe across threads)."""


def _utc_text(value: datetime) -> str:
    """UTCDateTime then SQLite's DATETIME: the UTC wall time as `YYYY-MM-DD HH:MM:SS.ffffff`."""
    global _last_text
    last = _last_text
    if last[0] is value:
        return last[1]
    # Most values are in UTC already (IMAP's +0000, the daemon's own clock): no check, no conversion.
    text = (value if value.tzinfo is UTC else _as_utc(value)).isoformat(" ", "microseconds")[:26]
    _last_text = (value, text)
    return text


def _as_utc(value: datetime) -> datetime:
    if value.utcoffset() is None:  # UTCDateTime's own refusal, word for word
        raise ValueError(
            "Datetime values must have timezone information. "
            "Use datetime.now(timezone.utc), or annotate the field with "
            "NaiveDatetime for naive storage."
        )
    return value.astimezone(UTC)
