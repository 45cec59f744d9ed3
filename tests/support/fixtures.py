"""Start helpers behind the shared fixtures: a missing or broken peer FAILS the test, with the reason.

A silent skip would let CI go green without ever talking to the real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from tests.support import DovecotError, DovecotServer, MosquittoBroker, MosquittoError

__all__ = ["DovecotAccount", "start_broker_or_fail", "start_dovecot_or_fail"]


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def start_dovecot_or_fail(**kwargs: Any) -> DovecotServer:
    """A started DovecotServer, or a test failure naming the package to install."""
    try:
        return DovecotServer(**kwargs).start()
    except DovecotError as e:  # DovecotMissingError included
        _fail(str(e))


def start_broker_or_fail(**kwargs: Any) -> MosquittoBroker:
    """A started MosquittoBroker, or a test failure naming the package to install."""
    try:
        return MosquittoBroker(**kwargs).start()
    except MosquittoError as e:
        _fail(str(e))


@dataclass(frozen=True)
class DovecotAccount:
    """A fresh user on the shared Dovecot: nobody else's mail, no server start-up cost."""

    server: DovecotServer
    user: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port
