"""The README's commands, copied as written, work (issue 6: "Tried as a new user would").

Cheap commands run for real in a scratch HOME; long-running ones (servers, the daemon, the demo,
reports) are checked down to their subcommand and options by the CLI's own parser, so a renamed
command or option in the code fails here before a reader trips on it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from cpmsync.cli import app
from tests.support import port_open

README = Path(__file__).resolve().parent.parent / "README.md"

# Prefixes of README commands that are quick and self-contained: run them for real.
RUN_FOR_REAL = (
    "cpmsync msgstore user add",
    "cpmsync msgstore seed",
    "cpmsync simulate bytes",
    "cpmsync simulate profiles",
)


def _commands() -> list[str]:
    """Every cpmsync or bench command of an indented line, also those after `&&` in the main command."""
    lines = []
    for raw in README.read_text().splitlines():
        if not raw.startswith("    "):
            continue
        for part in raw.split(" && "):
            m = re.match(r"^(cpmsync .*|python bench/\S+.*)$", part.strip())
            if m:
                lines.append(m.group(1).split("  #")[0].strip())
    return lines


def test_readme_has_the_two_commands_first() -> None:
    text = README.read_text()
    demo = text.index("pip install -c constraints.txt -e . && cpmsync demo")
    tests = text.index("bash .ci/run")
    assert demo < tests < text.index("## What the demo shows")


def _main_command_steps() -> list[str]:
    line = next(raw.strip() for raw in README.read_text().splitlines() if raw.endswith("&& cpmsync demo"))
    assert subprocess.run(["bash", "-n", "-c", line]).returncode == 0  # one valid shell line
    return [s.strip() for s in line.split(" && ")]


def _broker_step(steps: list[str]) -> str:
    return next(s for s in steps if re.fullmatch(r"\(.*\|\| mosquitto -d \|\| true\)", s))


def test_readme_main_command_starts_a_broker_before_the_demo() -> None:
    # The demo starts no broker, and installing the package starts none where systemd does not run
    # (a container): the command starts one itself, and must go on where one already answers.
    steps = _main_command_steps()
    start = steps.index(_broker_step(steps))
    assert steps.index("apt-get install -y mosquitto") < start < steps.index("cpmsync demo")


def test_readme_broker_step_starts_mosquitto_only_where_none_answers(tmp_path: Path) -> None:
    # The step run as written, with `mosquitto` on PATH replaced by a script that notes its call
    # (no broker is started by this test). A second Mosquitto beside one listening on 127.0.0.1
    # only took [::1]:1883 and caught the clients of "localhost". Where nothing answers on
    # 127.0.0.1:1883 (no shared broker on this machine) the step must start one.
    called = tmp_path / "called"
    stub = tmp_path / "bin" / "mosquitto"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$@" > {called}\n')
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{stub.parent}:{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", _broker_step(_main_command_steps())], env=env, timeout=30)
    assert done.returncode == 0
    assert called.exists() is not port_open("127.0.0.1", 1883, 2)


def _is_group(cmd: Any) -> bool:
    # typer 0.29 carries its own click (typer._click): test the shape, not a class of one copy.
    return isinstance(getattr(cmd, "commands", None), dict)


def _resolve(argv: list[str]) -> tuple[Any, list[str]]:
    cmd: Any = typer.main.get_command(app)
    rest = argv
    while _is_group(cmd) and rest and rest[0] in cmd.commands:
        cmd, rest = cmd.commands[rest[0]], rest[1:]
    return cmd, rest


@pytest.mark.parametrize("line", [c for c in _commands() if c.startswith("cpmsync ")])
def test_readme_cpmsync_command_parses(line: str) -> None:
    argv = shlex.split(line.split("<<<")[0])[1:]
    argv = [a for a in argv if not a.startswith("[")]  # "[--folder NAME]" marks an optional part
    argv = [a for a in argv if not a.endswith("]")]
    cmd, rest = _resolve(argv)
    assert not _is_group(cmd), f"{line!r} does not name a command"
    ctx = cmd.make_context(cmd.name, list(rest), resilient_parsing=False)
    assert ctx.command is cmd


def test_readme_quick_commands_run_in_order(tmp_path: Path) -> None:
    # They build on each other (user add, then seed), as a reader types them.
    lines = [c for c in _commands() if c.startswith(RUN_FOR_REAL)]
    assert len(lines) >= 4
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("CPMSYNC_STORE__DB_URL", None)
    for line in lines:
        script = line.replace("cpmsync ", f"{sys.executable} -m cpmsync.cli ", 1)
        r = subprocess.run(["bash", "-ec", script], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"{line}: {r.stderr[-2000:]}"


def test_readme_benches_exist() -> None:
    root = README.parent
    for line in _commands():
        if line.startswith("python bench/"):
            assert (root / line.split()[1]).is_file(), line
