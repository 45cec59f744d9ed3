"""The per-connection IMAP state machine (RFC 3501 3), kept apart from I/O like h11's `_state.py`.

States: not authenticated -> authenticated <-> selected -> logout. IDLE and a SASL exchange are
sub-states in which only one kind of line (DONE / a SASL response) is accepted. Every command is
checked here against the state before the session looks at it, and every transition is a named
method, so the legal paths are readable in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cpmsync.imap import (
    AppendCommand,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    Command,
    CompressCommand,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExpungeCommand,
    FetchCommand,
    IdCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    NotifyCommand,
    RenameCommand,
    SearchCommand,
    SelectCommand,
    StartTlsCommand,
    StatusCommand,
    StoreCommand,
    SubscribeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)

__all__ = ["ConnState", "SessionState", "StateError", "SubState"]


class ConnState(enum.Enum):
    NOT_AUTHENTICATED = "not-authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class SubState(enum.Enum):
    NONE = "none"
    IDLE = "idle"  # waiting for DONE (RFC 2177)
    SASL = "sasl"  # waiting for a SASL response line (RFC 3501 6.2.2)


class StateError(Exception):
    """A command not allowed in the current state; `message` goes into the tagged BAD."""


_ANY: frozenset[type] = frozenset({CapabilityCommand, NoopCommand, LogoutCommand, IdCommand})
_NOT_AUTH: frozenset[type] = frozenset({StartTlsCommand, LoginCommand, AuthenticateCommand})
_AUTH: frozenset[type] = frozenset(
    {
        EnableCommand,
        SelectCommand,
        CreateCommand,
        DeleteCommand,
        RenameCommand,
        SubscribeCommand,
        UnsubscribeCommand,
        NamespaceCommand,
        ListCommand,
        LsubCommand,
        StatusCommand,
        AppendCommand,
        IdleCommand,
        NotifyCommand,
        CompressCommand,
    }
)
_SELECTED: frozenset[type] = frozenset(
    {
        CheckCommand,
        CloseCommand,
        UnselectCommand,
        ExpungeCommand,
        SearchCommand,
        FetchCommand,
        StoreCommand,
        CopyCommand,
        MoveCommand,
    }
)


@dataclass(slots=True)
class SessionState:
    """Where one connection is; the session calls the transition methods, never assigns."""

    state: ConnState = ConnState.NOT_AUTHENTICATED
    sub: SubState = SubState.NONE

    def check(self, cmd: Command) -> None:
        """Raise StateError if `cmd` may not run now (RFC 3501 6.1-6.4)."""
        t = type(cmd)
        if self.state is ConnState.LOGOUT:
            raise StateError("connection is logging out")
        if self.sub is not SubState.NONE:
            raise StateError(f"expected a {self.sub.value} continuation line")
        if t in _ANY:
            return
        if t in _NOT_AUTH:
            if self.state is not ConnState.NOT_AUTHENTICATED:
                raise StateError("already authenticated")
            return
        if self.state is ConnState.NOT_AUTHENTICATED:
            raise StateError("log in first")
        if t in _AUTH:
            return
        if t in _SELECTED:
            if self.state is not ConnState.SELECTED:
                raise StateError("no mailbox selected")
            return
        raise StateError("command not supported")

    # --- transitions ---
    def authenticated(self) -> None:
        assert self.state is ConnState.NOT_AUTHENTICATED
        self.state = ConnState.AUTHENTICATED
        self.sub = SubState.NONE

    def selected(self) -> None:
        assert self.state in (ConnState.AUTHENTICATED, ConnState.SELECTED)
        self.state = ConnState.SELECTED

    def deselected(self) -> None:
        if self.state is ConnState.SELECTED:
            self.state = ConnState.AUTHENTICATED

    def logout(self) -> None:
        self.state = ConnState.LOGOUT
        self.sub = SubState.NONE

    def enter_idle(self) -> None:
        assert self.sub is SubState.NONE
        self.sub = SubState.IDLE

    def enter_sasl(self) -> None:
        assert self.sub is SubState.NONE and self.state is ConnState.NOT_AUTHENTICATED
        self.sub = SubState.SASL

    def leave_sub(self) -> None:
        self.sub = SubState.NONE

    @property
    def authenticated_(self) -> bool:
        return self.state in (ConnState.AUTHENTICATED, ConnState.SELECTED)
