"""RFC 5819 LIST-STATUS: one STATUS after each LIST line, items in the order asked; one query
for any number of mailboxes (checked over 2,000 mailboxes, bulk-loaded)."""

from __future__ import annotations

from server_testlib import Running, message

from cpmsync.imap import ListData, StatusData
from cpmsync.msgstore import BulkMailbox, BulkMessage


async def test_list_status_pairs_and_item_order(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("CREATE a")
        await c.append("a", message(1), "\\Seen")
        await c.append("a", message(2))
        reply = await c.cmd('LIST "" * RETURN (STATUS (UNSEEN MESSAGES UIDNEXT HIGHESTMODSEQ MAILBOXID))')
        kinds = [type(r).__name__ for r in reply.untagged]
        assert kinds == ["ListData", "StatusData", "ListData", "StatusData"]
        st = next(s for s in reply.of(StatusData) if s.mailbox == "a")
        assert list(st.items) == ["UNSEEN", "MESSAGES", "UIDNEXT", "HIGHESTMODSEQ", "MAILBOXID"]
        assert (st.unseen, st.messages, st.uidnext) == (1, 2, 3)


async def test_no_status_for_nonexistent_subscribed_names(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("SUBSCRIBE ghost")
        reply = await c.cmd('LIST (SUBSCRIBED) "" * RETURN (STATUS (MESSAGES))')
        assert [r.name for r in reply.of(ListData)] == ["ghost"] and reply.of(StatusData) == []


async def test_bad_status_item_is_bad(srv: Running) -> None:
    async with srv.session() as c:
        assert (await c.cmd('LIST "" * RETURN (STATUS (FOO))')).status == "BAD"


async def test_list_status_over_many_mailboxes(srv: Running) -> None:
    n = 2000
    srv.store.bulk_load(
        "alice",
        [BulkMailbox(f"tel:+1514{i:07}", [BulkMessage(message(i), ("\\Seen",), None)]) for i in range(n)],
    )
    async with srv.session() as c:
        reply = await c.cmd('LIST "" * RETURN (STATUS (MESSAGES UIDNEXT HIGHESTMODSEQ))')
        assert len(reply.of(ListData)) == n + 1 and len(reply.of(StatusData)) == n + 1
        assert all(s.messages == 1 for s in reply.of(StatusData) if s.mailbox != "INBOX")
