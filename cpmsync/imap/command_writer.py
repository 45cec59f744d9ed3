"""Client side: typed commands to wire bytes, split where a synchronizing literal must wait.

`command_chunks` returns the pieces to send; before each piece after the first the client
waits for the server's "+" continuation. With LITERAL+ (RFC 7888) it is one piece. Each
command's words come from its writer in `command_specs`.
"""

from __future__ import annotations

from ._lexer import Out
from ._writers import fetch_att_bytes
from .command_specs import spec_of
from .commands import Command

__all__ = ["command_chunks", "fetch_att_bytes", "serialize_command"]


def command_chunks(cmd: Command, *, literal_plus: bool = False) -> list[bytes]:
    """Wire pieces; wait for a "+" continuation before sending each piece after the first."""
    out = Out(literal_plus=literal_plus, split_sync=True)
    out.w(cmd.tag.encode("ascii") + b" ")
    spec_of(cmd).write_args(out, cmd)
    out.w(b"\r\n")
    return out.finish()


def serialize_command(cmd: Command, *, literal_plus: bool = False) -> bytes:
    """The exact bytes the client puts on the wire for this command (all pieces joined)."""
    return b"".join(command_chunks(cmd, literal_plus=literal_plus))
