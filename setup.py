"""Build hook: compile the daemon's hottest modules to C with mypyc (cpmsync/native.py says which).

Everything else about the package is in pyproject.toml. The compiled modules are optional
extensions: `CPMSYNC_PURE_PYTHON=1`, or a machine without a C compiler, gives a build whose
modules run as Python, with the same behaviour (tests/imap/test_imap_native.py).
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent


def _extensions() -> list[object]:
    if os.environ.get("CPMSYNC_PURE_PYTHON", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify

    modules = runpy.run_path(str(HERE / "cpmsync" / "native.py"))["COMPILED"]
    paths = [str(Path(*m.split(".")).with_suffix(".py")) for m in modules]
    # Own mypy options, not pyproject's: the build runs in an isolated environment without
    # pydantic (pyproject's mypy plugin) or the other dependencies, whose types it does not need.
    flags = ["--config-file=", "--strict", "--ignore-missing-imports", "--follow-imports=silent"]
    exts = mypycify([*flags, *paths], opt_level="3")
    for ext in exts:
        ext.optional = True  # no C compiler: a warning and the pure-Python modules, not a failed install
    return list(exts)


setup(ext_modules=_extensions())
