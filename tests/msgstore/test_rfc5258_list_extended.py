"""RFC 5258 LIST-EXTENDED: pattern lists, SUBSCRIBED / RECURSIVEMATCH selection, SUBSCRIBED /
CHILDREN return options, \\NonExistent for subscribed names without a mailbox."""

from __future__ import annotations

from server_testlib import Client, Running, running_server

from cpmsync.imap import CapabilityData, ListData


async def _tree(c: Client) -> None:
    await c.login()
    for name in ("Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable/Broccoli", "Vegetable/Corn"):
        await c.cmd(f"CREATE {name}")
    for name in ("Fruit/Banana", "Vegetable", "Vegetable/Broccoli", "Gone"):
        await c.cmd(f"SUBSCRIBE {name}")


def _rows(lists: list[ListData]) -> list[tuple[str, tuple[str, ...]]]:
    return [(r.name, tuple(sorted(r.attributes))) for r in lists]


async def test_capability_advertised(srv: Running) -> None:
    async with srv.client() as c:
        assert "LIST-EXTENDED" in (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities


async def test_3_pattern_list(srv: Running) -> None:
    async with srv.client() as c:
        await _tree(c)
        reply = await c.cmd('LIST "" (Tofu "Fruit/%")')
        assert [r.name for r in reply.of(ListData)] == ["Fruit/Apple", "Fruit/Banana", "Tofu"]


async def test_3_1_subscribed_selection_includes_nonexistent(srv: Running) -> None:
    async with srv.client() as c:
        await _tree(c)
        reply = await c.cmd('LIST (SUBSCRIBED) "" *')
        assert _rows(reply.of(ListData)) == [
            ("Fruit/Banana", ("\\Subscribed",)),
            ("Gone", ("\\NonExistent", "\\Subscribed")),
            ("Vegetable", ("\\Subscribed",)),
            ("Vegetable/Broccoli", ("\\Subscribed",)),
        ]


async def test_3_4_return_children_and_subscribed(srv: Running) -> None:
    async with srv.client() as c:
        await _tree(c)
        reply = await c.cmd('LIST "" % RETURN (CHILDREN SUBSCRIBED)')
        assert _rows(reply.of(ListData)) == [
            ("INBOX", ("\\HasNoChildren",)),
            ("Fruit", ("\\HasChildren",)),
            ("Tofu", ("\\HasNoChildren",)),
            ("Vegetable", ("\\HasChildren", "\\Subscribed")),
        ]


async def test_3_5_recursivematch_childinfo(srv: Running) -> None:
    async with srv.client() as c:
        await _tree(c)
        reply = await c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
        rows = {r.name: (r.attributes, r.childinfo) for r in reply.of(ListData)}
        assert rows["Fruit"] == ((), ("SUBSCRIBED",))
        assert rows["Vegetable"] == (("\\Subscribed",), ("SUBSCRIBED",))
        assert "Tofu" not in rows


async def test_3_1_recursivematch_alone_is_bad(srv: Running) -> None:
    async with srv.session() as c:
        assert (await c.cmd('LIST (RECURSIVEMATCH) "" %')).status == "BAD"
        assert (await c.cmd('LIST (BOGUS) "" %')).status == "BAD"


async def test_list_extended_switched_off_refuses_selection() -> None:
    from server_testlib import make_settings

    async with running_server(make_settings(extensions={"list_extended": False})) as srv, srv.client() as c:
        await c.login()
        assert (await c.cmd('LIST (SUBSCRIBED) "" *')).status == "BAD"
        assert (await c.cmd('LIST "" * RETURN (STATUS (MESSAGES))')).ok  # LIST-STATUS stands alone


async def test_3_5_recursivematch_nonexistent_parent_of_subscribed_name(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd('SUBSCRIBE "Lost/child"')  # neither Lost nor Lost/child exists
        reply = await c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
        rows = {r.name: (r.attributes, r.childinfo) for r in reply.of(ListData)}
        assert rows["Lost"] == (("\\NonExistent",), ("SUBSCRIBED",))
        assert b'* LIST (\\NonExistent) "/" "Lost" ("CHILDINFO" ("SUBSCRIBED"))' in reply.raw


async def test_3_unknown_return_option_is_bad(srv: Running) -> None:
    async with srv.session() as c:
        assert (await c.cmd('LIST "" "" RETURN (imaptest)')).status == "BAD"
        assert (await c.cmd('LIST "" % RETURN (CHILDREN SUBSCRIBED)')).ok


async def test_3_5_no_childinfo_when_the_subscribed_child_is_listed_itself(srv: Running) -> None:
    # As Dovecot (imaptest `listext`): a parent earns CHILDINFO only for a subscribed descendant
    # the patterns do not list in its own right
    async with srv.client() as c:
        await _tree(c)
        reply = await c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" (Fruit Fruit/Banana)')
        assert _rows(reply.of(ListData)) == [("Fruit/Banana", ("\\Subscribed",))]
        reply = await c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" (Fruit)')
        assert [(r.name, r.childinfo) for r in reply.of(ListData)] == [("Fruit", ("SUBSCRIBED",))]
