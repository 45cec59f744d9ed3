"""Run the `cpmsync` command as a user would, in a subprocess, for end-to-end CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["cli_command", "run_cli"]


def cli_command(args: Sequence[str]) -> list[str]:
    """The argv that runs `cpmsync *args` with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "cpmsync.cli", *args]


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    input: str | None = None,
    timeout_s: float = 60.0,
    cwd: Path | str | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cpmsync.cli *args`; `env` is merged over os.environ; output captured as text.

    `check=True` raises CalledProcessError (with stdout/stderr attached) on a non-zero exit.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        cli_command(args),
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
        check=check,
    )
