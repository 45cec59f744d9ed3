"""Dovecot's imaptest scripted compliance suite against msgstore, and against a private Dovecot in
the same test, so that a failure that is the tool's (or this machine's) shows on both sides.

The tool lives next to the repository (../shared/tools/imaptest, see its README); CPMSYNC_IMAPTEST
names another copy of its `run` script. The suite takes a few seconds per server; the two run at
the same time.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_testlib import make_store, running_server

from tests.support.dovecot import DovecotServer

RUN = Path(
    os.environ.get("CPMSYNC_IMAPTEST", Path(__file__).resolve().parents[3] / "shared/tools/imaptest/run")
)
FOUND = RUN.exists()
USER, PASSWORD = "imaptest", "imaptest-pw"
_GROUPS = re.compile(r"^(\d+) test groups: (\d+) failed, (\d+) skipped", re.M)
_COMMANDS = re.compile(r"^(base protocol|extensions): (\d+)/(\d+) individual commands failed", re.M)


@dataclass
class Outcome:
    """What imaptest printed, and its counts."""

    output: str
    groups: int
    groups_failed: int
    skipped: int
    commands: dict[str, tuple[int, int]]  # "base protocol" / "extensions" -> (failed, run)
    errors: list[str]  # `Error:` lines: protocol violations the tool saw outside the expectations

    @property
    def summary(self) -> str:
        return "\n".join(
            line for line in self.output.splitlines() if _GROUPS.match(line) or _COMMANDS.match(line)
        )

    @property
    def clean(self) -> bool:
        failed = sum(f for f, _ in self.commands.values())
        return self.groups_failed == 0 and failed == 0 and not self.errors


async def run_imaptest(port: int) -> Outcome:
    """The scripted suite against 127.0.0.1:port; the summary must be there whatever the result."""
    proc = await asyncio.create_subprocess_exec(
        str(RUN),
        "127.0.0.1",
        str(port),
        USER,
        PASSWORD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        out, _ = await proc.communicate()
    text = out.decode("utf-8", "replace")
    g = _GROUPS.search(text)
    assert g is not None, f"imaptest printed no summary (exit {proc.returncode}):\n{text[-4000:]}"
    commands = {m[1]: (int(m[2]), int(m[3])) for m in _COMMANDS.finditer(text)}
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    return Outcome(text, int(g[1]), int(g[2]), int(g[3]), commands, errors)


async def test_imaptest_scripted_suite_passes_as_on_dovecot(tmp_path: Path) -> None:
    if not FOUND:
        pytest.fail(f"imaptest not found at {RUN} (set CPMSYNC_IMAPTEST)")
    store = make_store(tmp_path, {USER: PASSWORD})  # a user of its own; auth-failure delay off
    try:
        with DovecotServer({USER: PASSWORD}) as dovecot:
            async with running_server(store=store) as srv:
                ours, theirs = await asyncio.gather(run_imaptest(srv.port), run_imaptest(dovecot.port))
    finally:
        store.close()
    print(f"\n--- imaptest against msgstore ---\n{ours.summary}")
    print(f"--- imaptest against Dovecot ---\n{theirs.summary}")
    assert theirs.clean, (
        f"the tool fails against Dovecot too (not msgstore's fault):\n{theirs.output[-6000:]}"
    )
    assert ours.clean, f"imaptest against msgstore:\n{ours.output[-12000:]}"
    assert ours.groups == theirs.groups and ours.commands["base protocol"][1] > 0
