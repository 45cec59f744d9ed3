"""The verified-login cache: repeat logins skip argon2, and nothing else about passwords changes."""

from __future__ import annotations

import pytest

from cpmsync.msgstore import MessageStore, passwords


def _count_argon2(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = passwords._HASHER

    class Counting:
        def verify(self, stored: str | bytes, password: str | bytes) -> bool:
            calls[0] += 1
            return real.verify(stored, password)

    monkeypatch.setattr(passwords, "_HASHER", Counting())
    return calls


def test_a_repeat_login_with_the_right_password_does_not_run_argon2_again(
    store: MessageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_argon2(monkeypatch)
    assert store.verify_password("alice", "alice-pw")
    first = calls[0]
    assert first == 1
    for _ in range(5):
        assert store.verify_password("alice", "alice-pw")
    assert calls[0] == first


def test_wrong_passwords_are_never_served_from_the_cache(
    store: MessageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_argon2(monkeypatch)
    assert store.verify_password("alice", "alice-pw")
    for wrong in ("alice-pw ", "ALICE-PW", "", "alice-p"):
        assert not store.verify_password("alice", wrong)
    assert calls[0] == 5  # one success, then argon2 for every wrong one: guessing stays slow


def test_a_deleted_and_recreated_user_is_checked_against_the_new_password(store: MessageStore) -> None:
    assert store.verify_password("alice", "alice-pw")
    store.delete_user("alice")
    assert not store.verify_password("alice", "alice-pw")
    store.add_user("alice", "new-pw")
    assert not store.verify_password("alice", "alice-pw")
    assert store.verify_password("alice", "new-pw")
