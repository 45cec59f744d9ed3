"""Re-export of `cpmsync.testing.dovecot`."""

from cpmsync.testing.dovecot import *  # noqa: F403
from cpmsync.testing.dovecot import __all__ as __all__
