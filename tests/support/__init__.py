"""Test support: real peers for tests and benchmarks (private Dovecot, HAProxy, msgstore clusters,
a private Mosquitto, a fault-injecting proxy, seeding) and test-only helpers. Prefer the fixtures in
tests/conftest.py. None of it ships in the runtime package: `cpmsync demo` starts no server of its own.
"""

from tests.support.cli_run import cli_command, run_cli
from tests.support.dovecot import (
    DEFAULT_USERS,
    DovecotError,
    DovecotMissingError,
    DovecotServer,
    dovecot_available,
)
from tests.support.mosquitto import (
    MosquittoBroker,
    MosquittoError,
    MosquittoMissingError,
    mosquitto_available,
)
from tests.support.ports import free_port, port_open, wait_port
from tests.support.proxy import Direction, FaultProxy, LinkProfile, ThreadedFaultProxy, TraceEntry
from tests.support.seed import (
    SeedError,
    SeedResult,
    cpm_folder_names,
    cpm_message,
    imap_quote,
    seed_dovecot,
    seed_imap,
)

__all__ = [
    "DEFAULT_USERS",
    "Direction",
    "DovecotError",
    "DovecotMissingError",
    "DovecotServer",
    "FaultProxy",
    "LinkProfile",
    "MosquittoBroker",
    "MosquittoError",
    "MosquittoMissingError",
    "SeedError",
    "SeedResult",
    "ThreadedFaultProxy",
    "TraceEntry",
    "cli_command",
    "cpm_folder_names",
    "cpm_message",
    "dovecot_available",
    "free_port",
    "imap_quote",
    "mosquitto_available",
    "port_open",
    "run_cli",
    "seed_dovecot",
    "seed_imap",
    "wait_port",
]
