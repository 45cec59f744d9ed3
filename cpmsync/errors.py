"""The errors a user's input causes, which the CLI prints as one line instead of a traceback.

A module of their own, without pydantic, so `cpmsync` can catch them without importing what
the configuration needs (`cpmsync.config` re-exports both).
"""

from __future__ import annotations

__all__ = ["ConfigError", "UserInputError"]


class UserInputError(Exception):
    """Something the user gave us is unusable; the CLI prints `label: message`, never a traceback."""

    label = "error"


class ConfigError(UserInputError):
    """A configuration file or environment override is unusable; the message says where and why."""

    label = "configuration error"
