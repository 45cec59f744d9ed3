"""Apply the OLDNAME renames of one discovery as a permutation, not in listing order.

Renames reported together happened while the daemon was away, so they can swap names
(A→C, B→A), rotate them (A→B, B→C, C→A) or shift them (B→C, A→B). Applied one by one in the
order the server listed them, a rename whose target is still occupied in the cache was skipped
and left a ghost folder. Here a rename runs once its target is free; a cycle is broken by moving
one folder to a temporary name first; a target held by a folder that is not renamed away is gone
on the server and is deleted first (its own event, so an app replaying events sees it too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cpmsync.daemon.cache import Cache
from cpmsync.logs import kv

__all__ = ["RenameStep", "apply_renames", "plan_renames"]

log = logging.getLogger("cpmsync.daemon.sync")

_TMP_MARK = "\x00cpmsync-rename-"


@dataclass(frozen=True)
class RenameStep:
    op: Literal["rename", "delete"]
    old: str
    new: str | None = None


def plan_renames(existing: Iterable[str], renames: Iterable[tuple[str, str]]) -> list[RenameStep]:
    """Steps that turn the cached names into the server's, given `renames` (old, new).

    Only renames whose source is cached count; a source named twice keeps its first target.
    """
    names = set(existing)
    todo: dict[str, str] = {}
    for old, new in renames:
        if old != new and old in names and old not in todo:
            todo[old] = new
    steps: list[RenameStep] = []
    tmp_n = 0
    while todo:
        free = [old for old, new in todo.items() if new not in names]
        if free:
            for old in free:
                new = todo.pop(old)
                steps.append(RenameStep("rename", old, new))
                names.discard(old)
                names.add(new)
            continue
        # Every target is occupied. A target held by a folder that is not being renamed away is
        # gone on the server (its name now belongs to another mailbox): delete it.
        blocked = [new for new in todo.values() if new not in todo]
        if blocked:
            for name in dict.fromkeys(blocked):
                steps.append(RenameStep("delete", name))
                names.discard(name)
            continue
        # Only cycles remain: park one member under a temporary name to open the cycle.
        old = next(iter(todo))
        while True:
            tmp = f"{old}{_TMP_MARK}{tmp_n}"
            tmp_n += 1
            if tmp not in names:
                break
        steps.append(RenameStep("rename", old, tmp))
        names.discard(old)
        names.add(tmp)
        todo[tmp] = todo.pop(old)
    return steps


def apply_renames(cache: Cache, renames: Iterable[tuple[str, str]]) -> int:
    """Apply `renames` to the cache as a permutation; returns how many folders were touched."""
    renames = list(renames)
    if not renames:
        return 0
    steps = plan_renames(cache.folders(), renames)
    for step in steps:
        if step.op == "delete":
            if cache.delete_folder(step.old):
                log.info("folder replaced on the server by a renamed one", extra=kv(folder=step.old))
        else:
            assert step.new is not None
            cache.rename_folder(step.old, step.new)
    return len(steps)
