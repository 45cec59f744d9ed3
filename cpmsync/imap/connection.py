"""One IMAP connection without I/O (h11's `Connection(our_role)`): bytes in, events out; events in,
bytes out, for either side.

The caller reads the socket and hands the bytes to `receive_data`, takes events from
`next_event` until NEED_DATA, and writes what `send*` returns. The connection owns the framing and
literal continuations (the role's parser), the line modes of IDLE and SASL, the RFC 3501 state
(`state`) and COMPRESS=DEFLATE, an extension that transforms the byte stream both ways
(wsproto's `extensions.py`): whoever switches it on, inflating and deflating happen here, in
bounded steps, for server and client alike.
"""

from __future__ import annotations

import enum
import zlib

from ._framer import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_LITERAL_BYTES, DEFAULT_MAX_MESSAGE_BYTES
from .command_parser import CommandParser
from .command_writer import command_chunks
from .commands import (
    AuthenticateCommand,
    CloseCommand,
    Command,
    IdleCommand,
    LoginCommand,
    LogoutCommand,
    SelectCommand,
    UnselectCommand,
)
from .compress import DeflateCodec, IdentityCodec, StreamCodec
from .events import NEED_DATA, ContinuationNeeded, NeedData, RawLine
from .response_parser import ResponseParser
from .response_writer import serialize_response
from .responses import ContinuationRequest, Response, StatusResponse
from .sasl import IDLE_DONE, encode_sasl_response
from .state import ConnState, SessionState, SubState

__all__ = ["ImapConnection", "Role", "StreamCorrupt"]

# The commands whose answer moves the client's side of the state machine (RFC 3501 3, 6.3.1).
_STATEFUL: frozenset[type] = frozenset(
    {
        SelectCommand,
        UnselectCommand,
        CloseCommand,
        LoginCommand,
        AuthenticateCommand,
        LogoutCommand,
        IdleCommand,
    }
)


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class StreamCorrupt(Exception):
    """The compressed stream cannot be inflated: nothing sane can follow, close the connection."""


