"""Re-export of `cpmsync.testing.cli_run`: run `python -m cpmsync.cli ...` in a subprocess."""

from cpmsync.testing.cli_run import *  # noqa: F403
from cpmsync.testing.cli_run import __all__ as __all__
