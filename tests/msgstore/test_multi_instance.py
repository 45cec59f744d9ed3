"""Several `cpmsync msgstore serve` processes on one PostgreSQL database behave as one server.

Real processes on the machine's PostgreSQL (127.0.0.1:5432, database `test`), each run in a fresh
schema. A client on one instance hears, at once, what a client on another changed: IDLE on the
selected mailbox (EXISTS, FETCH, EXPUNGE) and NOTIFY (STATUS, LIST for create, rename, delete,
subscribe). MODSEQs stay unique and in commit order under writers on different instances; an
instance killed mid-APPEND loses nothing it acknowledged, and its clients catch up on another one
with QRESYNC and LIST-CHANGEDSINCE; a listener connection terminated by PostgreSQL loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cpmsync.msgstore import MessageStore
from cpmsync.msgstore.connection_limits import SharedUserConnections
from tests.support.haproxy import HaproxyFront, check_config
from tests.support.msgstore_cluster import MsgstoreInstance, PgSchema
from tests.support.raw_imap import RawImap

pytestmark = pytest.mark.slow

MSG = b"From: <tel:+15143457900>\r\nSubject: Lunch?\r\n\r\nsee you at noon\r\n"


@pytest.fixture(scope="module")
def schema() -> Iterator[PgSchema]:
    # psycopg is a dev dependency: its absence fails here (PgSchema imports it), never skips.
    with PgSchema.fresh() as s:
        yield s


# Connections one user may hold across all instances (the tests below stay under it, but for
# test_connections_per_user_are_limited_across_instances).
PER_USER = 6


@pytest.fixture(scope="module")
def instance_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    config = tmp_path_factory.mktemp("msgstore") / "msgstore.toml"
    config.write_text(f"[limits]\nmax_connections_per_user = {PER_USER}\n")
    return ["--config", str(config)]


@pytest.fixture(scope="module")
def cluster(schema: PgSchema, instance_args: list[str]) -> Iterator[list[MsgstoreInstance]]:
    """Three instances on the schema (started once for the module)."""
    MessageStore(schema.url).close()  # tables exist before three processes race to create them
    instances = [
        MsgstoreInstance(schema.url, name=f"msgstore{i}", extra_args=instance_args) for i in range(3)
    ]
    try:
        for inst in instances:
            inst.start()
        yield instances
    finally:
        for inst in instances:
            inst.__exit__(None, None, None)


@pytest.fixture
def user(schema: PgSchema) -> str:
    name = f"u{uuid.uuid4().hex[:10]}"
    with MessageStore(schema.url) as store:
        store.add_user(name, "pw")
    return name


class Client:
    """A raw IMAP connection with the two things these tests do: run a command, and wait for an
    untagged line that matches (remembering what went by)."""

    def __init__(self, raw: RawImap) -> None:
        self.raw = raw
        self.seen: list[bytes] = []

    async def cmd(self, text: str) -> list[bytes]:
        lines = await self.raw.command(text)
        assert b" OK" in lines[-1], (text, lines)
        return lines

    async def append(self, mailbox: str, data: bytes = MSG) -> tuple[int, list[bytes]]:
        """APPEND (LITERAL+); the UID from APPENDUID and every line of the reply."""
        tag = f"ap{uuid.uuid4().hex[:6]}"
        await self.raw.send(f'{tag} APPEND "{mailbox}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n")
        lines = []
        while True:
            line = await self.raw.readline()
            if not line:
                raise ConnectionError("closed during APPEND")
            lines.append(line)
            if line.startswith(tag.encode()):
                m = re.search(rb"APPENDUID \d+ (\d+)", line)
                assert m is not None, lines
                return int(m.group(1)), lines

    async def expect(self, pattern: str, timeout_s: float = 15.0) -> re.Match[bytes]:
        rx = re.compile(pattern.encode())
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self.raw.readline()
                if not line:
                    raise ConnectionError(f"closed while waiting for {pattern!r}; saw {self.seen[-5:]!r}")
                self.seen.append(line)
                m = rx.search(line)
                if m is not None:
                    return m

    async def expect_all(self, *patterns: str, timeout_s: float = 15.0) -> None:
        """Every pattern matched by some line, in whatever order they come."""
        todo = [re.compile(p.encode()) for p in patterns]
        async with asyncio.timeout(timeout_s):
            while todo:
                line = await self.raw.readline()
                if not line:
                    raise ConnectionError(f"closed while waiting for {todo!r}; saw {self.seen[-5:]!r}")
                self.seen.append(line)
                todo = [rx for rx in todo if rx.search(line) is None]

    async def expect_count(self, pattern: str, at_least: int, timeout_s: float = 15.0) -> int:
        """Wait for a line whose first group is a number >= at_least (EXISTS counts coalesce)."""
        while True:
            n = int((await self.expect(pattern, timeout_s)).group(1))
            if n >= at_least:
                return n


@contextlib.asynccontextmanager
async def connect(inst: MsgstoreInstance, user: str) -> AsyncIterator[Client]:
    async with RawImap("127.0.0.1", inst.port, timeout_s=30) as raw:
        await raw.login(user, "pw")
        yield Client(raw)


def _instance_id(inst: MsgstoreInstance) -> str:
    m: list[str] = re.findall(r'"PostgreSQL listener ready".*?instance=(\w+)', inst.log_text())
    assert m, inst.log_text()[-2000:]
    return m[-1]


def _terminate_listeners(schema: PgSchema, inst: MsgstoreInstance) -> int:
    """pg_terminate_backend on the instance's LISTEN connection(s); how many were terminated."""
    import psycopg

    app = f"cpmsync-listener-{_instance_id(inst)}"
    with psycopg.connect(schema.base_url, autocommit=True) as c:
        rows = c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


