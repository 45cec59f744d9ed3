"""`cpmsync msgstore` admin commands as an operator meets them (typer's CliRunner, real SQLite files)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cpmsync.msgstore import MessageStore
from cpmsync.msgstore.cli import app

runner = CliRunner()


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def _add(db: str, name: str = "alice", pw: str = "alice-pw") -> None:
    r = runner.invoke(app, ["user", "add", name, "--password-stdin", "--db", db], input=pw + "\n")
    assert r.exit_code == 0, r.output


def test_user_add_list_del(tmp_path: Path) -> None:
    db = _db(tmp_path)
    _add(db)
    _add(db, "bob", "bob-pw")
    r = runner.invoke(app, ["user", "list", "--db", db])
    assert r.exit_code == 0 and r.stdout.split() == ["alice", "bob"]
    with MessageStore(db) as s:
        assert s.verify_password("alice", "alice-pw")
    r = runner.invoke(app, ["user", "del", "bob", "--db", db])
    assert r.exit_code == 0
    assert runner.invoke(app, ["user", "list", "--db", db]).stdout.split() == ["alice"]


def test_user_add_twice_is_one_clear_error(tmp_path: Path) -> None:
    db = _db(tmp_path)
    _add(db)
    r = runner.invoke(app, ["user", "add", "alice", "--password-stdin", "--db", db], input="x\n")
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: user 'alice' already exists"


def test_password_only_from_stdin(tmp_path: Path) -> None:
    r = runner.invoke(app, ["user", "add", "alice", "--db", _db(tmp_path)])
    assert r.exit_code == 2 and "--password-stdin" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_seed_fills_cpm_like_folders(tmp_path: Path) -> None:
    db = _db(tmp_path)
    _add(db)
    r = runner.invoke(app, ["seed", "--user", "alice", "--folders", "300", "--messages", "3", "--db", db])
    assert r.exit_code == 0, r.output
    assert "seeded 300 folders, 900 messages" in r.stdout
    with MessageStore(db) as s:
        boxes = s.list_mailboxes("alice", "", ["*"], with_status=True)
        names = [b.name for b in boxes]
        assert "Default" in names and len(names) == 301  # + INBOX
        assert any(n.startswith("tel:+1514") for n in names)
        assert any("/" in n for n in names), "some group chats are nested"
        statuses = [b.status for b in boxes if b.name != "INBOX"]
        assert all(st is not None and st.messages == 3 for st in statuses)
        unseen = sum(st.unseen for st in statuses if st)
        assert 0 < unseen < 900  # some seen, some not
        sizes = [r.size for r in s.fetch("alice", "Default", None, with_data=True)]
        assert all(200 < n < 8000 for n in sizes)
        data = s.fetch_data("alice", "Default", 1)
        for header in (b"From:", b"To:", b"Date:", b"Subject:", b"Message-ID:", b"Conversation-ID:"):
            assert header in data
        # Every change had its own MODSEQ: HIGHESTMODSEQs are distinct across the seeded folders.
        hms = [b.highestmodseq for b in boxes]
        assert len(set(hms)) == len(hms)


def test_seed_unknown_user_is_one_clear_error(tmp_path: Path) -> None:
    args = ["seed", "--user", "nobody", "--folders", "1", "--messages", "1", "--db", _db(tmp_path)]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and r.stderr.strip() == "error: no such user 'nobody'"


def test_set_nomodseq_and_clear(tmp_path: Path) -> None:
    db = _db(tmp_path)
    _add(db)
    r = runner.invoke(app, ["mailbox", "set-nomodseq", "--user", "alice", "INBOX", "--db", db])
    assert r.exit_code == 0, r.output
    with MessageStore(db) as s:
        assert s.status("alice", "INBOX").nomodseq
        assert s.list_changed_since("alice", 0) == []
    r = runner.invoke(app, ["mailbox", "set-nomodseq", "--user", "alice", "INBOX", "--clear", "--db", db])
    assert r.exit_code == 0
    with MessageStore(db) as s:
        assert not s.status("alice", "INBOX").nomodseq
    r = runner.invoke(app, ["mailbox", "set-nomodseq", "--user", "alice", "Nope", "--db", db])
    assert r.exit_code == 2 and r.stderr.strip() == "error: no such mailbox 'Nope'"


def test_broken_config_is_one_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "msgstore.toml"
    cfg.write_text("[extensions]\ncondstore = false\n")
    r = runner.invoke(app, ["user", "list", "--config", str(cfg)])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "list_changedsince requires condstore" in lines[0] and str(cfg) in lines[0]
    cfg.write_text("[store\n")
    r = runner.invoke(app, ["user", "list", "--config", str(cfg)])
    assert r.exit_code == 2 and "not valid TOML" in r.stderr and "Traceback" not in r.output


def test_unusable_db_url_is_one_clear_error(tmp_path: Path) -> None:
    r = runner.invoke(app, ["user", "list", "--db", "nosuchdb://x"])
    assert r.exit_code == 2 and r.stderr.startswith("error: database URL:")
    assert len(r.stderr.strip().splitlines()) == 1


def test_tls_make_cert_writes_a_usable_pair(tmp_path: Path) -> None:
    import ssl

    r = runner.invoke(app, ["tls", "make-cert", "--out", str(tmp_path / "tls"), "--host", "store.local"])
    assert r.exit_code == 0, r.output
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert key.stat().st_mode & 0o077 == 0  # the key is private
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)  # raises if the pair does not match


def test_serve_without_server_module_says_so_or_runs(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("cpmsync.msgstore.server") is not None:
        return  # the server exists: its own tests cover `serve`
    r = runner.invoke(app, ["serve", "--db", _db(tmp_path)])
    assert r.exit_code == 2 and "server" in r.stderr
