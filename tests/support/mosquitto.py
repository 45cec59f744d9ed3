"""Re-export of `cpmsync.testing.mosquitto`."""

from cpmsync.testing.mosquitto import *  # noqa: F403
from cpmsync.testing.mosquitto import __all__ as __all__
