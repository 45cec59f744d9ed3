"""The modules a build compiles to C with mypyc, and whether this installation runs them compiled.

A first sync's CPU per message is mostly Python: reading FETCH lines (the response parser's fast
path) and building messages from them (headers, addresses, dates, previews). Compiled by mypyc,
those modules cost ~11 % fewer instructions per message (docs/daemon-speed.md). The same source
runs as plain Python where no build compiled it (`CPMSYNC_PURE_PYTHON=1`, or no C compiler): the
behaviour is the same, tests/imap/test_imap_native.py holds the two to each other.

Stdlib only: setup.py reads `COMPILED` from this file before cpmsync's dependencies exist.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sysconfig
from dataclasses import dataclass

__all__ = ["COMPILED", "ModuleBuild", "builds", "summary"]

COMPILED = (
    "cpmsync.imap._framer",
    "cpmsync.imap.datetimes",
    "cpmsync.imap.mutf7",
    "cpmsync.imap.commands",
    "cpmsync.imap.response_parser",
    "cpmsync.imap.responses",
    "cpmsync.imap.seqset",
    "cpmsync.daemon.headers",
    "cpmsync.daemon.preview",
)
"""Type-checked strictly, free of star imports and of classes built on builtins (what mypyc needs)."""


_INSTALLED = tuple({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})


@dataclass(frozen=True)
class ModuleBuild:
    name: str
    compiled: bool
    stale: bool
    """Compiled from an older source than the one beside it: an editable install whose source was
    edited (or checked out) after `pip install -e .`; Python runs the old compiled code. (Told by
    the files' times, so only in a source tree: pip writes an installed module's two files at
    install time, in no set order.)"""


def builds() -> list[ModuleBuild]:
    """Each module of `COMPILED` as this installation loads it."""
    out = []
    for name in COMPILED:
        path = importlib.import_module(name).__file__ or ""
        compiled = path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
        stale = False
        if compiled and not path.startswith(_INSTALLED):  # pip replaces both files of an installed one
            source = os.path.join(os.path.dirname(path), name.rsplit(".", 1)[1] + ".py")
            stale = os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(path)
        out.append(ModuleBuild(name, compiled, stale))
    return out


def summary() -> str:
    """One line for logs and `--version`: compiled, pure Python, or which modules are stale."""
    got = builds()
    stale = [b.name for b in got if b.stale]
    if stale:
        return "codec compiled, but older than its source: " + ", ".join(stale) + " (pip install -e . again)"
    done = sum(b.compiled for b in got)
    if done == len(got):
        return "codec compiled with mypyc"
    if done == 0:
        return "codec in pure Python"
    return f"codec partly compiled ({done} of {len(got)} modules)"