# ---------------------------------------------------------------- push, every kind of event


async def test_every_kind_of_change_on_one_instance_is_pushed_by_the_others(
    cluster: list[MsgstoreInstance], user: str
) -> None:
    a, b, c = cluster
    async with connect(a, user) as idler, connect(c, user) as notifier, connect(b, user) as writer:
        await writer.cmd('CREATE "chat"')
        await writer.cmd("ENABLE CONDSTORE")
        await writer.cmd("SELECT INBOX")
        await idler.cmd("SELECT INBOX")
        await notifier.cmd("ENABLE CONDSTORE")
        await notifier.cmd(
            "NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
        )
        await idler.raw.send(b"i1 IDLE\r\n")
        await idler.expect(r"^\+ ")

        # APPEND: the writer's own session hears its EXISTS before the tagged OK (through its
        # instance's echo from PostgreSQL); the other instances push EXISTS and STATUS.
        uid, lines = await writer.append("INBOX")
        assert any(line == b"* 1 EXISTS\r\n" for line in lines), lines
        await idler.expect(r"^\* 1 EXISTS")
        await notifier.expect(r'^\* STATUS "INBOX" \(MESSAGES 1 ')

        # STORE: FETCH FLAGS on the selected mailbox, STATUS with the writer's MODSEQ elsewhere.
        stored = await writer.cmd(f"UID STORE {uid} +FLAGS (\\Flagged \\Deleted)")
        modseq = re.search(rb"MODSEQ \((\d+)\)", b"".join(stored))
        assert modseq is not None, stored
        await idler.expect(r"^\* 1 FETCH \(.*FLAGS \(\\Deleted \\Flagged( \\Recent)?\)")
        await notifier.expect(rf'^\* STATUS "INBOX" \(.*HIGHESTMODSEQ {int(modseq.group(1))}\)')

        # EXPUNGE.
        await writer.cmd("EXPUNGE")
        await idler.expect(r"^\* 1 EXPUNGE")
        await notifier.expect(r'^\* STATUS "INBOX" \(MESSAGES 0 ')

        # Mailbox names: CREATE, RENAME, DELETE, SUBSCRIBE as LIST.
        await writer.cmd('CREATE "gossip"')
        await notifier.expect(r'^\* LIST \(\) "/" "?gossip"?\r')
        await writer.cmd('RENAME "gossip" "rumours"')
        await notifier.expect(r'^\* LIST \(\) "/" "?rumours"? \("OLDNAME" \("gossip"\)\)')
        await writer.cmd('DELETE "rumours"')
        await notifier.expect(r'^\* LIST \(\\NonExistent\) "/" "?rumours"?')
        await writer.cmd('SUBSCRIBE "chat"')
        await notifier.expect(r'^\* LIST \(\\Subscribed\) "/" "?chat"?')

        # COPY and MOVE into the selected mailbox from another instance: EXISTS again.
        await writer.append("chat")
        await notifier.expect(r'^\* STATUS "?chat"? \(MESSAGES 1 ')
        await writer.cmd("SELECT chat")
        await writer.cmd("MOVE 1 INBOX")
        await idler.expect(r"^\* 1 EXISTS")
        await notifier.expect(r'^\* STATUS "?chat"? \(MESSAGES 0 ')
        await idler.raw.send(b"DONE\r\n")
        await idler.expect(r"^i1 OK")


