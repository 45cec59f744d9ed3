"""RFC 5465 NOTIFY across two connections: selected-mailbox updates without IDLE, STATUS for
other mailboxes, LIST for mailbox-name and subscription changes, NOTIFY NONE."""

from __future__ import annotations

import pytest
from server_testlib import Running, message

from cpmsync.imap import ExistsData, FetchData, ListData, StatusData, StatusResponse


async def test_selected_messagenew_pushed_without_idle(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await a.cmd("SELECT INBOX")
        reply = await a.cmd("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
        assert reply.ok
        await b.append("INBOX", message(1))
        got = await a.wait_for(lambda r: isinstance(r, FetchData))
        assert isinstance(got[0], ExistsData) and got[0].count == 1
        assert got[-1].uid == 1


async def test_personal_status_for_other_mailboxes(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await b.cmd("CREATE chat")
        reply = await a.cmd("NOTIFY SET (personal (MessageNew MessageExpunge))")
        assert reply.ok
        await b.append("chat", message(1))
        st = (await a.wait_for(lambda r: isinstance(r, StatusData)))[-1]
        assert st.mailbox == "chat" and st.messages == 1 and st.uidnext == 2


async def test_status_indicator_sends_initial_status(srv: Running) -> None:
    async with srv.session() as a:
        await a.cmd("CREATE one")
        reply = await a.cmd("NOTIFY SET STATUS (mailboxes (one INBOX) (MessageNew MessageExpunge))")
        assert sorted(s.mailbox for s in reply.of(StatusData)) == ["INBOX", "one"]


@pytest.mark.parametrize(
    ("events", "items"),
    [
        ("MessageExpunge", ["MESSAGES"]),
        ("MessageNew", ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]),
        ("FlagChange", ["UIDVALIDITY", "HIGHESTMODSEQ"]),
    ],
)
async def test_one_message_event_alone_is_taken_and_chooses_the_status_items(
    srv: Running, events: str, items: list[str]
) -> None:
    # RFC 5465 5 asks for the three together; Dovecot takes each alone (imaptest `notify`)
    async with srv.session() as a:
        await a.cmd("CREATE one")
        await a.append("one", message(1))
        reply = await a.cmd(f"NOTIFY SET STATUS (mailboxes one ({events}))")
        assert reply.ok
        (st,) = reply.of(StatusData)
        assert st.mailbox == "one" and list(st.items) == items


async def test_mailboxname_and_subscription_events(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await a.cmd("NOTIFY SET (personal (MailboxName SubscriptionChange))")
        await b.cmd("CREATE fresh")
        r = (await a.wait_for(lambda r: isinstance(r, ListData)))[-1]
        assert r.name == "fresh" and "\\NonExistent" not in r.attributes
        await b.cmd("RENAME fresh renamed")
        r = (await a.wait_for(lambda r: isinstance(r, ListData)))[-1]
        assert r.name == "renamed" and r.oldname == "fresh"
        await b.cmd("SUBSCRIBE renamed")
        r = (await a.wait_for(lambda r: isinstance(r, ListData)))[-1]
        assert r.name == "renamed" and "\\Subscribed" in r.attributes
        await b.cmd("DELETE renamed")
        r = (await a.wait_for(lambda r: isinstance(r, ListData)))[-1]
        assert r.name == "renamed" and "\\NonExistent" in r.attributes


async def test_subtree_and_mailboxes_filters_limit_events(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        for name in ("work", "work/x", "home"):
            await b.cmd(f"CREATE {name}")
        await a.cmd("NOTIFY SET (subtree work (MessageNew MessageExpunge))")
        await b.append("home", message(1))
        await b.append("work/x", message(1))
        st = (await a.wait_for(lambda r: isinstance(r, StatusData)))[-1]
        assert st.mailbox == "work/x"


async def test_subscribed_filter(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await b.cmd("CREATE s1")
        await b.cmd("CREATE s2")
        await b.cmd("SUBSCRIBE s2")
        await a.cmd("NOTIFY SET (subscribed (MessageNew MessageExpunge))")
        await b.append("s1", message(1))
        await b.append("s2", message(1))
        st = (await a.wait_for(lambda r: isinstance(r, StatusData)))[-1]
        assert st.mailbox == "s2"


async def test_subscribed_filter_knows_subscriptions_made_before_login(srv: Running) -> None:
    """The `subscribed` filter of a session that logs in later covers what was subscribed before
    (read at LOGIN), and only that."""
    async with srv.client() as b:
        await b.login()
        for name in ("s1", "s2", "s3"):
            await b.cmd(f"CREATE {name}")
        await b.cmd("SUBSCRIBE s2")
        await b.cmd("SUBSCRIBE s3")
        await b.cmd("UNSUBSCRIBE s3")
        async with srv.client() as a:
            await a.login()
            await a.cmd("NOTIFY SET (subscribed (MessageNew MessageExpunge))")
            for name in ("s1", "s3", "s2"):
                await b.append(name, message(1))
            st = (await a.wait_for(lambda r: isinstance(r, StatusData)))[-1]
            reply = await a.cmd("NOOP")
            assert [r.mailbox for r in reply.of(StatusData)] + [st.mailbox] == ["s2"]


async def test_notify_none_stops_pushes(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await a.cmd("NOTIFY SET (personal (MessageNew MessageExpunge))")
        assert (await a.cmd("NOTIFY NONE")).ok
        await b.append("INBOX", message(1))
        reply = await a.cmd("NOOP")
        assert reply.of(StatusData) == []


async def test_unknown_event_is_badevent(srv: Running) -> None:
    async with srv.session() as a:
        reply = await a.cmd("NOTIFY SET (personal (AnnotationChange))")
        assert reply.status == "NO" and reply.tagged.code and reply.tagged.code.name == "BADEVENT"
        assert (await a.cmd("NOOP")).ok


async def test_own_changes_are_not_echoed(srv: Running) -> None:
    async with srv.session() as a:
        await a.cmd("CREATE mine")
        await a.cmd("NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
        reply = await a.append("mine", message(1))
        assert reply.ok and reply.of(StatusData) == []
        reply = await a.cmd("CREATE mine2")
        assert not any(isinstance(r, ListData) for r in reply.untagged)
        assert all(not isinstance(r, StatusResponse) or r.tag for r in reply.untagged)


async def test_selected_delayed_holds_expunges_until_a_command(srv: Running) -> None:
    from cpmsync.imap import ExpungeData

    async with srv.session() as a, srv.session() as b:
        for i in range(2):
            await b.append("INBOX", message(i))
        await a.cmd("SELECT INBOX")
        await a.cmd("NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange))")
        await b.cmd("SELECT INBOX")
        await b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        await b.cmd("EXPUNGE")
        await b.append("INBOX", message(3))
        got = await a.wait_for(lambda r: isinstance(r, ExistsData))  # new mail comes at once
        assert not any(isinstance(r, ExpungeData) for r in got)
        reply = await a.cmd("NOOP")  # the expunge waits for a command that allows it
        assert [e.seq for e in reply.of(ExpungeData)] == [1]


async def test_selected_filter_without_flagchange_defers_flags_to_next_command(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await b.append("INBOX", message(1))
        await a.cmd("SELECT INBOX")
        await a.cmd("NOTIFY SET (selected (MessageNew MessageExpunge))")
        await b.cmd("SELECT INBOX")
        await b.cmd("STORE 1 +FLAGS (\\Flagged)")
        await b.append("INBOX", message(2))
        got = await a.wait_for(lambda r: isinstance(r, ExistsData))
        assert not any(isinstance(r, FetchData) for r in got)  # flag change not pushed
        reply = await a.cmd("NOOP")  # but told at the next command, as RFC 3501 does
        assert [f.seq for f in reply.of(FetchData)] == [1]


async def test_bad_messagenew_fetch_attribute_is_refused_at_set(srv: Running) -> None:
    async with srv.session() as a:
        await a.cmd("SELECT INBOX")
        assert (await a.cmd("NOTIFY SET (selected (MessageNew (UID BOGUS) MessageExpunge))")).status == "BAD"
        reply = await a.append("INBOX", message(1))  # nothing half-configured breaks the APPEND
        assert reply.ok
