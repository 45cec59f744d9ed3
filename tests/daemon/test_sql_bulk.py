"""`Bulk` writes what SQLAlchemy's own executemany writes: the cache's rows are read back by the
ORM and by older daemons, so the stored text of every value (datetimes above all) must not move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, create_engine, delete, insert, text, update
from sqlmodel import SQLModel

from cpmsync.models.tables import Message, OutboxRow
from cpmsync.sql_bulk import Bulk

_MESSAGE = Message.__table__  # type: ignore[attr-defined]
_OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]

aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)
texts = st.text(max_size=40)


def _message(uid: int, draw: Any) -> dict[str, Any]:
    return {
        "folder_id": 1,
        "uid": uid,
        "modseq": draw(st.one_of(st.none(), st.integers(1, 2**63 - 1))),
        "flags": draw(texts),
        "seen": draw(st.booleans()),
        "internaldate": draw(st.one_of(st.none(), aware)),
        "size": draw(st.one_of(st.none(), st.integers(0, 2**31))),
        "from_": None,
        "to": draw(st.one_of(st.none(), texts)),
        "subject": draw(st.one_of(st.none(), texts)),
        "date": draw(st.one_of(st.none(), aware)),
        "message_id": draw(st.one_of(st.none(), texts)),
        "preview": draw(st.one_of(st.none(), texts)),
        "body": draw(st.one_of(st.none(), st.binary(max_size=20))),
    }


def _dump(eng: Any, table: str) -> list[tuple[Any, ...]]:
    with eng.connect() as c:
        return [tuple(r) for r in c.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1")]


def _engines() -> tuple[Any, Any]:
    a, b = create_engine("sqlite://"), create_engine("sqlite://")
    for e in (a, b):
        SQLModel.metadata.create_all(e)
    return a, b


_ENGINES = _engines()


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_bulk_insert_stores_what_sqlalchemy_stores(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6))
    rows = [_message(i + 1, data.draw) for i in range(n)]
    for r in rows:  # the column's name in the table is from_addr; rows are keyed by column name
        r["from_addr"] = r.pop("from_")
    # The cache gives every row of a transaction one `created` object, formatted once (a memo
    # of the last value): rows here share one or not, so hits and misses interleave.
    shared = data.draw(aware)
    outbox = [
        {
            "topic": data.draw(texts),
            "payload": data.draw(texts),
            "qos": 1,
            "retain": data.draw(st.booleans()),
            "created": shared if data.draw(st.booleans()) else data.draw(aware),
            "folder": "f",
            "seq": i + 1,
            "event_id": data.draw(st.one_of(st.none(), texts)),
        }
        for i in range(n)
    ]
    sa_eng, bulk_eng = _ENGINES
    for e in _ENGINES:
        with e.begin() as c:
            c.execute(delete(_MESSAGE))
            c.execute(delete(_OUTBOX))
    with sa_eng.begin() as c:
        c.execute(insert(_MESSAGE), rows)
        c.execute(insert(_OUTBOX), outbox)
    with bulk_eng.begin() as c:
        Bulk(insert(_MESSAGE)).execute(c, rows)
        Bulk(insert(_OUTBOX)).execute(c, outbox)
    assert _dump(bulk_eng, _MESSAGE.name) == _dump(sa_eng, _MESSAGE.name)
    assert _dump(bulk_eng, _OUTBOX.name) == _dump(sa_eng, _OUTBOX.name)


def test_bulk_update_by_bound_names_and_rollback() -> None:
    _, eng = _engines()
    stmt = Bulk(
        update(_MESSAGE)
        .where(_MESSAGE.c.uid == bindparam("muid"))
        .values(flags=bindparam("v_flags"), date=bindparam("v_date"))
    )
    when = datetime(2026, 12, 4, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    with eng.begin() as c:
        c.execute(insert(_MESSAGE), [{"folder_id": 1, "uid": u, "flags": "", "seen": False} for u in (1, 2)])
    with eng.begin() as c:
        stmt.execute(c, [{"muid": 2, "v_flags": "\\Seen", "v_date": when}])
    with eng.connect() as c:
        got = c.execute(text("SELECT uid, flags, date FROM message ORDER BY uid")).all()
    assert [tuple(r) for r in got] == [(1, "", None), (2, "\\Seen", "2026-12-04 11:00:00.000000")]
    with pytest.raises(RuntimeError), eng.begin() as c:  # inside the caller's transaction: undone
        stmt.execute(c, [{"muid": 1, "v_flags": "x", "v_date": None}])
        raise RuntimeError
    with eng.connect() as c:
        assert c.execute(text("SELECT flags FROM message WHERE uid = 1")).scalar() == ""


def test_rows_without_a_statement_parameter_are_refused() -> None:
    _, eng = _engines()
    stmt = Bulk(update(_MESSAGE).where(_MESSAGE.c.uid == bindparam("muid")).values(flags=bindparam("v")))
    with pytest.raises(ValueError, match="lack"), eng.begin() as c:
        stmt.execute(c, [{"muid": 1}])


def test_a_naive_datetime_is_refused_as_sqlalchemy_refuses_it() -> None:
    _, eng = _engines()
    row = {"folder_id": 1, "uid": 1, "flags": "", "seen": False, "internaldate": datetime(2026, 12, 4)}
    with pytest.raises(Exception, match="timezone information") as by_sa, eng.begin() as c:
        c.execute(insert(_MESSAGE), [row, row])
    with pytest.raises(ValueError, match="timezone information") as by_bulk, eng.begin() as c:
        Bulk(insert(_MESSAGE)).execute(c, [row])
    assert str(by_bulk.value) in str(by_sa.value)
    aware_row = {**row, "uid": 2, "internaldate": datetime(2026, 12, 4, tzinfo=UTC)}
    with pytest.raises(ValueError, match="timezone information"), eng.begin() as c:
        Bulk(insert(_MESSAGE)).execute(c, [aware_row, row])  # a naive value right after a memo'd one
