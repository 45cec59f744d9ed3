"""Fixtures shared by every component's tests: real peers on private ports.

Policy: a test that needs Dovecot uses the `dovecot` fixture (or `dovecot_factory`,
`dovecot_account`); if dovecot-imapd is not installed the test FAILS with an install hint, it is
never silently skipped. Such tests get the `dovecot` marker automatically, so
`pytest -m "not dovecot"` deselects them openly. Mosquitto works the same way.
See /work/notes/test-infra.md.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# CI runs on a shared 2-core machine next to the suite's own servers: a starved example must not
# fail a property as DeadlineExceeded. Deadlines are a speed check, and speed is bench/'s job.
settings.register_profile(
    "cpmsync", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("cpmsync")

# `from tests.support import ...` must work however pytest was started (plain `pytest` puts only
# tests/ on sys.path).
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.support import DovecotServer, FaultProxy, MosquittoBroker  # noqa: E402
from tests.support.fixtures import DovecotAccount, start_broker_or_fail, start_dovecot_or_fail  # noqa: E402
from tests.support.peers import ImapPeer  # noqa: E402
from tests.support.processes import tail  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run the suite against compiled modules older than their source (an editable
    install edited or checked out after `pip install -e .`): every test would run the old code."""
    from cpmsync import native

    if any(b.stale for b in native.builds()):
        pytest.exit(f"{native.summary()}: rebuild before testing", returncode=4)


_DOVECOT_FIXTURES = {"dovecot", "dovecot_factory", "shared_dovecot", "dovecot_account"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _DOVECOT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dovecot)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Remember the outcome so fixtures can print a server's log when the test failed.
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def _failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(_FAILED, False)


def _show_log(request: pytest.FixtureRequest, name: str, log: Path) -> None:
    if _failed(request):
        print(f"\n----- {name} log ({log}) -----\n{tail(log, 6000)}")


@pytest.fixture
def dovecot(request: pytest.FixtureRequest) -> Iterator[DovecotServer]:
    """A private Dovecot (users alice/bob/carol, see DEFAULT_USERS), stopped after the test."""
    server = start_dovecot_or_fail()
    try:
        yield server
    finally:
        _show_log(request, "dovecot", server.log_path)
        server.close()


@pytest.fixture
def dovecot_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., DovecotServer]]:
    """`dovecot_factory(idle_notify_interval_s=5, users={...})` → a started DovecotServer."""
    made: list[DovecotServer] = []

    def make(**kwargs: Any) -> DovecotServer:
        server = start_dovecot_or_fail(**kwargs)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            _show_log(request, "dovecot", server.log_path)
            server.close()


@pytest.fixture(scope="session")
def shared_dovecot() -> Iterator[DovecotServer]:
    """One Dovecot for the whole session; use it through `dovecot_account` for isolation."""
    server = start_dovecot_or_fail()
    try:
        yield server
    finally:
        server.close()


_account_ids = itertools.count(1)


@pytest.fixture
def dovecot_account(
    request: pytest.FixtureRequest, shared_dovecot: DovecotServer
) -> Iterator[DovecotAccount]:
    """A new, empty account on the session's Dovecot."""
    n = next(_account_ids)
    user, password = f"user{n}", f"user{n}-pw"
    shared_dovecot.add_user(user, password)
    yield DovecotAccount(shared_dovecot, user, password)
    if _failed(request):
        mine = [
            line
            for line in tail(shared_dovecot.log_path, 200_000).splitlines()
            if f"({user})" in line or f"user=<{user}>" in line
        ]
        print(f"\n----- shared dovecot log, lines of {user} -----\n" + "\n".join(mine[-80:]))


@pytest.fixture
def mqtt_broker(request: pytest.FixtureRequest) -> Iterator[MosquittoBroker]:
    """A private Mosquitto (anonymous, persistence off), stopped after the test."""
    broker = start_broker_or_fail()
    try:
        yield broker
    finally:
        _show_log(request, "mosquitto", broker.log_path)
        broker.close()


@pytest.fixture
def mqtt_broker_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., MosquittoBroker]]:
    """`mqtt_broker_factory(persistence=True)` → a started MosquittoBroker."""
    made: list[MosquittoBroker] = []

    def make(**kwargs: Any) -> MosquittoBroker:
        broker = start_broker_or_fail(**kwargs)
        made.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in made:
            _show_log(request, "mosquitto", broker.log_path)
            broker.close()


@pytest.fixture
async def fault_proxy_factory() -> AsyncIterator[Callable[..., Awaitable[FaultProxy]]]:
    """`px = await fault_proxy_factory(host, port)` → a started FaultProxy, closed after the test."""
    made: list[FaultProxy] = []

    async def make(target_host: str, target_port: int, **kwargs: Any) -> FaultProxy:
        proxy = await FaultProxy(target_host, target_port, **kwargs).start()
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            await proxy.aclose()


@pytest.fixture(params=["msgstore", "dovecot"])
def imap_peer(request: pytest.FixtureRequest) -> Iterator[ImapPeer]:
    """Each real IMAP peer in turn, empty, with one user: our msgstore (in a thread) and Dovecot.

    For behaviour a client relies on: the same test against both, so msgstore cannot hide a client
    bug that Dovecot would show."""
    if request.param == "dovecot":
        acct: DovecotAccount = request.getfixturevalue("dovecot_account")
        yield ImapPeer("dovecot", acct.host, acct.port, acct.user, acct.password)
        return
    from tests.msgstore.server_testlib import USERS, ThreadServer, make_settings

    with ThreadServer(make_settings()) as srv:
        yield ImapPeer("msgstore", "127.0.0.1", srv.port, "alice", USERS["alice"])
