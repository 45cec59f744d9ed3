"""mbsync (isync) as a third-party client: the configuration that mirrors an account to a Maildir."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["mbsync_config"]


def mbsync_config(
    tmp: Path, port: int, user: str, password: str, *, sync: Literal["All", "Pull"] = "All"
) -> Path:
    """Write `tmp/mbsyncrc` for the plaintext IMAP account at 127.0.0.1:`port`; every folder goes
    to the Maildir `tmp/mail` (created here). `sync`: mbsync's Sync (both ways, or pull only)."""
    mail = tmp / "mail"
    mail.mkdir()
    conf = tmp / "mbsyncrc"
    conf.write_text(
        f"""IMAPAccount cpm
Host 127.0.0.1
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore cpm-remote
Account cpm

MaildirStore cpm-local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel cpm
Far :cpm-remote:
Near :cpm-local:
Patterns *
Create Near
Sync {sync}
SyncState *
"""
    )
    return conf
