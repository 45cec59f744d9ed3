"""Every client command, declared once: its wire name, the states that admit it, the capability
that switches it on, how its arguments are read (server side) and written (client side).

The parser's and writer's tables, the state checks (`state.SessionState.check`), the server's
capability gate and its dispatch are all derived from `COMMANDS` (crymap's one exhaustive match).
Adding a command: its dataclass in `commands`, one `CommandSpec` here (with its reader and
writer when it takes arguments), a handler in the server, a test. A test fails when a command
has no handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _readers as r
from . import _writers as w
from ._lexer import Out
from .commands import *  # noqa: F403  (h11 style: the value classes, by their own __all__)
from .state import ConnState

__all__ = [
    "ANY_STATE",
    "AUTHENTICATED",
    "COMMANDS",
    "NOT_AUTHENTICATED",
    "SELECTED",
    "CommandSpec",
    "spec_of",
]

ANY_STATE = frozenset({ConnState.NOT_AUTHENTICATED, ConnState.AUTHENTICATED, ConnState.SELECTED})
NOT_AUTHENTICATED = frozenset({ConnState.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({ConnState.AUTHENTICATED, ConnState.SELECTED})
SELECTED = frozenset({ConnState.SELECTED})


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command. `read`/`write` default to a command without arguments (its name alone).

    `capability`: the server answers BAD unless this capability is on; `needs`: a capability
    that only some forms need (SEARCH RETURN needs ESEARCH), None when this form needs none.
    `uid`: also accepted as `UID <name>`.
    """

    cls: type[Command]
    name: str
    states: frozenset[ConnState]
    read: r.Reader | None = None
    write: w.Writer | None = None
    capability: str | None = None
    needs: Callable[[Any], str | None] | None = None
    uid: bool = False
    _name_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_name_bytes", self.name.encode("ascii"))

    def parse(self, tag: str, args: r.Args, uid: bool) -> Command:
        if self.read is None:
            args.end()
            return self.cls(tag)  # type: ignore[call-arg]
        return self.read(tag, args, uid)

    def write_args(self, out: Out, cmd: Any) -> None:
        if self.write is None:
            out.w(self._name_bytes)
        else:
            self.write(out, cmd)

    def required_capability(self, cmd: Any) -> str | None:
        """The capability this command, as given, needs the server to have switched on."""
        if self.capability is not None:
            return self.capability
        return None if self.needs is None else self.needs(cmd)


C = CommandSpec
COMMANDS: tuple[CommandSpec, ...] = (
    # RFC 3501 6.1: any state
    C(CapabilityCommand, "CAPABILITY", ANY_STATE),
    C(NoopCommand, "NOOP", ANY_STATE),
    C(LogoutCommand, "LOGOUT", ANY_STATE),
    C(IdCommand, "ID", ANY_STATE, r.read_id, w.write_id, capability="ID"),  # RFC 2971
    # 6.2: not authenticated
    C(StartTlsCommand, "STARTTLS", NOT_AUTHENTICATED),
    C(LoginCommand, "LOGIN", NOT_AUTHENTICATED, r.read_login, w.write_login),
    C(AuthenticateCommand, "AUTHENTICATE", NOT_AUTHENTICATED, r.read_authenticate, w.write_authenticate),
    # 6.3: authenticated
    C(EnableCommand, "ENABLE", AUTHENTICATED, r.read_enable, w.write_enable, capability="ENABLE"),  # RFC 5161
    C(SelectCommand, "SELECT", AUTHENTICATED, r.read_select(False), w.write_select),
    C(SelectCommand, "EXAMINE", AUTHENTICATED, r.read_select(True), w.write_select),
    C(CreateCommand, "CREATE", AUTHENTICATED, r.read_mailbox(CreateCommand), w.write_mailbox(b"CREATE")),
    C(DeleteCommand, "DELETE", AUTHENTICATED, r.read_mailbox(DeleteCommand), w.write_mailbox(b"DELETE")),
    C(RenameCommand, "RENAME", AUTHENTICATED, r.read_rename, w.write_rename),
    C(
        SubscribeCommand,
        "SUBSCRIBE",
        AUTHENTICATED,
        r.read_mailbox(SubscribeCommand),
        w.write_mailbox(b"SUBSCRIBE"),
    ),
    C(
        UnsubscribeCommand,
        "UNSUBSCRIBE",
        AUTHENTICATED,
        r.read_mailbox(UnsubscribeCommand),
        w.write_mailbox(b"UNSUBSCRIBE"),
    ),
    C(NamespaceCommand, "NAMESPACE", AUTHENTICATED, capability="NAMESPACE"),  # RFC 2342
    C(ListCommand, "LIST", AUTHENTICATED, r.read_list, w.write_list),
    C(LsubCommand, "LSUB", AUTHENTICATED, r.read_lsub, w.write_lsub),
    C(StatusCommand, "STATUS", AUTHENTICATED, r.read_status, w.write_status),
    C(AppendCommand, "APPEND", AUTHENTICATED, r.read_append, w.write_append),
    C(IdleCommand, "IDLE", AUTHENTICATED, capability="IDLE"),  # RFC 2177
    C(NotifyCommand, "NOTIFY", AUTHENTICATED, r.read_notify, w.write_notify, capability="NOTIFY"),  # RFC 5465
    C(
        CompressCommand,
        "COMPRESS",
        AUTHENTICATED,
        r.read_compress,
        w.write_compress,
        capability="COMPRESS=DEFLATE",
    ),
    # 6.4: selected
    C(CheckCommand, "CHECK", SELECTED),
    C(CloseCommand, "CLOSE", SELECTED),
    C(UnselectCommand, "UNSELECT", SELECTED, capability="UNSELECT"),  # RFC 3691
    # UID EXPUNGE is RFC 4315's (UIDPLUS): the server says so after its read-only check
    C(ExpungeCommand, "EXPUNGE", SELECTED, r.read_expunge, w.write_expunge, uid=True),
    C(
        SearchCommand,
        "SEARCH",
        SELECTED,
        r.read_search,
        w.write_search,
        needs=lambda c: "ESEARCH" if c.return_opts is not None else None,  # RFC 4731
        uid=True,
    ),
    C(
        FetchCommand,
        "FETCH",
        SELECTED,
        r.read_fetch,
        w.write_fetch,
        needs=lambda c: "CONDSTORE" if c.changedsince is not None else None,  # RFC 7162 3.1.4
        uid=True,
    ),
    C(StoreCommand, "STORE", SELECTED, r.read_store, w.write_store, uid=True),
    C(CopyCommand, "COPY", SELECTED, r.read_copy_move(CopyCommand), w.write_copy_move(b"COPY"), uid=True),
    C(
        MoveCommand,
        "MOVE",
        SELECTED,
        r.read_copy_move(MoveCommand),
        w.write_copy_move(b"MOVE"),
        capability="MOVE",  # RFC 6851
        uid=True,
    ),
)
del C

BY_NAME: dict[str, CommandSpec] = {s.name: s for s in COMMANDS}
BY_TYPE: dict[type, CommandSpec] = {}
for _s in COMMANDS:
    BY_TYPE.setdefault(_s.cls, _s)
UID_NAMES = frozenset(s.name for s in COMMANDS if s.uid)


def spec_of(cmd: Command) -> CommandSpec:
    """The declaration of this command (SELECT's for EXAMINE: they share a class)."""
    return BY_TYPE[type(cmd)]
