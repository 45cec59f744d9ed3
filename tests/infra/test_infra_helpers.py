"""Ports, the CLI runner and the CPM-like data generator."""

from __future__ import annotations

import socket

import pytest

from tests.support import cpm_folder_names, cpm_message, free_port, port_open, run_cli, wait_port


def test_free_port_can_be_bound_and_wait_port_sees_a_listener() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        wait_port("127.0.0.1", port, timeout_s=5)
        assert port_open("127.0.0.1", port)


def test_wait_port_gives_up_with_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        wait_port("127.0.0.1", port, timeout_s=0.1)


def test_run_cli_runs_the_installed_command() -> None:
    result = run_cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("cpmsync ")
    # and which build runs: a speed report needs it
    assert "codec compiled with mypyc" in result.stdout or "codec in pure Python" in result.stdout


def test_run_cli_passes_environment_overrides() -> None:
    result = run_cli(["--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.returncode == 0
    assert "msgstore" in result.stdout


def test_folder_names_are_distinct_deterministic_and_parents_come_first() -> None:
    names = cpm_folder_names(500, seed=7)
    assert len(names) == len(set(names)) == 500
    assert names == cpm_folder_names(500, seed=7)
    assert names != cpm_folder_names(500, seed=8)
    assert names[0] == "Default"
    assert any(n.startswith("tel:+1") for n in names)
    assert any(n.count("-") == 4 for n in names)  # UUID group chats
    for i, name in enumerate(names):
        if "/" in name:
            assert name.rsplit("/", 1)[0] in names[:i]


def test_messages_look_like_cpm_chat_messages() -> None:
    import random

    msg = cpm_message(random.Random(1), "tel:+15143457900", 3)
    head, _, body = msg.partition(b"\r\n\r\n")
    assert b"From: <tel:+15143457900>" in head
    assert b"Message-ID: <" in head and b"Conversation-ID: " in head
    assert 100 < len(msg) < 8000
    assert body.endswith(b"\r\n")
    assert b"\n" not in msg.replace(b"\r\n", b"")