# ---------------------------------------------------------------- MODSEQ under concurrent writers


async def test_modseqs_stay_unique_and_in_commit_order_with_writers_on_every_instance(
    cluster: list[MsgstoreInstance], user: str
) -> None:
    per_writer = 25
    async with connect(cluster[0], user) as observer:
        await observer.cmd('CREATE "other"')
        await observer.cmd("ENABLE CONDSTORE")
        await observer.cmd("SELECT INBOX")
        await observer.cmd("NOTIFY SET (selected (MessageNew (UID MODSEQ) MessageExpunge FlagChange))")

        async def writer(inst: MsgstoreInstance) -> None:
            async with connect(inst, user) as w:
                for i in range(per_writer):
                    await w.append("INBOX" if i % 2 == 0 else "other")

        await asyncio.gather(*(writer(inst) for inst in cluster))
        inbox_total = len(cluster) * ((per_writer + 1) // 2)
        pushed: list[tuple[int, int]] = []
        while len(pushed) < inbox_total:
            line = (await observer.expect(r"^\* \d+ FETCH \(.*UID \d+")).string
            uid = re.search(rb"UID (\d+)", line)
            modseq = re.search(rb"MODSEQ \((\d+)\)", line)
            assert uid is not None and modseq is not None, line
            pushed.append((int(uid.group(1)), int(modseq.group(1))))
        # Pushed in commit order, from whichever instance committed: UIDs and MODSEQs both rise.
        assert [u for u, _ in pushed] == list(range(1, inbox_total + 1))
        assert all(m1 < m2 for (_, m1), (_, m2) in itertools.pairwise(pushed))

    async with connect(cluster[2], user) as reader:
        seen: dict[int, tuple[str, int]] = {}
        for mailbox in ("INBOX", "other"):
            await reader.cmd(f"SELECT {mailbox}")
            lines = await reader.cmd("UID FETCH 1:* (MODSEQ)")
            pairs = [(int(u), int(m)) for u, m in re.findall(rb"UID (\d+) MODSEQ \((\d+)\)", b"".join(lines))]
            assert [m for _, m in sorted(pairs)] == sorted(m for _, m in pairs)  # in UID order too
            for u, m in pairs:
                assert m not in seen, f"MODSEQ {m} of {mailbox} {u} also {seen[m]}"
                seen[m] = (mailbox, u)
        assert len(seen) == len(cluster) * per_writer


# ---------------------------------------------------------------- an instance dies


async def test_an_instance_killed_mid_append_loses_nothing_acknowledged(
    cluster: list[MsgstoreInstance], schema: PgSchema, user: str
) -> None:
    survivor = cluster[0]
    doomed = MsgstoreInstance(schema.url, name="doomed").start()
    try:
        async with connect(survivor, user) as idler:
            await idler.cmd("SELECT INBOX")
            await idler.raw.send(b"i1 IDLE\r\n")
            await idler.expect(r"^\+ ")

            # A phone on the doomed instance knows the account as of now.
            async with connect(doomed, user) as phone:
                await phone.cmd("ENABLE QRESYNC")
                sel = b"".join(await phone.cmd("SELECT INBOX"))
                uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", sel).group(1))  # type: ignore[union-attr]
                known = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel).group(1))  # type: ignore[union-attr]
                async with connect(doomed, user) as writer:
                    await writer.cmd('CREATE "made-before-the-crash"')
                    acked = [(await writer.append("INBOX"))[0] for _ in range(10)]
                    # One more on the wire, then the process dies without a goodbye.
                    await writer.raw.send(b"x APPEND INBOX {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
                    doomed.kill()
                    last = b""
                    with contextlib.suppress(ConnectionError, TimeoutError):
                        last = await writer.raw.read_all()
                    if ok := re.search(rb"x OK \[APPENDUID \d+ (\d+)\]", last):
                        acked.append(int(ok.group(1)))  # it got through before the kill

            # The survivor's IDLE client heard every acknowledged APPEND the dead instance committed.
            await idler.expect_count(r"^\* (\d+) EXISTS", len(acked))

        # The phone reconnects to the survivor and catches up from the MODSEQ it knew.
        async with connect(survivor, user) as phone:
            await phone.cmd("ENABLE QRESYNC")
            listed = b"".join(
                await phone.cmd(
                    f'LIST (CHANGEDSINCE ({known})) "" "*" RETURN (STATUS (MESSAGES HIGHESTMODSEQ))'
                )
            )
            assert b'"made-before-the-crash"' in listed or b" made-before-the-crash\r" in listed, listed
            assert b'STATUS "INBOX"' in listed or b"STATUS INBOX" in listed, listed
            lines = await phone.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {known}))")
            fetched = {int(u) for u in re.findall(rb"\* \d+ FETCH \(.*?UID (\d+)", b"".join(lines))}
            assert set(acked) <= fetched
            assert len(fetched) in (len(acked), len(acked) + 1)  # the unacknowledged one: all or nothing
    finally:
        doomed.__exit__(None, None, None)


