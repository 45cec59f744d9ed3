"""The per-user connection limit, held in one process or across instances on one PostgreSQL.

`[limits] max_connections_per_user` bounds what one account (a runaway client, a leaked password)
can make the service hold. With several instances behind a load balancer a user's connections
land on any of them, so a per-process count would let N instances hold N times the limit:
`SharedUserConnections` keeps each instance's count per user in the `connection_claim` table and
a login is refused when the live instances together already hold the limit.

- *Live instances only.* A row counts while its instance's LISTEN connection shows in
  pg_stat_activity (PostgreSQL ends it when the process dies), so an instance killed with
  connections open never leaves its users locked out; `forget_dead_instances` removes such rows.
- *Absolute, not deltas.* Each write sets the row to the instance's exact local count, so a write
  lost to a database error is corrected by that user's next login or logout here.
- *Serialised per user.* A login takes a transaction-scoped advisory lock on the user, so two
  instances admitting the user's last slot at once cannot both win.
- *Availability first.* The database unreachable at login: the local count alone decides (the
  password check needs the database anyway); a failed release is logged and corrected later.

Per connection limits (line and literal sizes, commands per second) and the per-address limit stay
per instance: the first two concern one connection, and behind a load balancer every connection
comes from the balancer's address, so per-address limits belong there (README, HAProxy).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import zlib
from collections import Counter
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cpmsync.logs import kv
from cpmsync.msgstore.pg_listener import listener_application_name
from cpmsync.msgstore.store import MessageStore

__all__ = ["LocalUserConnections", "SharedUserConnections", "UserConnections", "user_connections"]

log = logging.getLogger("cpmsync.msgstore.connection_limits")

# A row is live when its instance's listener is connected (application name in pg_stat_activity).
_LIVE = "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = :prefix || c.instance)"
_OTHERS = text(
    "SELECT coalesce(sum(c.connections), 0) FROM connection_claim c"
    f" WHERE c.user_name = :user AND c.instance <> :me AND {_LIVE}"
)
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_SET = text(
    "INSERT INTO connection_claim (user_name, instance, connections) VALUES (:user, :me, :n)"
    " ON CONFLICT (user_name, instance) DO UPDATE SET connections = excluded.connections"
)
_DROP = text("DELETE FROM connection_claim WHERE user_name = :user AND instance = :me")
_FORGET = text(f"DELETE FROM connection_claim c WHERE c.instance <> :me AND NOT {_LIVE}")
_STRIPES = 64


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class UserConnections(Protocol):
    """What a server needs: claim a slot at login (False: over the limit), release it at the end."""

    limit: int

    async def claim(self, user: str) -> bool: ...

    async def release(self, user: str) -> None: ...

    def local(self, user: str) -> int: ...


class LocalUserConnections:
    """One process (SQLite, or a single instance): a counter on the event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count: Counter[str] = Counter()

    async def claim(self, user: str) -> bool:
        if self._count[user] >= self.limit:
            return False
        self._count[user] += 1
        return True

    async def release(self, user: str) -> None:
        self._count[user] -= 1
        if self._count[user] <= 0:
            del self._count[user]

    def local(self, user: str) -> int:
        return self._count[user]


class SharedUserConnections:
    """Across the instances on one PostgreSQL database; see the module doc."""

    def __init__(self, store: MessageStore, limit: int) -> None:
        if not store.is_postgresql:
            raise ValueError("a limit shared across instances needs a PostgreSQL store")
        self.limit = limit
        self._engine = store.engine
        self._me = store.instance_id
        self._prefix = listener_application_name("")
        self._scope = store.pg_channel  # one per schema: the advisory lock key space is database-wide
        self._count: Counter[str] = Counter()  # changed in worker threads under the user's stripe
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    def local(self, user: str) -> int:
        return self._count[user]

    async def claim(self, user: str) -> bool:
        return await asyncio.to_thread(self._claim, user)

    async def release(self, user: str) -> None:
        await asyncio.to_thread(self._release, user)

    async def forget_dead_instances(self) -> int:
        """Delete the rows of instances that are gone (at start-up; they no longer count anyway)."""
        return await asyncio.to_thread(self._forget)

    def _stripe(self, user: str) -> threading.Lock:
        return self._stripes[zlib.crc32(user.encode()) % _STRIPES]

    def _key(self, user: str) -> int:
        """A signed 64-bit advisory lock key for (schema, user)."""
        digest = zlib.crc32(f"{self._scope}/{user}".encode()) | (zlib.adler32(user.encode()) << 32)
        return digest - (1 << 64) if digest >= 1 << 63 else digest

    def _claim(self, user: str) -> bool:
        with self._stripe(user):
            mine = self._count[user] + 1
            if mine > self.limit:
                return False
            try:
                with self._engine.begin() as conn:
                    conn.execute(_LOCK, {"key": self._key(user)})
                    others = int(
                        conn.execute(
                            _OTHERS, {"user": user, "me": self._me, "prefix": self._prefix}
                        ).scalar_one()
                    )
                    if others + mine > self.limit:
                        log.info(
                            "connection limit reached across instances",
                            extra=kv(user=user, here=mine - 1, elsewhere=others, limit=self.limit),
                        )
                        return False
                    conn.execute(_SET, {"user": user, "me": self._me, "n": mine})
            except SQLAlchemyError as e:
                log.warning(
                    "cannot read the connection count of other instances: counting this one only",
                    extra=kv(user=user, error=_first_line(e)),
                )
            self._count[user] = mine
            return True

    def _release(self, user: str) -> None:
        with self._stripe(user):
            left = self._count[user] - 1
            if left <= 0:
                self._count.pop(user, None)
            else:
                self._count[user] = left
            try:
                with self._engine.begin() as conn:
                    if left <= 0:
                        conn.execute(_DROP, {"user": user, "me": self._me})
                    else:
                        conn.execute(_SET, {"user": user, "me": self._me, "n": left})
            except SQLAlchemyError as e:
                log.warning(
                    "cannot record a closed connection: corrected at this user's next login or logout",
                    extra=kv(user=user, error=_first_line(e)),
                )

    def _forget(self) -> int:
        with self._engine.begin() as conn:
            return int(conn.execute(_FORGET, {"me": self._me, "prefix": self._prefix}).rowcount)


def user_connections(store: MessageStore, limit: int) -> UserConnections:
    """Shared across instances on PostgreSQL, local on SQLite (one process by design)."""
    if store.is_postgresql:
        return SharedUserConnections(store, limit)
    return LocalUserConnections(limit)
