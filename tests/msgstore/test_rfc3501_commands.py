"""RFC 3501 over the wire against the in-process server: one test per behaviour the RFC states."""

from __future__ import annotations

from server_testlib import Running, message

from cpmsync.imap import (
    CapabilityData,
    ExistsData,
    ExpungeData,
    FetchData,
    FlagsData,
    ListData,
    NamespaceData,
    SearchData,
    StatusData,
    StatusResponse,
)


async def test_6_1_1_capability_before_and_after_login(srv: Running) -> None:
    async with srv.client() as c:
        caps = (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities
        assert "IMAP4rev1" in caps and "AUTH=PLAIN" in caps and "LIST-CHANGEDSINCE" in caps
        reply = await c.login()
        assert reply.tagged.code is not None and reply.tagged.code.name == "CAPABILITY"
        caps2 = (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities
        assert "AUTH=PLAIN" not in caps2


async def test_6_1_2_noop_and_6_1_3_logout(srv: Running) -> None:
    async with srv.client() as c:
        assert (await c.cmd("NOOP")).ok
        reply = await c.cmd("LOGOUT")
        assert reply.ok and any(isinstance(r, StatusResponse) and r.status == "BYE" for r in reply.untagged)


async def test_6_2_3_login_wrong_password_is_no(srv: Running) -> None:
    async with srv.client() as c:
        reply = await c.cmd('LOGIN alice "wrong"')
        assert reply.status == "NO" and reply.tagged.code and reply.tagged.code.name == "AUTHENTICATIONFAILED"
        assert (await c.cmd('LIST "" *')).status == "BAD"  # still not authenticated
        await c.login()


async def test_6_2_2_authenticate_plain_with_and_without_initial_response(srv: Running) -> None:
    import base64

    token = base64.b64encode(b"\0alice\0alice-pw").decode()
    async with srv.client() as c:
        assert (await c.cmd(f"AUTHENTICATE PLAIN {token}")).ok
    async with srv.client() as c:
        await c.send(b"x1 AUTHENTICATE PLAIN\r\n")
        cont = await c.next_response()
        assert type(cont).__name__ == "ContinuationRequest"
        await c.send(token.encode() + b"\r\n")
        done = await c.next_response()
        assert isinstance(done, StatusResponse) and done.tag == "x1" and done.status == "OK"


async def test_users_are_isolated(srv: Running) -> None:
    async with srv.client() as a, srv.client() as b:
        await a.login("alice")
        await b.login("bob")
        assert (await a.cmd("CREATE alice-only")).ok
        names = [r.name for r in (await b.cmd('LIST "" *')).of(ListData)]
        assert "alice-only" not in names
        assert (await b.cmd("SELECT alice-only")).status == "NO"


async def test_6_3_1_select_reports_flags_exists_uidvalidity_uidnext(srv: Running) -> None:
    async with srv.session() as c:
        for i in range(3):
            assert (await c.append("INBOX", message(i))).ok
        reply = await c.cmd("SELECT INBOX")
        assert reply.ok and reply.tagged.code and reply.tagged.code.name == "READ-WRITE"
        assert reply.of(ExistsData)[0].count == 3
        assert "\\Seen" in reply.of(FlagsData)[0].flags
        codes = {r.code.name: r.code.value for r in reply.of(StatusResponse) if r.code}
        assert codes["UIDNEXT"] == 4 and "UIDVALIDITY" in codes and "PERMANENTFLAGS" in codes


async def test_6_3_2_examine_is_read_only(srv: Running) -> None:
    async with srv.session() as c:
        await c.append("INBOX", message())
        reply = await c.cmd("EXAMINE INBOX")
        assert reply.tagged.code and reply.tagged.code.name == "READ-ONLY"
        assert (await c.cmd("STORE 1 +FLAGS (\\Seen)")).status == "NO"
        await c.cmd("FETCH 1 BODY[]")  # does not set \Seen on a read-only mailbox
        flags = (await c.cmd("FETCH 1 FLAGS")).of(FetchData)[0].flags
        assert "\\Seen" not in flags


async def test_6_3_3_to_6_3_5_create_delete_rename(srv: Running) -> None:
    async with srv.session() as c:
        assert (await c.cmd("CREATE a/b/c")).ok
        assert (await c.cmd("CREATE a")).status == "NO"
        assert (await c.cmd("RENAME a x")).ok
        names = [r.name for r in (await c.cmd('LIST "" *')).of(ListData)]
        assert names == ["INBOX", "x", "x/b", "x/b/c"]
        assert (await c.cmd("DELETE x/b/c")).ok
        assert (await c.cmd("DELETE nosuch")).status == "NO"
        assert (await c.cmd("DELETE INBOX")).status == "NO"


async def test_6_3_6_subscribe_and_6_3_9_lsub(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("CREATE news")
        assert (await c.cmd("SUBSCRIBE news")).ok
        lsub = (await c.cmd('LSUB "" *')).of(ListData)
        assert [(r.name, r.lsub) for r in lsub] == [("news", True)]
        assert (await c.cmd("UNSUBSCRIBE news")).ok
        assert (await c.cmd('LSUB "" *')).of(ListData) == []


async def test_6_3_8_list_delimiter_query_and_percent(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("CREATE p/q")
        root = (await c.cmd('LIST "" ""')).of(ListData)
        assert root[0].delimiter == "/" and root[0].name == "" and "\\Noselect" in root[0].attributes
        assert [r.name for r in (await c.cmd('LIST "" %')).of(ListData)] == ["INBOX", "p"]
        assert [r.name for r in (await c.cmd('LIST "p/" %')).of(ListData)] == ["p/q"]


async def test_6_3_10_status(srv: Running) -> None:
    async with srv.session() as c:
        await c.append("INBOX", message(1), "\\Seen")
        await c.append("INBOX", message(2))
        st = (await c.cmd("STATUS INBOX (MESSAGES UIDNEXT UNSEEN RECENT UIDVALIDITY)")).of(StatusData)[0]
        assert (st.messages, st.uidnext, st.unseen) == (2, 3, 1)
        assert (await c.cmd("STATUS INBOX (BOGUS)")).status == "BAD"
        assert (await c.cmd("STATUS nosuch (MESSAGES)")).status == "NO"


async def test_6_3_11_append_with_flags_and_date_and_missing_mailbox(srv: Running) -> None:
    async with srv.session() as c:
        reply = await c.cmd('APPEND INBOX (\\Flagged) "14-Jul-2024 02:44:25 -0700"', literal=message())
        assert reply.ok
        reply = await c.append("nosuch", message())
        assert reply.status == "NO" and reply.tagged.code and reply.tagged.code.name == "TRYCREATE"
        await c.cmd("SELECT INBOX")
        f = (await c.cmd("FETCH 1 (FLAGS INTERNALDATE)")).of(FetchData)[0]
        assert "\\Flagged" in f.flags
        assert f.internaldate.utcoffset().total_seconds() == -7 * 3600


async def test_6_4_2_close_expunges_deleted_silently(srv: Running) -> None:
    async with srv.session() as c:
        for i in range(3):
            await c.append("INBOX", message(i))
        await c.cmd("SELECT INBOX")
        await c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
        reply = await c.cmd("CLOSE")
        assert reply.ok and not reply.of(ExpungeData)
        st = (await c.cmd("STATUS INBOX (MESSAGES)")).of(StatusData)[0]
        assert st.messages == 2
        assert (await c.cmd("FETCH 1 FLAGS")).status == "BAD"  # no longer selected


async def test_6_4_3_expunge_sends_descending_safe_sequence_numbers(srv: Running) -> None:
    async with srv.session() as c:
        for i in range(5):
            await c.append("INBOX", message(i))
        await c.cmd("SELECT INBOX")
        await c.cmd("STORE 2,4 +FLAGS (\\Deleted)")
        reply = await c.cmd("EXPUNGE")
        assert [e.seq for e in reply.of(ExpungeData)] == [4, 2]
        uids = [f.uid for f in (await c.cmd("FETCH 1:* UID")).of(FetchData)]
        assert uids == [1, 3, 5]


async def test_6_4_4_search(srv: Running) -> None:
    async with srv.session() as c:
        await c.append("INBOX", message(1, subject="lunch plans"), "\\Seen")
        await c.append("INBOX", message(2, subject="dinner"), "\\Flagged")
        await c.append("INBOX", message(3, subject="Lunch again", body="pizza"))
        await c.cmd("SELECT INBOX")

        async def ids(q: str) -> tuple[int, ...]:
            return (await c.cmd(f"SEARCH {q}")).of(SearchData)[0].ids

        assert await ids("ALL") == (1, 2, 3)
        assert await ids("SEEN") == (1,)
        assert await ids("UNSEEN") == (2, 3)
        assert await ids("SUBJECT lunch") == (1, 3)
        assert await ids("OR FLAGGED SEEN") == (1, 2)
        assert await ids("NOT SUBJECT lunch") == (2,)
        assert await ids("BODY pizza") == (3,)
        assert await ids("2:3 UNFLAGGED") == (3,)
        assert await ids("LARGER 10 SMALLER 100000") == (1, 2, 3)
        assert await ids("SINCE 1-Jan-2000") == (1, 2, 3)
        assert await ids("HEADER Message-ID m2") == (2,)
        assert (await c.cmd("UID SEARCH UID 2:*")).of(SearchData)[0].ids == (2, 3)
        assert (await c.cmd("SEARCH NOSUCHKEY")).status == "BAD"


async def test_6_4_5_fetch_items(srv: Running) -> None:
    mime = (
        b"From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
        b"--XX\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--XX--\r\n"
    )
    async with srv.session() as c:
        await c.append("INBOX", mime)
        await c.cmd("SELECT INBOX")
        f = (await c.cmd("FETCH 1 (ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[1] BODY.PEEK[2.MIME])")).of(
            FetchData
        )[0]
        assert f.envelope.subject == "parts"
        assert f.size == len(mime)
        assert f.body("1") == b"first part"
        assert f.body("2.MIME") == b"Content-Type: text/html\r\n\r\n"
        bs = f.items["BODYSTRUCTURE"]
        assert bs[-4] == b"MIXED" or b"MIXED" in bs
        f = (await c.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.4>)")).of(FetchData)[0]
        assert f.body("HEADER.FIELDS (SUBJECT)") == b"Subject: parts\r\n\r\n"
        assert f.body("", 0) == b"From"
        assert "\\Seen" not in (await c.cmd("FETCH 1 FLAGS")).of(FetchData)[0].flags
        f = (await c.cmd("FETCH 1 BODY[TEXT]")).of(FetchData)[0]
        assert "\\Seen" in f.flags  # non-peek fetch sets \Seen and reports it
        assert (await c.cmd("FETCH 1 (NOSUCHITEM)")).status == "BAD"
        assert (await c.cmd("FETCH 9 FLAGS")).status == "BAD"


async def test_6_4_6_store_modes(srv: Running) -> None:
    async with srv.session() as c:
        await c.append("INBOX", message())
        await c.cmd("SELECT INBOX")
        f = (await c.cmd("STORE 1 +FLAGS (\\Flagged $Label)")).of(FetchData)[0]
        assert {"\\Flagged", "$Label"} <= set(f.flags)
        f = (await c.cmd("STORE 1 -FLAGS ($Label)")).of(FetchData)[0]
        assert "$Label" not in f.flags
        f = (await c.cmd("STORE 1 FLAGS (\\Answered)")).of(FetchData)[0]
        assert "\\Answered" in f.flags and "\\Flagged" not in f.flags
        assert (await c.cmd("STORE 1 +FLAGS.SILENT (\\Seen)")).of(FetchData) == []


async def test_6_4_7_copy_and_uidplus_copyuid(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("CREATE archive")
        for i in range(3):
            await c.append("INBOX", message(i))
        await c.cmd("SELECT INBOX")
        reply = await c.cmd("COPY 1:2 archive")
        assert reply.ok and reply.tagged.code and reply.tagged.code.name == "COPYUID"
        assert str(reply.tagged.code.value.dest) == "1:2"
        bad = await c.cmd("COPY 1 nosuch")
        assert bad.status == "NO" and bad.tagged.code and bad.tagged.code.name == "TRYCREATE"
        assert (await c.cmd("STATUS archive (MESSAGES)")).of(StatusData)[0].messages == 2


async def test_6_4_8_uid_commands(srv: Running) -> None:
    async with srv.session() as c:
        for i in range(3):
            await c.append("INBOX", message(i))
        await c.cmd("SELECT INBOX")
        f = (await c.cmd("UID FETCH 2:* FLAGS")).of(FetchData)
        assert [(x.seq, x.uid) for x in f] == [(2, 2), (3, 3)]
        f = (await c.cmd("UID STORE 3 +FLAGS (\\Deleted)")).of(FetchData)
        assert f[0].uid == 3
        reply = await c.cmd("UID EXPUNGE 3")
        assert [e.seq for e in reply.of(ExpungeData)] == [3]


async def test_namespace_id_enable_unselect_check(srv: Running) -> None:
    async with srv.session() as c:
        ns = (await c.cmd("NAMESPACE")).of(NamespaceData)[0]
        assert ns.personal[0].delimiter == "/"
        assert (await c.cmd('ID ("name" "test")')).ok
        assert (await c.cmd("ENABLE CONDSTORE")).ok
        await c.cmd("SELECT INBOX")
        assert (await c.cmd("CHECK")).ok
        assert (await c.cmd("UNSELECT")).ok
        assert (await c.cmd("CHECK")).status == "BAD"


async def test_move_sends_copyuid_then_expunge(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("CREATE dst")
        for i in range(3):
            await c.append("INBOX", message(i))
        await c.cmd("SELECT INBOX")
        reply = await c.cmd("MOVE 2 dst")
        assert reply.ok
        codes = [r.code.name for r in reply.of(StatusResponse) if r.code]
        assert codes == ["COPYUID"]
        assert [e.seq for e in reply.of(ExpungeData)] == [2]
        reply = await c.cmd("UID MOVE 3 dst")
        assert [e.seq for e in reply.of(ExpungeData)] == [2]
        assert (await c.cmd("STATUS dst (MESSAGES)")).of(StatusData)[0].messages == 2


async def test_bad_command_keeps_connection_usable(srv: Running) -> None:
    async with srv.client() as c:
        for junk in ("FROBNICATE", "LOGIN", "SELECT", 'LIST "" ((('):
            assert (await c.cmd(junk)).status == "BAD"
        await c.login()
        assert (await c.cmd("FETCH 1 FLAGS")).status == "BAD"  # not selected
        assert (await c.cmd("NOOP")).ok


async def test_search_return_esearch_form(srv: Running) -> None:
    from cpmsync.imap import ESearchData

    async with srv.session() as c:
        for i in range(4):
            await c.append("INBOX", message(i), "\\Seen" if i % 2 else "")
        await c.cmd("SELECT INBOX")
        es = (await c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) SEEN")).of(ESearchData)[0]
        assert (es.min, es.max, es.count, str(es.all)) == (2, 4, 2, "2,4")
        es = (await c.cmd("UID SEARCH RETURN (COUNT) UNSEEN")).of(ESearchData)[0]
        assert es.uid and es.count == 2


async def test_6_3_1_failed_select_leaves_no_mailbox_selected(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("SELECT INBOX")
        assert (await c.cmd("SELECT nosuch")).status == "NO"
        assert (await c.cmd("FETCH 1:* FLAGS")).status == "BAD"


async def test_6_3_11_append_to_selected_mailbox_reports_exists(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("SELECT INBOX")
        reply = await c.append("INBOX", message(1))
        assert reply.ok and reply.of(ExistsData)[0].count == 1
        assert reply.tagged.code and reply.tagged.code.name == "APPENDUID"


async def test_6_3_1_unseen_code_names_first_unseen_sequence_number(srv: Running) -> None:
    async with srv.session() as c:
        await c.append("INBOX", message(1), "\\Seen")
        await c.append("INBOX", message(2))
        await c.append("INBOX", message(3))
        reply = await c.cmd("SELECT INBOX")
        codes = {r.code.name: r.code.value for r in reply.of(StatusResponse) if r.code}
        assert codes["UNSEEN"] == 2


async def test_6_3_9_lsub_percent_names_unsubscribed_parent_as_noselect(srv: Running) -> None:
    async with srv.session() as c:
        await c.cmd("CREATE foo/bar")
        await c.cmd("SUBSCRIBE foo/bar")
        rows = [(r.name, r.attributes) for r in (await c.cmd('LSUB "" %')).of(ListData)]
        assert rows == [("foo", ("\\Noselect",))]
        rows = [(r.name, r.attributes) for r in (await c.cmd('LSUB "" *')).of(ListData)]
        assert rows == [("foo/bar", ())]


async def test_5_1_3_international_mailbox_names_in_modified_utf7(srv: Running) -> None:
    async with srv.session() as c:
        assert (await c.cmd("CREATE Entw&APw-rfe")).ok
        reply = await c.cmd('LIST "" Entw*')
        assert [r.name for r in reply.of(ListData)] == ["Entwürfe"]
        assert b'"Entw&APw-rfe"' in reply.raw
        assert [m.name for m in srv.store.list_mailboxes("alice", "", ["Entw*"])] == ["Entwürfe"]
        assert (await c.cmd("SELECT Entw&APw-rfe")).ok
        assert (await c.cmd("CREATE bad&-name&Jjo")).status in ("BAD", "NO")  # invalid mUTF-7


async def test_7_2_6_keyword_new_to_the_mailbox_comes_in_flags_before_any_fetch(srv: Running) -> None:
    async with srv.session() as a, srv.session() as b:
        await a.append("INBOX", message())
        await a.cmd("SELECT INBOX")
        await b.cmd("SELECT INBOX")
        await b.cmd("STORE 1 +FLAGS ($hello)")
        untagged = (await a.cmd("NOOP")).untagged
        first_fetch = next(i for i, r in enumerate(untagged) if isinstance(r, FetchData))
        assert "$hello" in untagged[first_fetch].flags
        announced = [r for r in untagged[:first_fetch] if isinstance(r, FlagsData)]
        assert announced and "$hello" in announced[-1].flags
        perm = [
            r.code.value
            for r in untagged[:first_fetch]
            if isinstance(r, StatusResponse) and r.code is not None and r.code.name == "PERMANENTFLAGS"
        ]
        assert perm and isinstance(perm[-1], tuple) and "$hello" in perm[-1]
        await b.cmd("STORE 1 -FLAGS ($hello)")
        await b.cmd("STORE 1 +FLAGS ($hello)")
        assert (await a.cmd("NOOP")).of(FlagsData) == []  # announced once per selection


async def test_6_4_6_store_nil_is_the_keyword_nil(srv: Running) -> None:
    # NIL is an atom in the flag grammar; Dovecot stores it as the keyword NIL (imaptest `nil`)
    async with srv.session() as c:
        await c.append("INBOX", message())
        await c.cmd("SELECT INBOX")
        assert (await c.cmd("STORE 1 +FLAGS NIL")).ok
        assert "NIL" in (await c.cmd("FETCH 1 FLAGS")).of(FetchData)[0].flags


async def test_select_of_a_name_of_atom_specials_is_no_not_bad(srv: Running) -> None:
    # `[` without `]` and `}` are ATOM-CHARs; `&'` is not modified UTF-7, so no such mailbox can
    # exist: NO as Dovecot answers (imaptest `atoms`), and LIST with that pattern is OK and empty
    async with srv.session() as c:
        reply = await c.cmd("SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}")
        assert reply.status == "NO"
        assert (await c.cmd("SELECT a[}")).status == "NO"
        reply = await c.cmd('LIST "" !#$&\'+,-.0123456789:;<=>?@^_`|[}%*')
        assert reply.ok and reply.of(ListData) == []
        assert (await c.cmd("CREATE a&'b")).status == "NO"
        await c.cmd("SELECT INBOX")
        assert (await c.cmd("EXAMINE a&'b")).status == "NO"
        assert (await c.cmd("FETCH 1 FLAGS")).status == "BAD"  # the failed EXAMINE closed INBOX


async def test_6_4_4_search_from_matches_the_address_not_the_raw_header(srv: Running) -> None:
    # As Dovecot: comments inside the address are not part of it, a trailing comment is the name
    def msg(sender: str) -> bytes:
        return f"From: {sender}\r\nTo: groupname: one@domain.org;\r\nSubject: s\r\n\r\nbody\r\n".encode()

    async with srv.session() as c:
        await c.append("INBOX", msg("<user-from (comment)@ (comment) domain.org>"))
        await c.append("INBOX", msg("user-from@domain.org (RealFrom)"))
        await c.append("INBOX", msg("user-from1@domain.org, other@domain.org"))
        await c.cmd("SELECT INBOX")

        async def ids(q: str) -> tuple[int, ...]:
            return (await c.cmd(f"SEARCH {q}")).of(SearchData)[0].ids

        assert await ids("FROM user-from@domain.org") == (1, 2)
        assert await ids("FROM realfrom") == (2,)
        assert await ids("FROM comment") == ()
        assert await ids("TO groupname") == (1, 2, 3)
