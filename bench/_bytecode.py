"""Child processes that load compiled bytecode, as an installed daemon does.

pip compiles every module at install, and a packaged daemon's unit (ProtectSystem=strict) could
not write bytecode anyway. This sandbox sets PYTHONDONTWRITEBYTECODE=1, so an editable checkout
recompiles cpmsync's own modules at every start (~55 ms): a cost no user pays, that would be
counted as the daemon's. Benches that time a daemon process wrap their children in this.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

__all__ = ["DAEMON_IMPORTS", "DAEMON_MODULES", "WARM_IMPORTS", "compiled_bytecode"]

DAEMON_MODULES = (
    "cpmsync.daemon.cache",
    "cpmsync.daemon.imap_client",
    "cpmsync.daemon.service",
    "cpmsync.daemon.settings",
    "cpmsync.daemon.sync_engine",
)
"""What a daemon process imports before its first sync (issue #11's start-up measure); the
timing benches' daemon children import these, and the start-up bench times them."""

DAEMON_IMPORTS = "import " + ", ".join(DAEMON_MODULES)
WARM_IMPORTS = "import cpmsync.cli; " + DAEMON_IMPORTS


@contextmanager
def compiled_bytecode(env: MutableMapping[str, str] | None = None) -> Iterator[str]:
    """`env` (default os.environ) set for children to write and read bytecode in a private
    cache, warmed by one import of the daemon's modules; restored on the way out."""
    target = os.environ if env is None else env
    saved = {k: target.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    with tempfile.TemporaryDirectory(prefix="cpmsync-pyc-") as pycache:
        target.pop("PYTHONDONTWRITEBYTECODE", None)
        target["PYTHONPYCACHEPREFIX"] = pycache
        try:
            subprocess.run([sys.executable, "-c", WARM_IMPORTS], env=dict(target), check=True)
            yield pycache
        finally:
            for k, v in saved.items():
                if v is None:
                    target.pop(k, None)
                else:
                    target[k] = v
