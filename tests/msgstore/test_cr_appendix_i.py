"""OMA CPM CR Appendix I (LIST-CHANGEDSINCE) over the wire; clause numbers in the test names.

Example mailbox names are the CR's own. The final test is the property the issue asks for: after
any sequence of changes, LIST (CHANGEDSINCE (m)) lists exactly the mailboxes whose STATUS
HIGHESTMODSEQ is above m (NOMODSEQ ones never), for every m.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_testlib import Client, Running, ThreadServer, make_settings, message, running_server

from cpmsync.imap import CapabilityData, ListData, StatusData
from cpmsync.msgstore import MsgstoreSettings

CR_NAMES = [
    "Default",
    "tel:15143457900",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2",
    "a81d4fae-7dec-11d0-a765-00a0c91e6bf1/afed4fae-3dec-11d0-a765-00a0c91a3bf5",
    "tel:+15145550000",
]


async def _setup(c: Client) -> int:
    """CR-like folders with a message each; returns the MODSEQ a client would have synced to."""
    await c.login()
    for name in CR_NAMES:
        assert (await c.cmd(f'CREATE "{name}"')).ok
        assert (await c.append(name, message())).ok
    return await _highest(c)


async def _highest(c: Client) -> int:
    reply = await c.cmd('LIST "" * RETURN (STATUS (HIGHESTMODSEQ))')
    return max(s.highestmodseq for s in reply.of(StatusData))


async def test_I_2_capability_advertised_with_condstore(srv: Running) -> None:
    async with srv.client() as c:
        caps = {x.upper() for x in (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities}
        assert {"LIST-CHANGEDSINCE", "CONDSTORE"} <= caps


def test_I_2_never_advertised_without_condstore() -> None:
    with pytest.raises(ValueError, match="condstore"):
        MsgstoreSettings(extensions={"condstore": False, "list_changedsince": True})


def _legacy() -> MsgstoreSettings:
    base = make_settings()
    return MsgstoreSettings.legacy(server=base.server.model_dump(), limits=base.limits.model_dump())


async def test_I_2_legacy_server_does_not_advertise_and_refuses_changedsince() -> None:
    async with running_server(_legacy()) as srv:
        async with srv.session() as c:
            caps = {x.upper() for x in (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities}
            assert "LIST-CHANGEDSINCE" not in caps and "CONDSTORE" not in caps
            assert (await c.cmd('LIST (CHANGEDSINCE (1)) "" *')).status == "BAD"


async def test_I_4_example_1_only_changed_mailboxes(srv: Running) -> None:
    async with srv.client() as c:
        m = await _setup(c)
        await c.append("Default", message(2))
        await c.append("tel:15143457900", message(2))
        await c.cmd('SELECT "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2"')
        await c.cmd("STORE 1 +FLAGS (\\Seen)")
        await c.cmd("UNSELECT")
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')
        assert reply.ok
        assert [r.name for r in reply.of(ListData)] == [
            "Default",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2",
            "tel:15143457900",
        ]
        assert b'* LIST () "/" "Default"\r\n' in reply.raw


async def test_I_4_example_2_list_then_status_per_mailbox(srv: Running) -> None:
    async with srv.client() as c:
        m = await _setup(c)
        for name in ("Default", "tel:15143457900"):
            await c.append(name, message(3))
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" * RETURN (STATUS (UIDNEXT HIGHESTMODSEQ))')
        kinds = [(type(r).__name__, getattr(r, "name", getattr(r, "mailbox", None))) for r in reply.untagged]
        assert kinds == [
            ("ListData", "Default"),
            ("StatusData", "Default"),
            ("ListData", "tel:15143457900"),
            ("StatusData", "tel:15143457900"),
        ]
        for s in reply.of(StatusData):
            assert s.uidnext == 3 and s.highestmodseq > m and list(s.items) == ["UIDNEXT", "HIGHESTMODSEQ"]
        assert b'* STATUS "Default" (UIDNEXT 3 HIGHESTMODSEQ ' in reply.raw


async def test_I_4_pattern_and_reference_restrict_the_result(srv: Running) -> None:
    async with srv.client() as c:
        m = await _setup(c)
        for name in CR_NAMES:
            await c.append(name, message(4))
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" tel:*')
        assert [r.name for r in reply.of(ListData)] == ["tel:+15145550000", "tel:15143457900"]
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" (Default "tel:+*")')
        assert [r.name for r in reply.of(ListData)] == ["Default", "tel:+15145550000"]
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" %')
        assert "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2" not in [
            r.name for r in reply.of(ListData)
        ]


async def test_I_4_combines_with_subscribed_selection(srv: Running) -> None:
    async with srv.client() as c:
        m = await _setup(c)
        await c.cmd("SUBSCRIBE Default")
        await c.append("Default", message(5))
        await c.append("tel:15143457900", message(5))
        reply = await c.cmd(f'LIST (SUBSCRIBED CHANGEDSINCE ({m})) "" *')
        lists = reply.of(ListData)
        assert [r.name for r in lists] == ["Default"] and "\\Subscribed" in lists[0].attributes


async def test_I_3_1a_expunge_only_mailbox_is_listed(srv: Running) -> None:
    async with srv.client() as c:
        await _setup(c)
        await c.cmd("SELECT Default")
        await c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        m = await _highest(c)
        await c.cmd("EXPUNGE")
        await c.cmd("UNSELECT")
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')
        assert [r.name for r in reply.of(ListData)] == ["Default"]


async def test_I_3_modseqs_unique_across_mailboxes(srv: Running) -> None:
    async with srv.client() as c:
        await _setup(c)
        reply = await c.cmd('LIST "" * RETURN (STATUS (HIGHESTMODSEQ))')
        values = [s.highestmodseq for s in reply.of(StatusData)]
        assert len(values) == len(set(values))


async def test_I_5_nomodseq_mailbox_never_listed(srv: Running) -> None:
    async with srv.client() as c:
        await _setup(c)
        srv.store.set_nomodseq("alice", "Default", True)
        reply = await c.cmd("SELECT Default")
        assert any(r.code and r.code.name == "NOMODSEQ" for r in reply.untagged if hasattr(r, "code"))
        await c.cmd("UNSELECT")
        await c.append("Default", message(6))
        for m in (0, 1, 5):
            reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')
            assert "Default" not in [r.name for r in reply.of(ListData)]


@pytest.mark.parametrize(
    "arg",
    [
        "(CHANGEDSINCE)",
        "(CHANGEDSINCE ())",
        "(CHANGEDSINCE (abc))",
        "(CHANGEDSINCE (-1))",
        "(CHANGEDSINCE 5)",
    ],
)
async def test_I_6_missing_empty_or_non_numeric_argument_is_bad(srv: Running, arg: str) -> None:
    async with srv.session() as c:
        reply = await c.cmd(f'LIST {arg} "" *')
        assert reply.status == "BAD"
        assert (await c.cmd("NOOP")).ok  # connection still usable


async def test_extension_deleted_mailbox_listed_once_as_nonexistent(srv: Running) -> None:
    async with srv.client() as c:
        m = await _setup(c)
        await c.cmd('DELETE "tel:+15145550000"')
        lists = (await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')).of(ListData)
        assert [(r.name, r.attributes) for r in lists] == [("tel:+15145550000", ("\\NonExistent",))]
        m2 = await _highest(c)
        assert (await c.cmd(f'LIST (CHANGEDSINCE ({max(m2, m + 1)})) "" *')).of(ListData) == []


async def test_extension_renamed_mailbox_carries_oldname(srv: Running) -> None:
    async with srv.client() as c:
        m = await _setup(c)
        await c.cmd('RENAME "tel:+15145550000" "tel:+15145550001"')
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')
        assert [(r.name, r.oldname) for r in reply.of(ListData)] == [("tel:+15145550001", "tel:+15145550000")]
        assert b'* LIST () "/" "tel:+15145550001" ("OLDNAME" ("tel:+15145550000"))\r\n' in reply.raw


async def test_extension_off_is_strict_cr() -> None:
    strict = make_settings(extensions={"changedsince_deletions_and_renames": False})
    async with running_server(strict) as srv, srv.client() as c:
        m = await _setup(c)
        await c.cmd('DELETE "tel:+15145550000"')
        await c.cmd('RENAME "Default" "Default2"')
        names = [
            (r.name, r.attributes, r.oldname)
            for r in (await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')).of(ListData)
        ]
        assert names == [("Default2", (), None)]


# ---------------------------------------------------------------- the property

_OPS = st.lists(
    st.tuples(
        st.sampled_from(["create", "append", "flag", "expunge", "delete", "rename", "nomodseq", "subscribe"]),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=14,
)


async def _apply(c: Client, srv: ThreadServer, user: str, ops: list[tuple[str, int]]) -> None:
    for op, i in ops:
        name = f"f{i}" if i % 2 else f"g/f{i}"
        if op == "create":
            await c.cmd(f'CREATE "{name}"')
        elif op == "append":
            await c.append(name, message(i))
        elif op == "flag":
            if (await c.cmd(f'SELECT "{name}"')).ok:
                await c.cmd("STORE 1:* +FLAGS (\\Flagged)")
                await c.cmd("UNSELECT")
        elif op == "expunge":
            if (await c.cmd(f'SELECT "{name}"')).ok:
                await c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
                await c.cmd("CLOSE")
        elif op == "delete":
            await c.cmd(f'DELETE "{name}"')
        elif op == "rename":
            await c.cmd(f'RENAME "{name}" "r{i}"')
        elif op == "nomodseq":
            try:
                await asyncio.to_thread(srv.store.set_nomodseq, user, name, True)
            except Exception:
                pass
        elif op == "subscribe":
            await c.cmd(f'SUBSCRIBE "{name}"')


@pytest.fixture(scope="module")
def thread_server() -> ThreadServer:
    with ThreadServer(users={}) as s:
        yield s


_counter = iter(range(10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_OPS, after=_OPS)
def test_I_4_property_changedsince_equals_status_highestmodseq_above_m(
    thread_server: ThreadServer, before: list[tuple[str, int]], after: list[tuple[str, int]]
) -> None:
    user = f"u{next(_counter)}"
    thread_server.store.add_user(user, "pw")

    async def scenario() -> None:
        async with Client("127.0.0.1", thread_server.port) as c:
            await c.cmd(f"LOGIN {user} pw")
            await _apply(c, thread_server, user, before)
            await _apply(c, thread_server, user, after)
            reply = await c.cmd('LIST "" * RETURN (STATUS (HIGHESTMODSEQ))')
            status = {s.mailbox: s.highestmodseq for s in reply.of(StatusData)}
            top = await asyncio.to_thread(thread_server.store.user_highest_modseq, user)
            for m in range(0, top + 2):
                listed = (await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" *')).of(ListData)
                existing = {r.name for r in listed if "\\NonExistent" not in r.attributes}
                expected = {name for name, hm in status.items() if hm > m}  # NOMODSEQ shows 0
                assert existing == expected, (m, existing, expected)

    asyncio.run(scenario())


async def test_I_2_works_without_list_extended_advertised() -> None:
    settings_ = make_settings(extensions={"list_extended": False})
    async with running_server(settings_) as srv, srv.client() as c:
        m = await _setup(c)
        caps = {x.upper() for x in (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities}
        assert "LIST-EXTENDED" not in caps and "LIST-CHANGEDSINCE" in caps
        await c.append("Default", message(9))
        reply = await c.cmd(f'LIST (CHANGEDSINCE ({m})) "" * RETURN (STATUS (UIDNEXT HIGHESTMODSEQ))')
        assert reply.ok and [r.name for r in reply.of(ListData)] == ["Default"]
        assert (await c.cmd('LIST (SUBSCRIBED) "" *')).status == "BAD"
