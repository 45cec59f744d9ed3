"""Authentication paths against our msgstore: AUTHENTICATE PLAIN with SASL-IR, PLAIN after a "+"
continuation (no SASL-IR), and LOGIN."""

from __future__ import annotations

import pytest

from cpmsync.daemon.imap_client import ImapClient, ImapCommandError
from tests.msgstore.server_testlib import ThreadServer, make_settings


@pytest.mark.parametrize(("sasl_ir", "mechanism"), [(True, "plain"), (False, "plain"), (True, "login")])
async def test_login_paths(sasl_ir: bool, mechanism: str) -> None:
    with ThreadServer(make_settings(extensions={"sasl_ir": sasl_ir})) as srv:
        async with ImapClient("127.0.0.1", srv.port, tls="none") as imap:
            assert imap.has("SASL-IR") == sasl_ir
            await imap.login("alice", "alice-pw", mechanism=mechanism)
            await imap.noop()
            assert imap.has("IMAP4rev1")


async def test_wrong_password_is_a_command_error() -> None:
    with ThreadServer() as srv:
        async with ImapClient("127.0.0.1", srv.port, tls="none") as imap:
            with pytest.raises(ImapCommandError):
                await imap.login("alice", "nope")
