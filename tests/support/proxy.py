"""Re-export of `cpmsync.testing.proxy`."""

from cpmsync.testing.proxy import *  # noqa: F403
from cpmsync.testing.proxy import __all__ as __all__
