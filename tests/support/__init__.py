"""Test support: re-exports of `cpmsync.testing` (the launchers live in the package so benches and
the demo can use them too) plus test-only helpers. Prefer the fixtures in tests/conftest.py."""

from cpmsync.testing import *  # noqa: F403
from cpmsync.testing import __all__ as _testing_all

__all__ = list(_testing_all)
