"""A private Dovecot IMAP server for tests and benchmarks.

Dovecot is the real-world peer cpmsync measures against (CONDSTORE, QRESYNC, LIST-STATUS, NOTIFY,
no LIST-CHANGEDSINCE). Each `DovecotServer` writes its own dovecot.conf into a temp dir (base_dir,
state, logs, mail all inside it), listens on a free 127.0.0.1 port with plaintext auth, and is
stopped with SIGTERM. The system-wide Dovecot is never used or started.

Running as root (as CI containers do): Dovecot refuses uid 0 for mail and for login processes, so
mail is owned by `nobody`, login processes run as `dovenull` and internal ones as `dovecot`
(the users Debian's package creates), falling back to `nobody` when those are missing.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from tests.support.ports import free_port
from tests.support.processes import (
    PrivateServer,
    group_members,
    scratch_dir,
    start_process,
    stop_process,
    tail,
)

__all__ = [
    "DEFAULT_USERS",
    "DOVEADM_BIN",
    "DOVECOT_BIN",
    "DOVECOT_CAPABILITIES",
    "DovecotError",
    "DovecotMissingError",
    "DovecotServer",
    "dovecot_available",
]

DOVECOT_BIN = os.environ.get("CPMSYNC_TEST_DOVECOT", "/usr/sbin/dovecot")
DOVEADM_BIN = os.environ.get("CPMSYNC_TEST_DOVEADM", shutil.which("doveadm") or "/usr/bin/doveadm")

DEFAULT_USERS: Mapping[str, str] = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

MailFormat = Literal["sdbox", "maildir"]

# Dovecot 2.3.19's post-login CAPABILITY with this configuration; `drop_capabilities` removes from it.
DOVECOT_CAPABILITIES: tuple[str, ...] = tuple(
    (
        "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
        "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
        "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
        "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY "
        "COMPRESS=DEFLATE"
    ).split()
)


class DovecotError(RuntimeError):
    """Dovecot could not be started or a doveadm command failed; the message carries the log tail."""


class DovecotMissingError(DovecotError):
    """The dovecot binaries are not installed."""


def dovecot_available() -> bool:
    """True if both dovecot and doveadm are installed where we look for them."""
    return os.access(DOVECOT_BIN, os.X_OK) and os.access(DOVEADM_BIN, os.X_OK)


def _check_user(name: str, password: str) -> None:
    # Dovecot's default auth_username_chars, minus a leading dot (our passwd files are per user).
    bad_name = re.fullmatch(r"[A-Za-z0-9_@-][A-Za-z0-9._@-]*", name) is None
    if bad_name or any(c in password for c in ":\n\r"):
        raise ValueError(f"user name/password unusable in a passwd-file: {name!r}")


def _missing_message() -> str:
    return (
        f"Dovecot is required but {DOVECOT_BIN} / {DOVEADM_BIN} is missing: "
        "install it with `apt-get install dovecot-imapd` (CI installs it), "
        "or point CPMSYNC_TEST_DOVECOT / CPMSYNC_TEST_DOVEADM at the binaries."
    )


@dataclass(frozen=True)
class _Identity:
    """Which accounts Dovecot's processes and mail files use."""

    mail_uid: int
    mail_gid: int
    internal_user: str
    internal_group: str
    login_user: str


def _user_or(name: str, fallback: str) -> str:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return fallback


def _identity() -> _Identity:
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        return _Identity(os.geteuid(), os.getegid(), me, group, me)
    try:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        uid = gid = 65534
    internal = _user_or("dovecot", "nobody")
    internal_group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
    return _Identity(uid, gid, internal, internal_group, _user_or("dovenull", "nobody"))


