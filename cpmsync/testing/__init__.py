"""Real peers for tests, benchmarks and the demo: private Dovecot and Mosquitto, a fault proxy.

Each launcher runs the real program on a free 127.0.0.1 port in a private temp dir and stops it
cleanly; see /work/notes/test-infra.md (and the module docstrings) for usage.
"""

from cpmsync.testing.cli_run import cli_command, run_cli
from cpmsync.testing.dovecot import (
    DEFAULT_USERS,
    DovecotError,
    DovecotMissingError,
    DovecotServer,
    dovecot_available,
)
from cpmsync.testing.mosquitto import (
    MosquittoBroker,
    MosquittoError,
    MosquittoMissingError,
    mosquitto_available,
)
from cpmsync.testing.ports import free_port, port_open, wait_port
from cpmsync.testing.proxy import Direction, FaultProxy, LinkProfile, ThreadedFaultProxy, TraceEntry
from cpmsync.testing.seed import (
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
