"""The command registry (`cpmsync.imap.command_specs`) drives the server: every declared command
has a handler, every capability it names can be switched, and a switched-off command is refused
with BAD on the wire while the connection goes on."""

from __future__ import annotations

from typing import get_args

import pytest

from cpmsync.imap import CapabilityData, Command
from cpmsync.imap.command_specs import BY_TYPE, COMMANDS, CommandSpec
from cpmsync.msgstore.session import Session
from cpmsync.msgstore.settings import CAPABILITY_FIELDS
from tests.msgstore.server_testlib import make_settings, running_server


def test_every_command_of_the_codec_is_declared_once_by_name() -> None:
    assert set(get_args(Command)) == set(BY_TYPE)
    names = [s.name for s in COMMANDS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda s: s.name)
def test_every_declared_command_has_a_server_handler(spec: CommandSpec) -> None:
    assert spec.cls in Session.handlers, f"{spec.name} has no @handles handler in the msgstore session"


def test_every_gating_capability_is_a_server_switch() -> None:
    gates = {s.capability for s in COMMANDS if s.capability}
    assert gates <= set(CAPABILITY_FIELDS)


# Each switched-off command, with the line that must now be refused (the mailbox is selected).
_OFF = {
    "id": "ID NIL",
    "namespace": "NAMESPACE",
    "unselect": "UNSELECT",
    "move": "MOVE 1 Trash",
    "idle": "IDLE",
    "notify": "NOTIFY NONE",
    "compress_deflate": "COMPRESS DEFLATE",
    "esearch": "SEARCH RETURN (COUNT) ALL",
}


@pytest.mark.parametrize("switch", sorted(_OFF))
async def test_a_switched_off_command_is_refused_and_the_session_continues(switch: str) -> None:
    async with running_server(make_settings(extensions={switch: False})) as srv, srv.client() as c:
        await c.login()
        await c.cmd('SELECT "INBOX"')
        assert (await c.cmd(_OFF[switch])).status == "BAD"
        caps = (await c.cmd("CAPABILITY")).of(CapabilityData)[0].capabilities
        assert not any(k for k, v in CAPABILITY_FIELDS.items() if v == switch and k in caps)
        assert (await c.cmd("NOOP")).ok