# ---------------------------------------------------------------- the listener's connection drops


async def test_changes_made_while_a_listener_is_cut_off_are_delivered_after_it_reconnects(
    cluster: list[MsgstoreInstance], schema: PgSchema, user: str
) -> None:
    listening, writing = cluster[1], cluster[2]
    replays_before = listening.log_text().count('"PostgreSQL listener caught up"')
    async with connect(listening, user) as idler, connect(listening, user) as notifier:
        await idler.cmd("SELECT INBOX")
        await notifier.cmd("NOTIFY SET (personal (MessageNew MailboxName))")
        await idler.raw.send(b"i1 IDLE\r\n")
        await idler.expect(r"^\+ ")

        # Keep terminating the listener's backend while the other instance writes, so the writes
        # fall into the gaps; then let it reconnect.
        stop = threading.Event()

        def cut_off() -> None:
            while not stop.is_set():
                _terminate_listeners(schema, listening)
                stop.wait(0.02)

        assert await asyncio.to_thread(_terminate_listeners, schema, listening) == 1
        killer = threading.Thread(target=cut_off, daemon=True)
        killer.start()
        try:
            async with connect(writing, user) as writer:
                for _ in range(5):
                    await writer.append("INBOX")
                await writer.cmd('CREATE "during-the-gap"')
        finally:
            stop.set()
            await asyncio.to_thread(killer.join)

        await idler.expect(r"^\* 5 EXISTS")
        await notifier.expect_all(
            r'^\* LIST \(\) "/" "?during-the-gap"?', r'^\* STATUS "INBOX" \(MESSAGES 5 '
        )
    # What reached the clients came from a replay of the store, not only from live notifications.
    replays = re.findall(r'"PostgreSQL listener caught up".*?events=(\d+)', listening.log_text())
    assert len(replays) > replays_before and any(int(n) > 0 for n in replays[replays_before:])