class ImapConnection:
    """The protocol state of one connection, for `role`'s side of it.

    Server: events are typed commands, `ContinuationNeeded` (write `+` now) and `RawLine` (a DONE
    or SASL line after `enter_idle` / `enter_sasl`). Client: events are typed responses. `plain_in` and
    `plain_out` count the bytes at the IMAP layer (before deflate), the caller counts the wire.
    A client's `state` follows its own commands along the response stream: SELECT/EXAMINE,
    UNSELECT/CLOSE, LOGIN/AUTHENTICATE, LOGOUT and IDLE move it when their answer is read, so at
    any point of the stream `state.mailbox` names the mailbox the server's data is about.
    """

    def __init__(
        self,
        role: Role,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_literal_bytes: int = DEFAULT_MAX_LITERAL_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.role = role
        self._parser: CommandParser | ResponseParser
        if role is Role.SERVER:
            self._parser = CommandParser(
                max_line_bytes=max_line_bytes,
                max_literal_bytes=max_literal_bytes,
                max_message_bytes=max_message_bytes,
            )
        else:
            self._parser = ResponseParser()
        self.codec: StreamCodec = IdentityCodec()
        self.state = SessionState()
        self.plain_in = 0
        self.plain_out = 0
        self._awaiting: dict[str, Command] = {}  # client: sent state-changing commands by tag
        self._client = role is Role.CLIENT

    # ---- receiving --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes as read from the socket (compressed once COMPRESS is on); any chunking."""
        self._feed(self._inflate(data))

    def next_event(self) -> Command | Response | ContinuationNeeded | RawLine | NeedData:
        """The next event, or NEED_DATA. A large compressed read is inflated one bounded step at a
        time, each step parsed before the next: the parser's limits meet a deflate bomb in pieces."""
        while True:
            ev = self._parser.next_event()
            if ev is not NEED_DATA or not self.codec.pending:
                if self._client and (self._awaiting or (type(ev) is StatusResponse and ev.tag is None)):
                    self._follow(ev)  # a cheap test first: most answers move nothing
                return ev
            self._feed(self._inflate(None))

    def _follow(self, resp: object) -> None:
        """Client: move `state` by an answer to one of its own commands (RFC 3501 3, 6.3.1, RFC
        2177, RFC 7162 3.2.11). A server that answers out of turn leaves the state alone."""
        st = self.state
        if not isinstance(resp, StatusResponse | ContinuationRequest):
            return
        if isinstance(resp, ContinuationRequest):
            waiting = next(reversed(self._awaiting.values()), None)  # `+` answers the latest
            if st.sub is SubState.NONE and isinstance(waiting, IdleCommand):
                st.enter_idle()
            elif st.sub is SubState.NONE and isinstance(waiting, AuthenticateCommand):
                if st.state is ConnState.NOT_AUTHENTICATED:
                    st.enter_sasl()
            return
        if resp.tag is None:
            if resp.status == "PREAUTH" and st.state is ConnState.NOT_AUTHENTICATED:
                st.authenticated()
            elif resp.code is not None and resp.code.name == "CLOSED":
                st.deselected()  # what follows is about the mailbox being selected
            return
        cmd = self._awaiting.pop(resp.tag, None)
        if cmd is None:
            return  # most answers: a command that moves no state
        ok = resp.status == "OK"
        if isinstance(cmd, SelectCommand):
            if ok and st.authenticated_:
                st.selected(cmd.mailbox)
            else:
                st.deselected()  # a failed SELECT leaves no mailbox selected (6.3.1)
        elif isinstance(cmd, UnselectCommand | CloseCommand):
            if ok:
                st.deselected()
        elif isinstance(cmd, LoginCommand | AuthenticateCommand):
            st.leave_sub()
            if ok and st.state is ConnState.NOT_AUTHENTICATED:
                st.authenticated()
        elif isinstance(cmd, LogoutCommand):
            st.logout()
        elif isinstance(cmd, IdleCommand):
            st.leave_sub()

    def enter_idle(self) -> None:
        """Server, after `+ idling`: the IDLE sub-state, and the next line is a RawLine (DONE)."""
        self.state.enter_idle()
        self._expect_raw_line()

    def enter_sasl(self) -> None:
        """Server, after a SASL challenge: the SASL sub-state, the next line is a RawLine."""
        self.state.enter_sasl()
        self._expect_raw_line()

    def _expect_raw_line(self) -> None:
        assert isinstance(self._parser, CommandParser)
        self._parser.expect_raw_line()

    def take_buffered(self) -> bytes:
        """Remove the bytes received but not parsed yet (STARTTLS: plaintext that must not count)."""
        return self._parser.take_buffered()

    def _inflate(self, data: bytes | None) -> bytes:
        """One bounded inflate step of `data`, or of what the last step left (None)."""
        try:
            return self.codec.decode(data) if data is not None else self.codec.decode_more()
        except zlib.error as e:
            raise StreamCorrupt(f"corrupt deflate stream: {e}") from None

    def _feed(self, plain: bytes) -> None:
        self.plain_in += len(plain)
        self._parser.feed(plain)

    # ---- sending ----------------------------------------------------------------------------

    def send(self, event: Response) -> bytes:
        """Server: one response as IMAP bytes (batch them, then pass the batch to `wire`)."""
        return serialize_response(event)

    def send_command(self, cmd: Command, *, literal_plus: bool = False) -> list[bytes]:
        """Client: the command's IMAP bytes, split where a synchronizing literal waits for `+`."""
        if type(cmd) in _STATEFUL:
            self._awaiting[cmd.tag] = cmd
        return command_chunks(cmd, literal_plus=literal_plus)

    @staticmethod
    def send_done() -> bytes:
        """Client: the line that ends IDLE (RFC 2177)."""
        return IDLE_DONE

    @staticmethod
    def send_sasl_response(data: bytes) -> bytes:
        """Client: one SASL response line (RFC 3501 6.2.2): base64, then CRLF."""
        return encode_sasl_response(data)

    def wire(self, plain: bytes) -> bytes:
        """IMAP bytes to socket bytes (deflated and sync-flushed once COMPRESS is on)."""
        self.plain_out += len(plain)
        return self.codec.encode(plain)

    # ---- extensions -------------------------------------------------------------------------

    @property
    def compressed(self) -> bool:
        return self.codec.active

    def start_compression(self) -> None:
        """COMPRESS=DEFLATE from the next byte on (RFC 4978): right after the server's tagged OK,
        both ways. Bytes already received after that OK were compressed: they are inflated now."""
        if self.codec.active:
            raise RuntimeError("compression is already active")
        leftover = self._parser.take_buffered()
        self.codec = DeflateCodec(6 if self.role is Role.SERVER else zlib.Z_DEFAULT_COMPRESSION)
        if leftover:
            # Counted as IMAP bytes when they arrived; what they inflate to is not counted again.
            self._parser.feed(self._inflate(leftover))
