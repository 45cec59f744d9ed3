"""A real IMAP peer a test talks to: where it listens and the user it logs in as."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImapPeer"]


@dataclass(frozen=True, slots=True)
class ImapPeer:
    name: str  # "msgstore" or "dovecot"
    host: str
    port: int
    user: str
    password: str
