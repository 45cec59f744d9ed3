"""mbsync (isync) as a third-party client: it syncs the account's folder tree to a Maildir, then
picks up a new message and a flag change on the second run."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from server_testlib import message, running_server

from tests.support.mbsync import mbsync_config

# A missing mbsync is a failure, not a skip: CI installs isync, and a silent skip would hide the gap.
MBSYNC_MISSING = "mbsync not found: apt-get install isync (.ci/run does)"


async def _mbsync(conf: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        "mbsync", "-c", str(conf), "-a", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def _messages(folder: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).glob("*") if p.is_file())


async def test_mbsync_mirrors_folder_tree_and_changes(tmp_path: Path) -> None:
    assert shutil.which("mbsync"), MBSYNC_MISSING
    async with running_server() as srv, srv.client() as c:
        await c.login()
        for name in ("Default", "tel:+15143457900", "Archive/f81d4fae-7dec-11d0-a765-00a0c91e6bf6"):
            assert (await c.cmd(f'CREATE "{name}"')).ok
            assert (await c.append(name, message(1, subject=name))).ok
        await c.append("INBOX", message(2), "\\Seen")
        conf = mbsync_config(tmp_path, srv.port, "alice", "alice-pw")
        await _mbsync(conf)
        mail = tmp_path / "mail"
        assert len(_messages(mail / "INBOX")) == 1
        assert len(_messages(mail / "tel:+15143457900")) == 1
        assert len(_messages(mail / "Archive" / "f81d4fae-7dec-11d0-a765-00a0c91e6bf6")) == 1
        assert _messages(mail / "INBOX")[0].name.endswith(("S", ":2,S"))  # \Seen -> Maildir S flag

        await c.append("Default", message(3))
        await c.cmd("SELECT Default")
        await c.cmd("STORE 1 +FLAGS (\\Flagged)")
        await _mbsync(conf)
        default = _messages(mail / "Default")
        assert len(default) == 2
        assert any("F" in p.name.rsplit(",", 1)[-1] for p in default)
