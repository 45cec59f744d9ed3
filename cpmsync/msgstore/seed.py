"""Seed a msgstore account with CPM-like data, bulk-loaded in batches.

The names and messages come from `cpmsync.cpmdata` (the one generator the simulator and the
test-server seeding use too). Deterministic for a given seed, apart from the dates, which are
relative to now.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cpmsync.cpmdata import OWNER, folder_message, folder_names, message_flags, message_time
from cpmsync.msgstore.store import BulkMailbox, BulkMessage, MessageStore

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SeedResult", "folder_names", "make_message", "seed_account", "seed_with_progress"]


@dataclass(frozen=True, slots=True)
class SeedResult:
    folders: list[str]
    messages: int


def make_message(rng: random.Random, folder: str, when: datetime, me: str) -> bytes:
    """One chat message in `folder` (see `cpmsync.cpmdata.folder_message`)."""
    return folder_message(rng, folder, when, me)


def _batches(
    names: list[str], per_folder: int, rng: random.Random, batch_folders: int, me: str
) -> Iterator[list[BulkMailbox]]:
    now = datetime.now(UTC).replace(microsecond=0)
    batch: list[BulkMailbox] = []
    for name in names:
        msgs = []
        for _ in range(per_folder):
            when = message_time(rng, now)
            flags = message_flags(rng)
            msgs.append(BulkMessage(folder_message(rng, name, when, me), flags, when))
        batch.append(BulkMailbox(name, msgs))
        if len(batch) >= batch_folders:
            yield batch
            batch = []
    if batch:
        yield batch


def seed_account(
    store: MessageStore,
    user: str,
    folders: int,
    messages_per_folder: int,
    *,
    seed: int = 0,
    batch_folders: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> SeedResult:
    """Fill `user` with `folders` conversation folders of `messages_per_folder` messages each.

    One transaction per batch of folders; `progress(folders_done, messages_done)` after each.
    """
    rng = random.Random(seed)
    names = folder_names(folders, rng)
    me = OWNER
    done_f = done_m = 0
    for batch in _batches(names, messages_per_folder, rng, batch_folders, me):
        done_m += store.bulk_load(user, batch)
        if done_f == 0:
            store.analyze()  # the tables just went from empty to a batch: plan for that
        done_f += len(batch)
        if progress is not None:
            progress(done_f, done_m)
    store.analyze()
    return SeedResult(folders=names, messages=done_m)


def seed_with_progress(
    console: Console,
    store: MessageStore,
    user: str,
    folders: int,
    messages_per_folder: int,
    *,
    seed: int = 0,
    batch_folders: int = 1000,
    label: str = "conversation folders",
    after_batch: Callable[[], None] | None = None,
) -> SeedResult:
    """`seed_account` under a progress bar on `console` (folders done, messages, time).

    `after_batch` runs after each batch (in the seeding thread); raising there stops the seeding
    between two committed batches, which is how the demo aborts on Ctrl-C.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]seeding[/] {label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[messages]:,} messages"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("seed", total=folders, messages=0)

        def tick(done_folders: int, done_messages: int) -> None:
            progress.update(task, completed=done_folders, messages=done_messages)
            if after_batch is not None:
                after_batch()

        return seed_account(
            store,
            user,
            folders,
            messages_per_folder,
            seed=seed,
            batch_folders=batch_folders,
            progress=tick,
        )
