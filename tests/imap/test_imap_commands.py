"""Client commands: the server parser and the client builder agree, byte for byte."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from imap_testlib import feed_commands

from cpmsync.imap import *  # noqa: F403  (the whole public codec, by its __all__)

S = SequenceSet.parse

# (wire as a client sends it with LITERAL+ where literals occur, typed command)
CASES: list[tuple[bytes, object]] = [
    (b"a1 CAPABILITY\r\n", CapabilityCommand("a1")),
    (b"a1 NOOP\r\n", NoopCommand("a1")),
    (b"a1 LOGOUT\r\n", LogoutCommand("a1")),
    (b"a1 STARTTLS\r\n", StartTlsCommand("a1")),
    (b"a1 NAMESPACE\r\n", NamespaceCommand("a1")),
    (b"a1 CHECK\r\n", CheckCommand("a1")),
    (b"a1 CLOSE\r\n", CloseCommand("a1")),
    (b"a1 UNSELECT\r\n", UnselectCommand("a1")),
    (b"a1 IDLE\r\n", IdleCommand("a1")),
    (b'a1 ID ("name" "cpmsync" "os" NIL)\r\n', IdCommand("a1", (("name", "cpmsync"), ("os", None)))),
    (b"a1 ID NIL\r\n", IdCommand("a1", None)),
    (b"a1 LOGIN bob secret\r\n", LoginCommand("a1", "bob", "secret")),
    (b'a1 LOGIN "bob smith" "p\\"w\\\\d"\r\n', LoginCommand("a1", "bob smith", 'p"w\\d')),
    (b"a1 LOGIN bob {5+}\r\np\xc3\xa4ss\r\n", LoginCommand("a1", "bob", "päss")),
    (b"a1 AUTHENTICATE PLAIN\r\n", AuthenticateCommand("a1", "PLAIN")),
    (b"a1 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n", AuthenticateCommand("a1", "PLAIN", b"\0bob\0secret")),
    (b"a1 AUTHENTICATE EXTERNAL =\r\n", AuthenticateCommand("a1", "EXTERNAL", b"")),
    (b"a1 ENABLE CONDSTORE QRESYNC\r\n", EnableCommand("a1", ("CONDSTORE", "QRESYNC"))),
    (b"a1 SELECT INBOX\r\n", SelectCommand("a1", "INBOX")),
    (b"a1 EXAMINE tel:+15143457900\r\n", SelectCommand("a1", "tel:+15143457900", readonly=True)),
    (b"a1 SELECT Default (CONDSTORE)\r\n", SelectCommand("a1", "Default", condstore=True)),
    (b"a1 SELECT x (QRESYNC (67890007 20050715194045000))\r\n",
     SelectCommand("a1", "x", qresync=QresyncParams(67890007, 20050715194045000))),
    (b"a1 SELECT x (QRESYNC (67890007 90060115194045000 41:211,214:541))\r\n",
     SelectCommand("a1", "x", qresync=QresyncParams(67890007, 90060115194045000, S("41:211,214:541")))),
    (b"a1 SELECT x (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000 15000,22500,27000)))\r\n",
     SelectCommand("a1", "x", qresync=QresyncParams(
         67890007, 90060115194045000, S("1:29997"), (S("5000,7500,9000"), S("15000,22500,27000"))))),
    (b"a1 CREATE Entw&APw-rfe\r\n", CreateCommand("a1", "Entwürfe")),
    (b'a1 CREATE "a b/c"\r\n', CreateCommand("a1", "a b/c")),
    (b"a1 DELETE f81d4fae-7dec-11d0-a765-00a0c91e6bf6\r\n",
     DeleteCommand("a1", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6")),
    (b"a1 RENAME old new\r\n", RenameCommand("a1", "old", "new")),
    (b"a1 SUBSCRIBE x\r\n", SubscribeCommand("a1", "x")),
    (b"a1 UNSUBSCRIBE x\r\n", UnsubscribeCommand("a1", "x")),
    (b'a1 LIST "" %\r\n', ListCommand("a1", "", ("%",))),
    (b'a1 LIST "" *\r\n', ListCommand("a1", "", ("*",))),
    (b"a1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX Drafts Sent/%)\r\n",
     ListCommand("a1", "", ("INBOX", "Drafts", "Sent/%"), ("SUBSCRIBED", "RECURSIVEMATCH"))),
    (b"a1 LIST (REMOTE) \"\" * RETURN (CHILDREN)\r\n",
     ListCommand("a1", "", ("*",), ("REMOTE",), return_opts=("CHILDREN",))),
    (b'a1 LIST "" % RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES UNSEEN MAILBOXID))\r\n',
     ListCommand("a1", "", ("%",), return_opts=("SUBSCRIBED", "CHILDREN"),
                 return_status=("MESSAGES", "UNSEEN", "MAILBOXID"))),
    (b'a1 LIST (SUBSCRIBED CHANGEDSINCE (9223372036854775807)) "" * RETURN (STATUS (HIGHESTMODSEQ))\r\n',
     ListCommand("a1", "", ("*",), ("SUBSCRIBED",), 2**63 - 1, return_status=("HIGHESTMODSEQ",))),
    (b'a1 LSUB "" *\r\n', LsubCommand("a1", "", "*")),
    (b"a1 STATUS Default (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE MAILBOXID)\r\n",
     StatusCommand("a1", "Default", ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                                     "HIGHESTMODSEQ", "SIZE", "MAILBOXID"))),
    (b"a1 APPEND INBOX {11+}\r\nHello world\r\n", AppendCommand("a1", "INBOX", b"Hello world")),
    (b'a1 APPEND Default (\\Seen $Forwarded) " 7-Feb-1994 21:52:25 -0800" {3+}\r\nabc\r\n',
     AppendCommand("a1", "Default", b"abc", ("\\Seen", "$Forwarded"),
                   datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(-timedelta(hours=8))))),
    (b"a1 EXPUNGE\r\n", ExpungeCommand("a1")),
    (b"a1 UID EXPUNGE 3000:3002,4000\r\n", ExpungeCommand("a1", S("3000:3002,4000"))),
    (b"a1 SEARCH ALL\r\n", SearchCommand("a1", (SearchKey("ALL"),))),
    (b"a1 UID SEARCH MODSEQ 620162338\r\n",
     SearchCommand("a1", (SearchKey("MODSEQ", (620162338,)),), uid=True)),
    (b'a1 SEARCH MODSEQ "/flags/\\\\draft" all 620162338\r\n',
     SearchCommand("a1", (SearchKey("MODSEQ", ("/flags/\\draft", "all", 620162338)),))),
    (b"a1 SEARCH RETURN (MIN MAX COUNT) CHARSET UTF-8 FROM {4+}\r\nj\xc3\xb6e UNSEEN\r\n",
     SearchCommand("a1", (SearchKey("FROM", ("jöe",)), SearchKey("UNSEEN")), charset="UTF-8",
                   return_opts=("MIN", "MAX", "COUNT"))),
    (b"a1 UID SEARCH RETURN () 1:100 NOT DELETED\r\n",
     SearchCommand("a1", (SearchKey("SEQSET", (S("1:100"),)), SearchKey("NOT", (SearchKey("DELETED"),))),
                   uid=True, return_opts=())),
    (b'a1 SEARCH OR (FROM alice SINCE 1-Feb-1994) HEADER X-Chat "tel:+1 514" UID 5:* LARGER 100\r\n',
     SearchCommand("a1", (
         SearchKey("OR", (SearchKey("AND", (SearchKey("FROM", ("alice",)),
                                            SearchKey("SINCE", (date(1994, 2, 1),)))),
                          SearchKey("HEADER", ("X-Chat", "tel:+1 514")))),
         SearchKey("UID", (S("5:*"),)), SearchKey("LARGER", (100,))))),
    (b"a1 SEARCH SEEN UNSEEN FLAGGED ANSWERED DELETED DRAFT NEW OLD RECENT UNANSWERED UNDELETED UNDRAFT "
     b"UNFLAGGED KEYWORD $Forwarded UNKEYWORD $Junk BEFORE 1-Jan-2020 ON 2-Jan-2020 SENTBEFORE 3-Jan-2020 "
     b"SENTON 4-Jan-2020 SENTSINCE 5-Jan-2020 SMALLER 9 BCC b CC c TO t SUBJECT s BODY y TEXT x\r\n",
     SearchCommand("a1", tuple(
         [SearchKey(k) for k in "SEEN UNSEEN FLAGGED ANSWERED DELETED DRAFT NEW OLD RECENT UNANSWERED "
                                "UNDELETED UNDRAFT UNFLAGGED".split()]
         + [SearchKey("KEYWORD", ("$Forwarded",)), SearchKey("UNKEYWORD", ("$Junk",)),
            SearchKey("BEFORE", (date(2020, 1, 1),)), SearchKey("ON", (date(2020, 1, 2),)),
            SearchKey("SENTBEFORE", (date(2020, 1, 3),)), SearchKey("SENTON", (date(2020, 1, 4),)),
            SearchKey("SENTSINCE", (date(2020, 1, 5),)), SearchKey("SMALLER", (9,))]
         + [SearchKey(k, (v,)) for k, v in
            (("BCC", "b"), ("CC", "c"), ("TO", "t"), ("SUBJECT", "s"), ("BODY", "y"), ("TEXT", "x"))]))),
    (b"a1 FETCH 1:* ALL\r\n", FetchCommand("a1", S("1:*"), ("ALL",))),
    (b"a1 FETCH 2 FAST\r\n", FetchCommand("a1", S("2"), ("FAST",))),
    (b"a1 FETCH 2 FULL\r\n", FetchCommand("a1", S("2"), ("FULL",))),
    (b"a1 UID FETCH 1:* (UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n",
     FetchCommand("a1", S("1:*"), ("UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                                   "BODYSTRUCTURE"), uid=True)),
    (b"a1 FETCH 5 (BODY[] BODY.PEEK[HEADER] BODY[1.2.TEXT] BODY[2.MIME] BODY.PEEK[HEADER.FIELDS.NOT (X-A)] "
     b"BODY[]<0.1024>)\r\n",
     FetchCommand("a1", S("5"), (FetchBody(), FetchBody(True, (), "HEADER"), FetchBody(False, (1, 2), "TEXT"),
                                 FetchBody(False, (2,), "MIME"),
                                 FetchBody(True, (), "HEADER.FIELDS.NOT", ("X-A",)),
                                 FetchBody(partial=(0, 1024))))),
    (b"a1 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
     FetchCommand("a1", S("300:500"), ("FLAGS",), uid=True, changedsince=12345, vanished=True)),
    (b"a1 FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
     FetchCommand("a1", S("1:*"), ("FLAGS",), changedsince=12345)),
    (b"a1 STORE 2:4 +FLAGS (\\Deleted)\r\n", StoreCommand("a1", S("2:4"), "+", ("\\Deleted",))),
    (b"a1 STORE 2 -FLAGS.SILENT (\\Seen \\Flagged)\r\n",
     StoreCommand("a1", S("2"), "-", ("\\Seen", "\\Flagged"), silent=True)),
    (b"a1 UID STORE 7,9 (UNCHANGEDSINCE 320162338) FLAGS.SILENT ()\r\n",
     StoreCommand("a1", S("7,9"), "", (), silent=True, uid=True, unchangedsince=320162338)),
    (b"a1 COPY 2:4 Archive\r\n", CopyCommand("a1", S("2:4"), "Archive")),
    (b"a1 UID COPY 2:4 Archive\r\n", CopyCommand("a1", S("2:4"), "Archive", uid=True)),
    (b"a1 MOVE 1 Trash\r\n", MoveCommand("a1", S("1"), "Trash")),
    (b"a1 UID MOVE 42:69 Trash\r\n", MoveCommand("a1", S("42:69"), "Trash", uid=True)),
    (b"a1 NOTIFY NONE\r\n", NotifyCommand("a1", None)),
    (b"a1 NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT)]) "
     b"MessageExpunge)) (subtree Lists (MessageNew))\r\n",
     NotifyCommand("a1", (
         NotifyGroup("selected", (), (
             NotifyEvent("MessageNew",
                         ("UID", FetchBody(True, (), "HEADER.FIELDS", ("FROM", "TO", "SUBJECT")))),
             NotifyEvent("MessageExpunge"))),
         NotifyGroup("subtree", ("Lists",), (NotifyEvent("MessageNew"),))), status=True)),
    (b"a1 NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange AnnotationChange)) "
     b"(personal (MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange)) "
     b"(inboxes NONE) (subscribed (MessageNew)) (mailboxes (a b) (FlagChange))\r\n",
     NotifyCommand("a1", (
         NotifyGroup("selected-delayed", (), tuple(NotifyEvent(n) for n in (
             "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"))),
         NotifyGroup("personal", (), tuple(NotifyEvent(n) for n in (
             "MailboxName", "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange"))),
         NotifyGroup("inboxes", (), None),
         NotifyGroup("subscribed", (), (NotifyEvent("MessageNew"),)),
         NotifyGroup("mailboxes", ("a", "b"), (NotifyEvent("FlagChange"),))))),
    (b"a1 COMPRESS DEFLATE\r\n", CompressCommand("a1")),
]  # fmt: skip


@pytest.mark.parametrize(("wire", "cmd"), CASES, ids=[w[:40].decode("latin-1") for w, _ in CASES])
def test_parse_and_build_agree_byte_exact(wire: bytes, cmd: object) -> None:
    assert parse_command(wire) == cmd
    assert serialize_command(cmd, literal_plus=True) == wire  # type: ignore[arg-type]
    # through the incremental parser too, one byte at a time
    evs = [e for e in feed_commands(wire, chunk=1) if not isinstance(e, ContinuationNeeded)]
    assert evs == [cmd]


def test_every_command_of_the_msgstore_issue_is_covered() -> None:
    names = {type(c).__name__ for _, c in CASES}
    import cpmsync.imap.commands as m

    wanted = {n for n in m.__all__ if n.endswith("Command") and n != "Command"}
    assert wanted <= names


def test_parser_is_case_insensitive_and_normalises_inbox() -> None:
    assert parse_command(b"x select inbox\r\n") == SelectCommand("x", "INBOX")
    assert parse_command(b"x uid fetch 1 (flags body.peek[header])\r\n") == FetchCommand(
        "x", S("1"), ("FLAGS", FetchBody(True, (), "HEADER")), uid=True
    )
    assert parse_command(b'x list "" inbox\r\n') == ListCommand("x", "", ("inbox",))


def test_lenient_forms_clients_send() -> None:
    # STORE flags without parentheses, FETCH single attribute without parentheses
    assert parse_command(b"x STORE 1 +FLAGS \\Seen\r\n") == StoreCommand("x", S("1"), "+", ("\\Seen",))
    assert parse_command(b"x FETCH 1 UID\r\n") == FetchCommand("x", S("1"), ("UID",))
    # RFC 5465's original example syntax (before erratum 1804)
    assert parse_command(b"x NOTIFY SET (selected MessageNew MessageExpunge)\r\n") == NotifyCommand(
        "x", (NotifyGroup("selected", (), (NotifyEvent("MessageNew"), NotifyEvent("MessageExpunge"))),)
    )


# -- literals and continuations ------------------------------------------------------------


def test_builder_splits_at_synchronizing_literals() -> None:
    cmd = LoginCommand("a1", "bob", "pä ss")
    chunks = command_chunks(cmd)
    assert chunks == [b"a1 LOGIN bob {6}\r\n", b"p\xc3\xa4 ss\r\n"]
    assert command_chunks(cmd, literal_plus=True) == [b"a1 LOGIN bob {6+}\r\np\xc3\xa4 ss\r\n"]
    app = AppendCommand("a2", "Default", b"Subject: x\r\n\r\nhi")
    assert command_chunks(app) == [b"a2 APPEND Default {16}\r\n", b"Subject: x\r\n\r\nhi\r\n"]
    # long strings go as literals too, so no line exceeds a peer's limit
    assert command_chunks(SearchCommand("a3", (SearchKey("TEXT", ("x" * 2000,)),)))[0].endswith(b"{2000}\r\n")


def test_parser_asks_for_continuation_on_sync_literals_only() -> None:
    p = CommandParser()
    p.feed(b"a1 LOGIN {3}\r\n")
    assert p.next_event() == ContinuationNeeded("a1", 3)
    assert p.next_event() is NEED_DATA
    p.feed(b"bob {6}\r\n")
    assert p.next_event() == ContinuationNeeded("a1", 6)
    p.feed(b"secret\r\n")
    assert p.next_event() == LoginCommand("a1", "bob", "secret")
    p.feed(b"a2 LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n")
    assert p.next_event() == LoginCommand("a2", "bob", "secret")
    assert p.next_event() is NEED_DATA


def test_builder_chunks_driven_through_the_parser_like_a_real_exchange() -> None:
    cmd = AppendCommand("t", "Entwürfe", b"\x00\xff binary \r\n", ("\\Seen",))
    p = CommandParser()
    chunks = command_chunks(cmd)
    for i, c in enumerate(chunks):
        p.feed(c)
        ev = p.next_event()
        if i < len(chunks) - 1:
            assert isinstance(ev, ContinuationNeeded)
        else:
            assert ev == cmd


def test_raw_line_mode_for_idle_done_and_sasl() -> None:
    p = CommandParser()
    p.feed(b"a1 IDLE\r\nDONE\r\na2 AUTHENTICATE PLAIN\r\nAGJvYgBzZWNyZXQ=\r\na3 NOOP\r\n")
    assert p.next_event() == IdleCommand("a1")
    p.expect_raw_line()
    assert p.next_event() == RawLine(b"DONE")
    assert p.next_event() == AuthenticateCommand("a2", "PLAIN")
    p.expect_raw_line()
    assert p.next_event() == RawLine(b"AGJvYgBzZWNyZXQ=")
    assert p.next_event() == NoopCommand("a3")


def test_raw_line_mode_does_not_interpret_literal_markers() -> None:
    p = CommandParser()
    p.expect_raw_line()
    p.feed(b"weird {5}\r\na NOOP\r\n")
    assert p.next_event() == RawLine(b"weird {5}")
    assert p.next_event() == NoopCommand("a")


def test_empty_lines_are_skipped() -> None:
    assert feed_commands(b"\r\n\r\na NOOP\r\n") == [NoopCommand("a")]


# -- errors ---------------------------------------------------------------------------------


def test_unknown_command_carries_the_tag() -> None:
    with pytest.raises(UnknownCommandError) as ei:
        parse_command(b"t7 FROBNICATE x\r\n")
    assert ei.value.tag == "t7" and ei.value.command == "FROBNICATE"
    assert isinstance(ei.value, ImapProtocolError)


@pytest.mark.parametrize(
    ("wire", "command", "words"),
    [
        (b't LIST (CHANGEDSINCE) "" *\r\n', "LIST", "CHANGEDSINCE"),
        (b't LIST (CHANGEDSINCE ()) "" *\r\n', "LIST", "CHANGEDSINCE"),
        (b't LIST (CHANGEDSINCE (abc)) "" *\r\n', "LIST", "CHANGEDSINCE"),
        (b't LIST (CHANGEDSINCE (9223372036854775808)) "" *\r\n', "LIST", "range"),
        (b't LIST (CHANGEDSINCE (20001) CHANGEDSINCE (1)) "" *\r\n', "LIST", "twice"),
        (b't LIST (SUBSCRIBED subscribed) "" *\r\n', "LIST", "twice"),
        (b't LIST ""\r\n', "LIST", "pattern"),
        (b"t LOGIN onlyuser\r\n", "LOGIN", "password"),
        (b"t SELECT\r\n", "SELECT", "mailbox"),
        (b"t SELECT x (QRESYNC (0 5))\r\n", "SELECT", "range"),
        (b"t SELECT x (FOO)\r\n", "SELECT", "FOO"),
        (b"t FETCH 1 (BODY[HEADER.FIELDS])\r\n", "FETCH", "HEADER.FIELDS"),
        (b"t FETCH x FLAGS\r\n", "FETCH", "sequence set"),
        (b"t FETCH 0 FLAGS\r\n", "FETCH", "sequence set"),
        (b"t FETCH 1 (FLAGS) (VANISHED)\r\n", "FETCH", "VANISHED"),
        (b"t STORE 1 FLAGZ (\\Seen)\r\n", "STORE", "FLAGS"),
        (b"t SEARCH NOT\r\n", "SEARCH", "NOT"),
        (b"t SEARCH OR SEEN\r\n", "SEARCH", "OR"),
        (b"t SEARCH FROBBED\r\n", "SEARCH", "FROBBED"),
        (b"t SEARCH SINCE yesterday\r\n", "SEARCH", "date"),
        (b"t NOTIFY SET (everywhere (MessageNew))\r\n", "NOTIFY", "filter"),
        (b"t NOTIFY MAYBE\r\n", "NOTIFY", "SET"),
        (b"t AUTHENTICATE PLAIN !!!\r\n", "AUTHENTICATE", "base64"),
        (b"t APPEND x (\\Seen)\r\n", "APPEND", "message"),
        (b"t CREATE &Jjo\r\n", "CREATE", "UTF-7"),
        (b"t NOOP extra\r\n", "NOOP", "extra"),
        (b"t UID FROB 1\r\n", "UID", "UID"),
        (b"t STATUS x (MESSAGES\r\n", "STATUS", "("),
    ],
)
def test_bad_arguments_give_tagged_error_with_message(wire: bytes, command: str, words: str) -> None:
    p = CommandParser()
    p.feed(wire + b"n NOOP\r\n")
    with pytest.raises(BadCommandError) as ei:
        p.next_event()
    assert ei.value.tag == "t"
    assert ei.value.command == command
    assert words.lower() in ei.value.message.lower()
    assert ei.value.line.startswith(b"t ")
    assert p.next_event() == NoopCommand("n")  # the connection stays usable


def test_untagged_garbage_is_a_protocol_error_without_tag() -> None:
    evs = feed_commands(b"(((\r\na NOOP\r\n")
    assert isinstance(evs[0], ImapProtocolError) and evs[0].tag is None and evs[0].position == 0
    assert evs[1] == NoopCommand("a")


def test_too_large_sync_literal_is_refused_before_the_client_sends_it() -> None:
    p = CommandParser(max_literal_bytes=1000)
    p.feed(b"a5 APPEND INBOX {5000}\r\n")
    with pytest.raises(ImapLimitError) as ei:
        p.next_event()
    assert ei.value.tag == "a5"
    assert p.next_event() is NEED_DATA  # no ContinuationNeeded: the client waits, then gets NO/BAD
    p.feed(b"a6 NOOP\r\n")
    assert p.next_event() == NoopCommand("a6")


def test_too_large_nonsync_literal_is_skipped_without_buffering() -> None:
    p = CommandParser(max_literal_bytes=1000)
    p.feed(b"a5 APPEND INBOX {5000+}\r\n")
    with pytest.raises(ImapLimitError) as ei:
        p.next_event()
    assert ei.value.tag == "a5"
    for _ in range(10):
        p.feed(b"z" * 500)
        assert p.next_event() is NEED_DATA
    p.feed(b"\r\na6 NOOP\r\n")
    assert p.next_event() == NoopCommand("a6")


def test_line_limit_names_the_tag_and_recovers() -> None:
    evs = feed_commands(b"a9 LOGIN " + b"x" * 500 + b" y\r\nb1 NOOP\r\n", chunk=64, max_line_bytes=200)
    assert isinstance(evs[0], ImapLimitError) and evs[0].tag == "a9"
    assert evs[1:] == [NoopCommand("b1")]


def test_password_and_message_never_in_repr() -> None:
    assert "secret" not in repr(LoginCommand("a", "bob", "secret"))
    assert "hello" not in repr(AppendCommand("a", "INBOX", b"hello"))
    assert "AGJv" not in repr(AuthenticateCommand("a", "PLAIN", b"\0bob\0secret"))


def test_fetch_body_response_key_matches_what_the_server_writes() -> None:
    fb = FetchBody(True, (1, 2), "HEADER.FIELDS", ("FROM", "TO"), (0, 100))
    assert fb.section == "1.2.HEADER.FIELDS (FROM TO)"
    assert fb.response_key == "BODY[1.2.HEADER.FIELDS (FROM TO)]<0>"
    assert fetch_att_bytes(fb) == b"BODY.PEEK[1.2.HEADER.FIELDS (FROM TO)]<0.100>"


def test_sasl_and_idle_raw_lines_agree_between_client_and_server() -> None:
    from cpmsync.imap import (
        IDLE_DONE,
        SASL_CANCEL,
        decode_sasl_response,
        encode_sasl_response,
        is_idle_done,
    )

    p = CommandParser()
    p.feed(b"a1 AUTHENTICATE PLAIN\r\n" + encode_sasl_response(b"\0bob\0secret") + b"a2 IDLE\r\n" + IDLE_DONE)
    assert p.next_event() == AuthenticateCommand("a1", "PLAIN")
    p.expect_raw_line()
    line = p.next_event()
    assert isinstance(line, RawLine) and decode_sasl_response(line.data) == b"\0bob\0secret"
    assert p.next_event() == IdleCommand("a2")
    p.expect_raw_line()
    done = p.next_event()
    assert isinstance(done, RawLine) and is_idle_done(done.data)
    assert decode_sasl_response(SASL_CANCEL) is None
    assert decode_sasl_response(encode_sasl_response(b"")) == b""
    with pytest.raises(ImapProtocolError):
        decode_sasl_response(b"not base64!")


@pytest.mark.parametrize(
    ("limit", "size", "accepted"),
    [(None, 5000, True), (4096, 4096, True), (4096, 4097, False), (0, 1, False)],
)
def test_nonsync_literal_policy_literal_plus_minus_or_none(
    limit: int | None, size: int, accepted: bool
) -> None:
    """LITERAL+ (no limit), LITERAL- (4096, RFC 7888) or neither (0): refused ones are skipped."""
    p = CommandParser(max_nonsync_literal_bytes=limit)
    p.feed(b"a1 APPEND INBOX {%d+}\r\n" % size + b"m" * size + b"\r\na2 NOOP\r\n")
    if accepted:
        assert p.next_event() == AppendCommand("a1", "INBOX", b"m" * size)
    else:
        with pytest.raises(ImapLimitError, match="non-synchronizing") as ei:
            p.next_event()
        assert ei.value.tag == "a1"
    assert p.next_event() == NoopCommand("a2")
    # synchronizing literals are unaffected by the policy
    p.feed(b"a3 LOGIN {3}\r\n")
    assert p.next_event() == ContinuationNeeded("a3", 3)


def test_over_long_raw_line_uses_up_raw_mode_and_is_not_read_as_literal() -> None:
    p = CommandParser(max_line_bytes=20)
    p.feed(b"a1 IDLE\r\n")
    assert p.next_event() == IdleCommand("a1")
    p.expect_raw_line()
    p.feed(b"x" * 40 + b" {5}\r\na2 NOOP\r\n")
    with pytest.raises(ImapLimitError) as ei:
        p.next_event()
    assert ei.value.tag is None  # a raw line has no tag
    assert p.next_event() == NoopCommand("a2")  # parsed as a command again, no literal skipped


def test_over_long_raw_line_same_result_however_split() -> None:
    wire = b"a1 IDLE\r\n" + b"x" * 40 + b" {5}\r\na2 NOOP\r\n"
    whole = feed_commands(wire, max_line_bytes=20)
    assert [type(e).__name__ for e in whole] == ["IdleCommand", "ImapLimitError", "NoopCommand"]
    for chunk in (1, 3, 16):
        assert [type(e).__name__ for e in feed_commands(wire, chunk=chunk, max_line_bytes=20)] == [
            type(e).__name__ for e in whole
        ]
