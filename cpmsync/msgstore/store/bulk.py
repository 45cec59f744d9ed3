"""Seeding: many mailboxes and messages in few statements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    insert,
    select,
    update,
)

from cpmsync.msgstore import schema as t
from cpmsync.msgstore.message_meta import parse_meta
from cpmsync.msgstore.store.engine import StoreEngine
from cpmsync.msgstore.store.statements import (
    _ancestors,
    _check_name,
    _chunks,
    _kw_text,
    _new_objectid,
    _parent_of,
    _split_flags,
    _to_epoch,
)


@dataclass(frozen=True, slots=True)
class BulkMessage:
    """One message for `bulk_load` (seeding)."""

    data: bytes
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None


@dataclass(frozen=True, slots=True)
class BulkMailbox:
    """A mailbox and its messages for `bulk_load`; an existing mailbox is appended to."""

    name: str
    messages: Sequence[BulkMessage] = ()


class BulkOps(StoreEngine):
    """Seeding: many mailboxes and messages in few statements."""

    # ================================================================ bulk (seeding)

    def bulk_load(self, user: str, mailboxes: Sequence[BulkMailbox]) -> int:
        """Create mailboxes (and missing parents) and add their messages in ONE transaction, with
        multi-row inserts. For seeding and benchmarks: MODSEQ/UID rules as for single calls, but no
        events are published. Returns the number of messages added."""
        with self._write(user) as txn:
            conn = txn.conn
            names = [_check_name(b.name) for b in mailboxes]
            wanted_set: dict[str, None] = {}  # ordered: parents before children
            for n in names:
                for a in [*_ancestors(n), n]:
                    wanted_set.setdefault(a, None)
            wanted = list(wanted_set)
            existing_rows = {}
            for chunk in _chunks(wanted):
                for r in conn.execute(
                    select(t.mailbox).where(t.mailbox.c.user_id == txn.user_id, t.mailbox.c.name.in_(chunk))
                ):
                    existing_rows[r.name] = r
            msgs_by_name: dict[str, list[BulkMessage]] = {}
            for n, b in zip(names, mailboxes, strict=True):
                msgs_by_name.setdefault(n, []).extend(b.messages)
            # Mailboxes: each creation takes a MODSEQ, then its messages take the following ones.
            new_rows: list[dict[str, Any]] = []
            plan: list[tuple[str, int, int, list[BulkMessage]]] = []  # name, first uid, uidvalidity, messages
            for n in wanted:
                msgs = msgs_by_name.get(n, [])
                if n in existing_rows:
                    r = existing_rows[n]
                    plan.append((n, r.uidnext, r.uidvalidity, msgs))
                    continue
                created = txn.next_modseq()
                uidvalidity = txn.next_uidvalidity()
                new_rows.append(
                    {
                        "user_id": txn.user_id,
                        "name": n,
                        "parent": _parent_of(n),
                        "uidvalidity": uidvalidity,
                        "uidnext": 1 + len(msgs),
                        "highestmodseq": created + len(msgs),
                        "created_modseq": created,
                        "nomodseq": False,
                        "mailboxid": _new_objectid("F"),
                        "first_recent_uid": 1,
                    }
                )
                plan.append((n, 1, uidvalidity, msgs))
                txn.modseq += len(msgs)  # reserved for this mailbox's messages, in order
            ids: dict[str, int] = {n: r.id for n, r in existing_rows.items()}
            if new_rows:
                res = conn.execute(
                    insert(t.mailbox).returning(
                        t.mailbox.c.id, t.mailbox.c.name, sort_by_parameter_order=True
                    ),
                    new_rows,
                )
                ids.update({r.name: r.id for r in res})
            # Messages of existing mailboxes take MODSEQs after all new ones.
            blob_rows: list[dict[str, Any]] = []
            msg_rows: list[dict[str, Any]] = []
            existing_updates: list[dict[str, Any]] = []
            new_names = {r["name"] for r in new_rows}
            next_created = {r["name"]: r["created_modseq"] for r in new_rows}
            for n, first_uid, _uv, msgs in plan:
                if not msgs:
                    continue
                if n in new_names:
                    base = next_created[n]
                    modseqs = [base + 1 + i for i in range(len(msgs))]
                else:
                    modseqs = [txn.next_modseq() for _ in msgs]
                    existing_updates.append(
                        {"b_id": ids[n], "b_uidnext": first_uid + len(msgs), "b_hms": modseqs[-1]}
                    )
                for i, bm in enumerate(msgs):
                    bits, kws = _split_flags(bm.flags)
                    epoch, tz_min, day = _to_epoch(bm.internaldate)
                    meta = parse_meta(bm.data)
                    blob_rows.append({"data": bm.data})
                    msg_rows.append(
                        {
                            "mailbox_id": ids[n],
                            "uid": first_uid + i,
                            "modseq": modseqs[i],
                            "sysflags": bits,
                            "keywords": _kw_text(kws),
                            "internaldate": epoch,
                            "tz_min": tz_min,
                            "internal_day": day,
                            "sent_day": meta.sent_day,
                            "size": len(bm.data),
                            "emailid": _new_objectid("M"),
                            "threadid": meta.threadid,
                        }
                    )
            if blob_rows:
                res = conn.execute(
                    insert(t.blob).returning(t.blob.c.id, sort_by_parameter_order=True), blob_rows
                )
                for row, blob_id in zip(msg_rows, [r[0] for r in res], strict=True):
                    row["blob_id"] = blob_id
                conn.execute(insert(t.message), msg_rows)
            if existing_updates:
                conn.execute(
                    update(t.mailbox)
                    .where(t.mailbox.c.id == bindparam("b_id"))
                    .values(uidnext=bindparam("b_uidnext"), highestmodseq=bindparam("b_hms")),
                    existing_updates,
                )
            return len(msg_rows)

    def analyze(self) -> None:
        """Refresh planner statistics after bulk loads (seeding calls it after its first batch and at
        the end): without them PostgreSQL keeps planning for empty tables and scans sequentially."""
        with self._engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("ANALYZE" if self._sqlite else "ANALYZE cpm_user, mailbox, message, blob")