# ---------------------------------------------------------------- limits across instances


async def test_connections_per_user_are_limited_across_instances(
    cluster: list[MsgstoreInstance], schema: PgSchema, instance_args: list[str], user: str
) -> None:
    a, b = cluster[0], cluster[1]
    with MessageStore(schema.url) as store:
        other = f"u{uuid.uuid4().hex[:10]}"
        store.add_user(other, "pw")

    async def login(inst: MsgstoreInstance, stack: contextlib.AsyncExitStack, name: str = user) -> RawImap:
        raw = await stack.enter_async_context(RawImap("127.0.0.1", inst.port, timeout_s=30))
        raw.greeting = (await raw.command(f"LOGIN {name} pw"))[-1]  # the LOGIN reply, for the asserts
        return raw

    async def login_soon(inst: MsgstoreInstance, stack: contextlib.AsyncExitStack) -> bytes:
        """A slot freed elsewhere is free once the other instance has recorded it (just after)."""
        for _ in range(100):
            reply = (await login(inst, stack)).greeting
            if b" OK" in reply:
                break
            await asyncio.sleep(0.1)
        return reply

    doomed = MsgstoreInstance(schema.url, name="limit-doomed", extra_args=instance_args).start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            # PER_USER connections, half on a, half on an instance about to die.
            on_a = [await login(a, stack) for _ in range(PER_USER // 2)]
            on_doomed = [await login(doomed, stack) for _ in range(PER_USER - PER_USER // 2)]
            assert all(b" OK" in c.greeting for c in on_a + on_doomed)
            # One more is refused on every instance, with [LIMIT]; other users are not affected.
            for inst in (a, b, doomed):
                refused = (await login(inst, stack)).greeting
                assert b" NO [LIMIT]" in refused, refused
            assert b" OK" in (await login(b, stack, other)).greeting

            # A LOGOUT on one instance frees a slot on another.
            await on_a[0].command("LOGOUT")
            assert b" OK" in await login_soon(b, stack)
            assert b" NO [LIMIT]" in (await login(a, stack)).greeting

            # The instance dies holding half of them: those stop counting at once.
            doomed.kill()
            for _ in range(len(on_doomed)):
                assert b" OK" in await login_soon(a, stack)
            assert b" NO [LIMIT]" in (await login(b, stack)).greeting

        # What the dead instance left in the table is cleared at the next start of any instance.
        with MessageStore(schema.url) as store:
            assert await SharedUserConnections(store, PER_USER).forget_dead_instances() >= 1
    finally:
        doomed.__exit__(None, None, None)


# ---------------------------------------------------------------- behind HAProxy


def test_the_shipped_haproxy_config_is_valid() -> None:
    assert "Configuration file is valid" in check_config(
        Path(__file__).parents[2] / "config/haproxy-msgstore.cfg"
    )


async def test_a_client_behind_haproxy_gets_pushes_and_reconnects_to_a_surviving_instance(
    cluster: list[MsgstoreInstance], schema: PgSchema, instance_args: list[str], user: str
) -> None:
    # Real HAProxy (private config, free port) in front of an instance that will die and a
    # survivor; `balance first` sends new clients to the first live one, so the phone lands on
    # the doomed instance first. The writer sits on a third instance, not behind the proxy.
    survivor, writing = cluster[0], cluster[1]
    doomed = MsgstoreInstance(schema.url, name="lb-doomed", extra_args=instance_args).start()
    try:
        with HaproxyFront([("127.0.0.1", doomed.port), ("127.0.0.1", survivor.port)], balance="first") as lb:
            async with connect(writing, user) as writer:
                async with RawImap(lb.host, lb.port, timeout_s=30) as raw:
                    await raw.login(user, "pw")
                    phone = Client(raw)
                    await phone.cmd("ENABLE QRESYNC")
                    sel = b"".join(await phone.cmd("SELECT INBOX"))
                    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", sel).group(1))  # type: ignore[union-attr]
                    known = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel).group(1))  # type: ignore[union-attr]
                    await raw.send(b"i1 IDLE\r\n")
                    await phone.expect(r"^\+ ")
                    first, _ = await writer.append("INBOX")
                    await phone.expect(r"^\* 1 EXISTS")  # pushed across instances, through HAProxy

                    doomed.kill()
                    await raw.read_all()  # its connection ends with the instance (or HAProxy cuts it)
                    missed = [(await writer.append("INBOX"))[0] for _ in range(2)]

                # The phone reconnects to the same address: HAProxy hands it to the survivor, where
                # QRESYNC brings what it missed, and pushes go on.
                async with RawImap(lb.host, lb.port, timeout_s=30) as raw:
                    await raw.login(user, "pw")
                    phone = Client(raw)
                    await phone.cmd("ENABLE QRESYNC")
                    lines = await phone.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {known}))")
                    fetched = {int(u) for u in re.findall(rb"\* \d+ FETCH \(.*?UID (\d+)", b"".join(lines))}
                    assert fetched == {first, *missed}, lines
                    await raw.send(b"i2 IDLE\r\n")
                    await phone.expect(r"^\+ ")
                    await writer.append("INBOX")
                    await phone.expect(r"^\* 4 EXISTS")
            # What an operator sees: HAProxy's health check marks the dead instance DOWN (at its
            # next check; the reconnect above may have come sooner, through `option redispatch`).
            for _ in range(100):
                if (states := lb.server_states()) == {"s0": "DOWN", "s1": "UP"}:
                    break
                await asyncio.sleep(0.1)
            assert states == {"s0": "DOWN", "s1": "UP"}
    finally:
        doomed.__exit__(None, None, None)


