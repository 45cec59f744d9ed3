"""Accounts: add, delete, list, verify passwords."""

from __future__ import annotations

import time

from sqlalchemy import (
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from cpmsync.logs import kv
from cpmsync.msgstore import schema as t
from cpmsync.msgstore.errors import (
    InvalidName,
    NoSuchUser,
    UserExists,
)
from cpmsync.msgstore.passwords import hash_password, verify_password
from cpmsync.msgstore.store.engine import StoreEngine
from cpmsync.msgstore.store.statements import (
    _INBOX,
    _chunks,
    log,
)


class UserOps(StoreEngine):
    """Accounts: add, delete, list, verify passwords."""

    # ================================================================ users

    def add_user(self, name: str, password: str) -> None:
        """Create a user with INBOX; the password is stored argon2id-hashed."""
        if not name or len(name) > 255 or any(c.isspace() or ord(c) < 0x20 for c in name):
            raise InvalidName("user names are 1..255 characters without spaces or control characters")
        pw_hash = hash_password(password)
        try:
            with self._admin() as conn:
                # UIDVALIDITY starts at the clock so a re-created user does not repeat old values.
                conn.execute(
                    insert(t.user).values(
                        name=name,
                        password_hash=pw_hash,
                        modseq=0,
                        uidvalidity_next=max(1, int(time.time()) % 2**31),
                    )
                )
        except IntegrityError:
            raise UserExists(f"user {name!r} already exists") from None
        with self._write(name) as txn:
            self._insert_mailbox(txn, _INBOX)
        log.info("user added", extra=kv(user=name))

    def delete_user(self, name: str) -> None:
        """Remove a user and everything they own."""
        with self._admin() as conn:
            user_id = self._user_id(conn, name)
            mb_ids = [
                r[0] for r in conn.execute(select(t.mailbox.c.id).where(t.mailbox.c.user_id == user_id))
            ]
            for chunk in _chunks(mb_ids):
                blob_ids = [
                    r[0]
                    for r in conn.execute(
                        select(t.message.c.blob_id).where(t.message.c.mailbox_id.in_(chunk)).distinct()
                    )
                ]
                conn.execute(delete(t.message).where(t.message.c.mailbox_id.in_(chunk)))
                conn.execute(delete(t.expunged).where(t.expunged.c.mailbox_id.in_(chunk)))
                self._gc_blobs(conn, blob_ids)
            conn.execute(delete(t.mailbox).where(t.mailbox.c.user_id == user_id))
            conn.execute(delete(t.subscription).where(t.subscription.c.user_id == user_id))
            conn.execute(delete(t.mailbox_tombstone).where(t.mailbox_tombstone.c.user_id == user_id))
            conn.execute(delete(t.mailbox_rename).where(t.mailbox_rename.c.user_id == user_id))
            conn.execute(delete(t.user).where(t.user.c.id == user_id))
        log.info("user deleted", extra=kv(user=name))

    def list_users(self) -> list[str]:
        with self._read() as conn:
            return [r[0] for r in conn.execute(select(t.user.c.name).order_by(t.user.c.name))]

    def verify_password(self, name: str, password: str) -> bool:
        """Unknown users cost one hash too, so timing does not reveal which names exist."""
        try:
            name.encode("utf-8")
            password.encode("utf-8")
        except UnicodeEncodeError:
            # Undecodable bytes from the wire (surrogate escapes) name no user and match no stored
            # password; the dummy hash still takes the same time. SQL and argon2 would raise instead.
            return verify_password(None, "")
        rows = self._raw_read(self._raw_password_hash, {"p_user": name})  # every LOGIN: no Core
        return verify_password(rows[0][0] if rows else None, password)

    def user_highest_modseq(self, user: str) -> int:
        with self._read() as conn:
            v = conn.execute(select(t.user.c.modseq).where(t.user.c.name == user)).scalar()
        if v is None:
            raise NoSuchUser(f"no such user {user!r}")
        return int(v)
