"""Re-export of `cpmsync.testing.ports`."""

from cpmsync.testing.ports import *  # noqa: F403
from cpmsync.testing.ports import __all__ as __all__
