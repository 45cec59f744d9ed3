"""The RFC 3501 connection state machine (section 3), apart from I/O like h11's `_state.py`.

States: not authenticated -> authenticated <-> selected -> logout. IDLE and a SASL exchange are
sub-states in which only one kind of line (DONE / a SASL response) is accepted. Which states admit
a command is declared with the command (`command_specs`); every transition is a named method, so
the legal paths are readable in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .command_specs import CommandSpec

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


@dataclass(slots=True)
class SessionState:
    """Where one connection is; the session calls the transition methods, never assigns."""

    state: ConnState = ConnState.NOT_AUTHENTICATED
    sub: SubState = SubState.NONE
    mailbox: str | None = None
    """The selected mailbox's name where the side knows it (the client, from its own SELECT)."""

    def check(self, spec: CommandSpec) -> None:
        """Raise StateError if the command of `spec` may not run now (RFC 3501 6.1-6.4)."""
        if self.state is ConnState.LOGOUT:
            raise StateError("connection is logging out")
        if self.sub is not SubState.NONE:
            raise StateError(f"expected a {self.sub.value} continuation line")
        allowed = spec.states
        if self.state in allowed:
            return
        if self.state is not ConnState.NOT_AUTHENTICATED and ConnState.NOT_AUTHENTICATED in allowed:
            raise StateError("already authenticated")
        if self.state is ConnState.NOT_AUTHENTICATED:
            raise StateError("log in first")
        raise StateError("no mailbox selected")

    # --- transitions ---
    def authenticated(self) -> None:
        assert self.state is ConnState.NOT_AUTHENTICATED
        self.state = ConnState.AUTHENTICATED
        self.sub = SubState.NONE

    def selected(self, mailbox: str | None = None) -> None:
        assert self.state in (ConnState.AUTHENTICATED, ConnState.SELECTED)
        self.state = ConnState.SELECTED
        self.mailbox = mailbox

    def deselected(self) -> None:
        if self.state is ConnState.SELECTED:
            self.state = ConnState.AUTHENTICATED
        self.mailbox = None

    def logout(self) -> None:
        self.state = ConnState.LOGOUT
        self.sub = SubState.NONE
        self.mailbox = None

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
