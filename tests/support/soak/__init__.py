"""The differential soak: a real daemon process, a private Mosquitto, a real peer, a change stream.

Another client makes seeded random changes (APPEND, flag changes, EXPUNGE, MOVE, CREATE, RENAME,
DELETE, DELETE + CREATE of the same name) at a steady rate over hundreds of folders while a fault
hits the daemon (SIGKILL + restart), the broker (restart) or the daemon's IMAP connection (cut by
the fault proxy, which sits in front of the real peer for that reason). The peer is msgstore,
Dovecot, or two msgstore instances on one PostgreSQL with the daemon on one and the change stream
on the other (`CLUSTER_PEER`). When the stream stops the
daemon must converge, within a bound, to exactly the server's state in its cache, in the retained
folder summaries and in the events, with an event for every change (see checks.py).

Used by tests/daemon/test_soak.py (short) and bench/bench_soak.py (long, with figures).
"""

from tests.support.soak.procs import ALL_PEERS, CLUSTER_PEER, PEERS
from tests.support.soak.run import FAULTS, BurstResult, SoakResult, percentile, run_bursts, run_soak

__all__ = [
    "ALL_PEERS",
    "CLUSTER_PEER",
    "FAULTS",
    "PEERS",
    "BurstResult",
    "SoakResult",
    "percentile",
    "run_bursts",
    "run_soak",
]
