"""`cpmsync msgstore ...`: run the server and administer its store (users, seed data, NOMODSEQ, TLS).

Heavy modules (SQLAlchemy, argon2, cryptography) are imported inside the commands so that
`cpmsync --help` stays fast. Every user-facing error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import ssl
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from cpmsync.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from cpmsync.msgstore.settings import MsgstoreSettings
    from cpmsync.msgstore.store import MessageStore

__all__ = ["app"]

app = typer.Typer(
    help="The reference CPM Message Store (IMAP server with LIST-CHANGEDSINCE).",
    no_args_is_help=True,
)
user_app = typer.Typer(help="Manage store users.", no_args_is_help=True)
mailbox_app = typer.Typer(help="Administer mailboxes.", no_args_is_help=True)
tls_app = typer.Typer(help="TLS helpers for local use.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(tls_app, name="tls")


@functools.cache
def _err() -> Console:
    """stderr, one error on one line (built at first use: rich stays off other commands' start-up)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


ConfigOpt = typer.Option(None, "--config", "-c", help="TOML file (see config/msgstore.toml).")
DbOpt = typer.Option(None, "--db", help="SQLAlchemy URL; default: [store] db_url, else a SQLite file.")


def _fail(message: str) -> NoReturn:
    _err().print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def _settings(config: Path | None, db: str | None = None) -> MsgstoreSettings:
    from cpmsync.msgstore.settings import load_msgstore_settings

    try:
        settings = load_msgstore_settings(config)
    except ConfigError as e:
        _fail(f"configuration: {e}")
    if db:
        settings.store.db_url = db
    return settings


def _open_store(settings: MsgstoreSettings) -> MessageStore:
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from cpmsync.msgstore.store import MessageStore

    try:
        return MessageStore.from_settings(settings)
    except ConfigError as e:
        _fail(f"configuration: {e}")
    except ArgumentError as e:
        _fail(f"database URL: {e}")
    except ModuleNotFoundError as e:
        _fail(f"database driver not installed: {e.name} (for PostgreSQL: pip install 'cpmsync[postgres]')")
    except (SQLAlchemyError, OSError) as e:
        _fail(f"cannot open the store at {_safe_url(settings.store.db_url)}: {_one_line(e)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    if not url:
        return "the default location"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured URL"


def _one_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return str(orig or e).strip().splitlines()[0] if str(orig or e).strip() else type(e).__name__


# ---------------------------------------------------------------- serve


@app.command()
def serve(
    config: Path | None = ConfigOpt,
    listen: list[str] = typer.Option(
        [], "--listen", help="HOST:PORT to listen on (repeatable); replaces the config file's server.listen."
    ),
    db: str | None = DbOpt,
) -> None:
    """Run the IMAP server until SIGTERM/SIGINT."""
    # >>> server helper: the IMAP server lives in cpmsync/msgstore/server.py (serve_forever(settings)).
    settings = _settings(config, db)
    if listen:
        from cpmsync.msgstore.settings import parse_hostport

        for item in listen:
            try:
                parse_hostport(item)
            except ValueError as e:
                _fail(f"--listen: {e}")
        settings.server.listen = list(listen)
    from cpmsync.msgstore.server import serve_forever

    _open_store(settings).close()  # a bad URL or driver fails here with one clear line
    try:
        serve_forever(settings)
    except ConfigError as e:
        _fail(f"configuration: {e}")
    except ssl.SSLError as e:
        _fail(f"TLS certificate/key: {e}")
    except OSError as e:
        where = ", ".join(settings.server.listen + settings.server.tls_listen)
        _fail(f"cannot listen on {where}: {e.strerror or e}")
    except KeyboardInterrupt:
        pass
    # <<< server helper


# ---------------------------------------------------------------- users


def _read_password(password_stdin: bool) -> str:
    if not password_stdin:
        _fail("give the password on standard input with --password-stdin (never on the command line)")
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        _fail("empty password on standard input")
    return password


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="User name (the IMAP login)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    db: str | None = DbOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Add a user (with an INBOX); the password is stored argon2id-hashed."""
    from cpmsync.msgstore.errors import StoreError

    password = _read_password(password_stdin)
    store = _open_store(_settings(config, db))
    try:
        store.add_user(name, password)
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    typer.echo(f"user {name} added")


@user_app.command("del")
def user_del(
    name: str = typer.Argument(..., help="User to delete with all their mail."),
    db: str | None = DbOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Delete a user and all their mailboxes and messages."""
    from cpmsync.msgstore.errors import StoreError

    store = _open_store(_settings(config, db))
    try:
        store.delete_user(name)
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    typer.echo(f"user {name} deleted")


@user_app.command("list")
def user_list(db: str | None = DbOpt, config: Path | None = ConfigOpt) -> None:
    """List users, one per line."""
    store = _open_store(_settings(config, db))
    try:
        for name in store.list_users():
            typer.echo(name)
    finally:
        store.close()


# ---------------------------------------------------------------- seed


@app.command()
def seed(
    user: str = typer.Option(..., "--user", help="Existing user to fill."),
    folders: int = typer.Option(..., "--folders", min=1, help="Number of conversation folders."),
    messages: int = typer.Option(..., "--messages", min=0, help="Messages per folder."),
    random_seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same data)."),
    db: str | None = DbOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Fill an account with CPM-like conversations (Default, tel:..., UUID group chats, nested)."""
    from cpmsync.msgstore.errors import StoreError
    from cpmsync.msgstore.seed import seed_with_progress

    store = _open_store(_settings(config, db))
    started = time.perf_counter()
    try:
        store.user_highest_modseq(user)  # fail before drawing a progress bar
        result = seed_with_progress(_err(), store, user, folders, messages, seed=random_seed)
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    typer.echo(
        f"seeded {len(result.folders)} folders, {result.messages} messages for {user} in {elapsed:.1f} s"
    )


# ---------------------------------------------------------------- mailbox


@mailbox_app.command("set-nomodseq")
def mailbox_set_nomodseq(
    mailbox: str = typer.Argument(..., help="Mailbox name."),
    user: str = typer.Option(..., "--user", help="Owner of the mailbox."),
    clear: bool = typer.Option(False, "--clear", help="Remove NOMODSEQ again."),
    db: str | None = DbOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Mark a mailbox NOMODSEQ (CR Appendix I.5: never listed by CHANGEDSINCE)."""
    from cpmsync.msgstore.errors import StoreError

    store = _open_store(_settings(config, db))
    try:
        store.set_nomodseq(user, mailbox, not clear)
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    typer.echo(f"{mailbox}: NOMODSEQ {'cleared' if clear else 'set'}")


# ---------------------------------------------------------------- tls


@tls_app.command("make-cert")
def tls_make_cert(
    out: Path = typer.Option(..., "--out", help="Directory for cert.pem and key.pem."),
    host: str = typer.Option("localhost", "--host", help="Host name for the certificate."),
) -> None:
    """Write a self-signed certificate and key for local testing."""
    from cpmsync.msgstore.tls_cert import make_self_signed

    try:
        cert, key = make_self_signed(out, host)
    except OSError as e:
        _fail(f"cannot write to {out}: {e.strerror}")
    typer.echo(f"certificate {cert}\nkey         {key}")
    typer.echo(f"[server] tls_cert_file = {str(cert)!r}, tls_key_file = {str(key)!r}")
