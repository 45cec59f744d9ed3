"""The per-connection state machine alone (no I/O): which commands each state admits, and that
random walks over the transitions never reach an illegal state (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpmsync.imap import (
    CapabilityCommand,
    FetchCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    NoopCommand,
    SelectCommand,
    SequenceSet,
    StartTlsCommand,
)
from cpmsync.imap.command_specs import spec_of
from cpmsync.imap.state import ConnState, SessionState, StateError, SubState

FETCH = FetchCommand("t", SequenceSet.single(1), ("FLAGS",))
LIST = ListCommand("t", "", ("*",))
LOGIN = LoginCommand("t", "u", "p")


def test_not_authenticated_admits_only_any_state_and_auth_commands() -> None:
    s = SessionState()
    for ok in (CapabilityCommand("t"), NoopCommand("t"), LOGIN, StartTlsCommand("t")):
        s.check(spec_of(ok))
    for bad in (LIST, FETCH, SelectCommand("t", "INBOX")):
        with pytest.raises(StateError):
            s.check(spec_of(bad))


def test_selected_commands_need_a_selection() -> None:
    s = SessionState()
    s.authenticated()
    s.check(spec_of(LIST))
    with pytest.raises(StateError):
        s.check(spec_of(FETCH))
    with pytest.raises(StateError):
        s.check(spec_of(LOGIN))
    s.selected()
    s.check(spec_of(FETCH))
    s.deselected()
    with pytest.raises(StateError):
        s.check(spec_of(FETCH))


def test_idle_substate_refuses_commands_until_left() -> None:
    s = SessionState()
    s.authenticated()
    s.check(spec_of(IdleCommand("t")))
    s.enter_idle()
    with pytest.raises(StateError):
        s.check(spec_of(NoopCommand("t")))
    s.leave_sub()
    s.check(spec_of(NoopCommand("t")))


def test_logout_is_final() -> None:
    s = SessionState()
    s.logout()
    with pytest.raises(StateError):
        s.check(spec_of(NoopCommand("t")))


_STEPS = st.lists(
    st.sampled_from(["login", "select", "unselect", "idle", "done", "logout", "sasl"]), max_size=30
)


@given(_STEPS)
def test_random_walks_keep_invariants(steps: list[str]) -> None:
    s = SessionState()
    for step in steps:
        try:
            if step == "login":
                s.check(spec_of(LOGIN))
                s.authenticated()
            elif step == "select":
                s.check(spec_of(SelectCommand("t", "INBOX")))
                s.selected()
            elif step == "unselect":
                s.deselected()
            elif step == "idle":
                s.check(spec_of(IdleCommand("t")))
                s.enter_idle()
            elif step == "sasl":
                s.check(spec_of(LOGIN))
                s.enter_sasl()
            elif step == "done":
                s.leave_sub()
            elif step == "logout":
                s.check(spec_of(LogoutCommand("t")))
                s.logout()
        except StateError:
            pass
        # invariants: a sub-state only while connected; SASL only before authentication
        if s.sub is SubState.SASL:
            assert s.state is ConnState.NOT_AUTHENTICATED
        if s.state is ConnState.LOGOUT:
            assert s.sub is SubState.NONE
        if s.state is ConnState.SELECTED:
            assert s.authenticated_