class DovecotServer(PrivateServer):
    """A private Dovecot on 127.0.0.1: `with DovecotServer() as dv: imaplib.IMAP4(dv.host, dv.port)`.

    users: name → password (plaintext, stored `{PLAIN}` in a passwd-file; these are test accounts).
    idle_notify_interval_s: Dovecot's `imap_idle_notify_interval`, the unsolicited "* OK Still here"
    during IDLE (Dovecot's default is 120 s).
    mail_format: sdbox (default: fastest to seed and to LIST-STATUS here) or maildir.
    extra_conf: appended verbatim to dovecot.conf, for settings a test needs.
    drop_capabilities: capabilities not to advertise (e.g. ("NOTIFY",) or ("QRESYNC", "CONDSTORE")),
    to meet a client's fallback paths with a real server. Dovecot still accepts the commands;
    only the CAPABILITY list changes (its `imap_capability` setting).
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        tmp_dir: Path | str | None = None,
        idle_notify_interval_s: int = 120,
        mail_format: MailFormat = "sdbox",
        max_user_connections: int = 1000,
        mail_debug: bool = False,
        extra_conf: str = "",
        drop_capabilities: Sequence[str] = (),
        start_timeout_s: float = 15.0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.users: dict[str, str] = dict(users if users is not None else DEFAULT_USERS)
        for name, password in self.users.items():
            _check_user(name, password)
        self.idle_notify_interval_s = idle_notify_interval_s
        self.mail_format: MailFormat = mail_format
        self.max_user_connections = max_user_connections
        self.mail_debug = mail_debug
        self.extra_conf = extra_conf
        self.drop_capabilities = tuple(c.upper() for c in drop_capabilities)
        unknown = set(self.drop_capabilities) - {c.upper() for c in DOVECOT_CAPABILITIES}
        if unknown:
            raise ValueError(f"not among Dovecot's capabilities: {sorted(unknown)}")
        self.start_timeout_s = start_timeout_s
        self._own_tmp = tmp_dir is None
        self.root = scratch_dir("cpmsync-dovecot-") if tmp_dir is None else Path(tmp_dir)
        self.conf_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.passwd_dir = self.root / "passwd.d"
        self._proc: subprocess.Popen[bytes] | None = None
        self._identity = _identity()
        self._user_settings: dict[str, dict[str, str]] = {}

    # -- paths -------------------------------------------------------------------------------

    def home(self, user: str) -> Path:
        """The user's home directory; mail lives in its `mail/` subdirectory."""
        return self.root / "home" / user

    def mail_root(self, user: str) -> Path:
        return self.home(user) / "mail"

    def password(self, user: str) -> str:
        return self.users[user]

    def add_user(self, name: str, password: str) -> None:
        """Add an account, also to a running server (one passwd file per user, looked up per login)."""
        _check_user(name, password)
        self.users[name] = password
        if self.conf_path.exists():
            self._write_user(name, name, self._user_settings.get(name, {}))

    def set_user_settings(self, user: str, settings: Mapping[str, str]) -> None:
        """Per-user Dovecot setting overrides (userdb extra fields), used by the user's next logins.

        An empty mapping removes them. Example: {"mailbox_list_index": "no"} while seeding.
        """
        if user not in self.users:
            raise KeyError(user)
        for key, value in settings.items():
            if not value or any(c.isspace() for c in key + value):
                raise ValueError(f"{key}={value!r}: no spaces in passwd-file fields: '5s', not '5 secs'")
        before = self._user_settings.get(user, {})
        self._user_settings[user] = dict(settings)
        if self.conf_path.exists():
            self._write_user(user, user, settings)
        if self.running:
            self._await_userdb(user, set(before) | set(settings))

    def _await_userdb(self, user: str, keys: set[str], timeout_s: float = 5.0) -> None:
        """Wait until Dovecot's auth process serves the new userdb fields.

        It re-reads a changed passwd file only on a later lookup, up to a second after the change,
        so a login right after the rewrite could still get the old settings.
        """
        want = {k: v for k, v in self._user_settings.get(user, {}).items() if k in keys}
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.doveadm("user", user, check=False).stdout.decode("utf-8", "replace")
            fields = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
            if {k: fields.get(k) for k in keys} == {k: want.get(k) for k in keys}:
                return
            if time.monotonic() >= deadline:
                raise DovecotError(f"Dovecot still serves old settings for {user}: {fields}")
            time.sleep(0.05)

    def user_settings(self, user: str) -> dict[str, str]:
        return dict(self._user_settings.get(user, {}))

    def drop_list_index(self, user: str) -> None:
        """Delete the user's mailbox list index; Dovecot rebuilds it from the mail directory.

        The list index is a cache (Dovecot's docs: index files can be deleted safely); dropping it
        after mailboxes were created behind its back makes the next session see all of them.
        """
        for path in self.mail_root(user).glob("dovecot.list.index*"):
            path.unlink(missing_ok=True)

    # -- configuration -----------------------------------------------------------------------

    def _write_files(self) -> None:
        ident = self._identity
        # Unprivileged Dovecot processes (login, auth) must traverse to base_dir and the passwd file.
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self._write_passwd()
        location = "sdbox:~/mail" if self.mail_format == "sdbox" else "maildir:~/mail"
        self.conf_path.write_text(
            _CONF_TEMPLATE.format(
                root=self.root,
                instance=f"cpmsync-test-{self.port}",
                port=self.port,
                log=self.log_path,
                passwd=self.passwd_dir,
                location=location,
                mail_uid=ident.mail_uid,
                mail_gid=ident.mail_gid,
                first_valid_uid=min(ident.mail_uid, 500),
                first_valid_gid=min(ident.mail_gid, 500),
                internal_user=ident.internal_user,
                internal_group=ident.internal_group,
                login_user=ident.login_user,
                idle_notify_interval_s=self.idle_notify_interval_s,
                max_user_connections=self.max_user_connections,
                mail_debug="yes" if self.mail_debug else "no",
                extra=self._capability_conf() + self.extra_conf,
            )
        )

    def _capability_conf(self) -> str:
        if not self.drop_capabilities:
            return ""
        kept = [c for c in DOVECOT_CAPABILITIES if c.upper() not in self.drop_capabilities]
        return f"imap_capability = {' '.join(kept)}\n"

    def _write_passwd(self) -> None:
        self.passwd_dir.mkdir(exist_ok=True)
        self.passwd_dir.chmod(0o755)
        for name in self.users:
            self._write_user(name, name, self._user_settings.get(name, {}))

    def _write_user(self, login: str, user: str, settings: Mapping[str, str]) -> None:
        """One passwd file per login (the configured path has %u): new logins work without a reload."""
        ident = self._identity
        home = self.home(user)
        home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(home, ident.mail_uid, ident.mail_gid)
        extra = " ".join(f"userdb_{k}={v}" for k, v in settings.items())
        password = self.users[user]
        line = f"{login}:{{PLAIN}}{password}:{ident.mail_uid}:{ident.mail_gid}::{home}::{extra}\n"
        tmp = self.passwd_dir / f".{login}.new"
        tmp.write_text(line)
        tmp.chmod(0o644)
        tmp.replace(self.passwd_dir / login)

    def bulk_login(self, user: str) -> str:
        """A second login name for `user`'s mailboxes whose sessions run without the mailbox list index.

        For bulk APPENDs to many folders (the seeder): with the list index on, Dovecot rewrites it
        on every APPEND to another folder. A separate login, not a changed setting, because Dovecot's
        auth process notices a rewritten passwd file only up to a second later. Call
        `drop_list_index(user)` afterwards so the user's next session rebuilds the index.
        """
        login = f"{user}.bulk-login"
        if not (self.passwd_dir / login).exists():
            self._write_user(login, user, {**self._user_settings.get(user, {}), "mailbox_list_index": "no"})
        return login

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Write the config, start `dovecot -F`, and return once the IMAP greeting arrives."""
        if not dovecot_available():
            self.close()
            raise DovecotMissingError(_missing_message())
        if self.running:
            return self
        self._write_files()
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = start_process([DOVECOT_BIN, "-F", "-c", str(self.conf_path)], self.root / "stdout.log")
        try:
            self._wait_greeting(log_start)
        except BaseException:
            self.close()  # the error carries the log tail
            raise
        return self

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_greeting(self, log_start: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with {self._proc.returncode} during start-up:\n"
                    f"{tail(self.root / 'stdout.log')}{tail(self.log_path)}"
                )
            log = self._log_since(log_start)
            if "Fatal:" in log:
                raise DovecotError(f"dovecot failed to start on {self.host}:{self.port}:\n{log[-4000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as s:
                    greeting = s.makefile("rb").readline()
                if greeting.startswith(b"* OK"):
                    return
                last_error = f"unexpected greeting {greeting!r}"
            except OSError as e:
                last_error = str(e)
            time.sleep(0.02)
        raise DovecotError(
            f"dovecot gave no IMAP greeting on {self.host}:{self.port} within {self.start_timeout_s:g} s "
            f"({last_error}):\n{tail(self.log_path)}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the master, then its children; wait until all of them are gone.

        Left alone, Dovecot's master waits ~1 s on a timer before it ends busy imap processes and
        its log process, then exits. Sending SIGTERM to the children ourselves (imap processes say
        "Server shutting down" to their clients) and SIGKILL to the master once it has no child left
        (it only had its private dir to clean, which we delete) makes a stop take ~0.05 s instead of
        ~1 s, which matters for a suite starting a Dovecot per test.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.03)
            deadline = time.monotonic() + timeout_s
            signalled: set[int] = set()
            while proc.poll() is None and time.monotonic() < deadline:
                others = [pid for pid in group_members(proc.pid) if pid != proc.pid]
                if not others:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                for pid in others:
                    if pid not in signalled:
                        signalled.add(pid)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.01)
        stop_process(proc, timeout_s=timeout_s)
        self._proc = None

    # -- doveadm -----------------------------------------------------------------------------

    def doveadm(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout_s: float = 300.0
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `doveadm -c <private conf> *args` (e.g. "mailbox", "create", "-u", "alice", "Foo")."""
        return self._doveadm([], args, input=input, check=check, timeout_s=timeout_s)

    def _doveadm(
        self,
        options: Sequence[str],
        args: Sequence[str],
        *,
        input: bytes | None = None,
        check: bool = True,
        timeout_s: float = 300.0,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [DOVEADM_BIN, *options, "-c", str(self.conf_path), *args]
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout_s, check=False)
        if check and proc.returncode != 0:
            raise DovecotError(
                f"doveadm {' '.join(args[:4])} … failed ({proc.returncode}): "
                f"{proc.stderr.decode('utf-8', 'replace').strip()}"
            )
        return proc

    def create_mailboxes(self, user: str, names: Sequence[str], batch: int = 1000) -> None:
        """Create many mailboxes fast with doveadm.

        Dovecot rewrites its mailbox list index on each create, so creating N mailboxes with the
        index on costs O(N²) (2,000 folders: ~12 s). With `mailbox_list_index=no` for the doveadm
        run it is linear (10,000 folders: ~5 s); the server rebuilds the index on its next LIST.
        """
        for i in range(0, len(names), batch):
            self._doveadm(
                ["-o", "mailbox_list_index=no"], ["mailbox", "create", "-u", user, *names[i : i + batch]]
            )

    def list_mailboxes(self, user: str) -> list[str]:
        out = self.doveadm("mailbox", "list", "-u", user).stdout.decode("utf-8")
        return [line for line in out.splitlines() if line]

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"DovecotServer({self.host}:{self.port}, {state}, root={self.root})"


_CONF_TEMPLATE = """\
# Written by tests.support.dovecot for one private test server. Not for production.
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
log_path = {log}
info_log_path = {log}
debug_log_path = {log}
mail_debug = {mail_debug}

listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
login_greeting = Dovecot (cpmsync test) ready.

default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {first_valid_uid}
first_valid_gid = {first_valid_gid}
mail_uid = {mail_uid}
mail_gid = {mail_gid}

mail_location = {location}
# Test data: durability across power loss is not needed, speed is.
mail_fsync = never
mail_max_userip_connections = {max_user_connections}
mail_plugins = notify
imap_idle_notify_interval = {idle_notify_interval_s} secs

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}

# No chroot: a non-root user cannot chroot, and a test server gains nothing from it.
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}

protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
  mail_max_userip_connections = {max_user_connections}
}}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}/%u
}}

{extra}
"""
