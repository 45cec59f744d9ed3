"""Re-export of `cpmsync.testing.seed` (fast CPM-like seeding of an IMAP account)."""

from cpmsync.testing.seed import *  # noqa: F403
from cpmsync.testing.seed import __all__ as __all__