# ---------------------------------------------------------------- a change racing a new session


async def test_a_change_committed_while_a_session_sets_notify_on_another_instance_is_never_missed(
    cluster: list[MsgstoreInstance], user: str
) -> None:
    # A phone reconnecting does LOGIN, NOTIFY SET, then reads what changed; a MOVE on another
    # instance commits at a random moment around that. Whenever the read does not show the MOVE
    # yet, a pushed STATUS must follow (the gap a reconnecting client could otherwise fall into).
    reader_side, writer_side = cluster[0], cluster[1]
    rng = random.Random(14)
    read_before_move = 0
    async with connect(writer_side, user) as w:
        await w.cmd("CREATE src")
        await w.cmd("CREATE dst")
        for _ in range(40):
            await w.append("src")
            await w.cmd("SELECT src")

            async def move() -> None:
                await asyncio.sleep(rng.uniform(0, 0.03))
                await w.cmd("MOVE 1:* dst")

            async with connect(reader_side, user) as phone:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(move())
                    await phone.cmd(
                        "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) "
                        "(personal (MessageNew MessageExpunge FlagChange MailboxName))"
                    )
                    read = await phone.cmd("STATUS src (MESSAGES)")
                answer = [line for line in read if line.startswith(b"* STATUS")][-1]
                if b"MESSAGES 0)" not in answer:
                    read_before_move += 1
                    if not any(re.match(rb'\* STATUS "?src"? \(.*MESSAGES 0', line) for line in read):
                        await phone.expect(r'^\* STATUS "?src"? \(.*MESSAGES 0')
    assert read_before_move > 0, "the race never happened: the test showed nothing"
