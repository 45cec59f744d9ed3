"""The account watermark: it passes a folder only once that folder's sync is committed.

The model server below keeps global modseqs (CR Appendix I.3) and answers LIST (CHANGEDSINCE)
from them; the daemon side is the real Cache. Syncs are cut at random points; the invariant is
that any folder the cache is behind on is still above the watermark, so the next LIST
(CHANGEDSINCE (watermark)) names it and no change is ever skipped.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpmsync.daemon.cache import Cache

FOLDERS = ["INBOX", "Sent", "tel:+15143457900", "Group/chat"]


class ModelServer:
    """Folders with a highest modseq, bumped from one global counter."""

    def __init__(self) -> None:
        self.modseq = 100
        self.highest = dict.fromkeys(FOLDERS, 100)

    def change(self, folder: str) -> None:
        self.modseq += 1
        self.highest[folder] = self.modseq

    def changed_since(self, watermark: int) -> dict[str, int]:
        return {f: m for f, m in self.highest.items() if m > watermark}


def check_invariant(cache: Cache, server: ModelServer) -> None:
    w = cache.watermark
    for name, highest in server.highest.items():
        f = cache.folder(name)
        synced = f.last_synced_modseq if f else 0
        if synced < highest:
            assert highest > w, f"{name} is behind ({synced} < {highest}) but below watermark {w}"


def test_commit_of_one_folder_does_not_pass_a_pending_one(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c.sqlite", "a")
    cache.begin_discovery(300, ["INBOX", "Sent"])
    with cache.folder_sync("Sent") as fs:
        fs.set_status(uidvalidity=1, highestmodseq=300)
    assert cache.watermark == 0  # INBOX still pending
    with cache.folder_sync("INBOX") as fs:
        fs.set_status(uidvalidity=1, highestmodseq=250)
    assert cache.watermark == 300
    assert cache.pending_folders() == []


def test_pending_folder_known_before_holds_watermark_at_its_synced_modseq(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c.sqlite", "a")
    cache.begin_discovery(100, ["INBOX", "Sent"])
    for name in ("INBOX", "Sent"):
        with cache.folder_sync(name) as fs:
            fs.set_status(uidvalidity=1, highestmodseq=100)
    assert cache.watermark == 100
    cache.begin_discovery(180, ["INBOX", "Sent"])
    with cache.folder_sync("Sent") as fs:
        fs.set_status(highestmodseq=180)
    assert cache.watermark == 100  # INBOX's changes in (100, 180] still to fetch
    assert cache.advance_watermark() == 100


def test_empty_discovery_moves_watermark_to_target(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c.sqlite", "a")
    cache.begin_discovery(42, [])
    assert cache.watermark == 42


def test_deleted_pending_folder_releases_the_watermark(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c.sqlite", "a")
    cache.begin_discovery(70, ["Gone"])
    assert cache.watermark == 0
    cache.delete_folder("Gone")
    assert cache.watermark == 70


ops = st.lists(
    st.one_of(
        st.tuples(st.just("change"), st.sampled_from(FOLDERS)),
        st.tuples(st.just("sync"), st.lists(st.booleans(), min_size=len(FOLDERS), max_size=len(FOLDERS))),
        st.tuples(st.just("reopen"), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_watermark_never_skips_a_change(script: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.sqlite"
        server = ModelServer()
        cache = Cache.open(path, "a")
        for op, arg in script:
            if op == "change":
                assert isinstance(arg, str)
                server.change(arg)
            elif op == "reopen":  # the daemon was killed and restarted
                cache.close()
                cache = Cache.open(path, "a")
            else:
                assert isinstance(arg, list)
                found = server.changed_since(cache.watermark)
                cache.begin_discovery(max(found.values(), default=cache.watermark), found)
                for (name, highest), completes in zip(sorted(found.items()), arg, strict=False):
                    try:
                        with cache.folder_sync(name) as fs:
                            fs.set_status(uidvalidity=1, highestmodseq=highest)
                            if not completes:
                                raise ConnectionResetError("cut")
                    except ConnectionResetError:
                        pass
            check_invariant(cache, server)
        # A final uninterrupted sync round brings the cache level with the server.
        found = server.changed_since(cache.watermark)
        cache.begin_discovery(max(found.values(), default=cache.watermark), found)
        for name, highest in found.items():
            with cache.folder_sync(name) as fs:
                fs.set_status(uidvalidity=1, highestmodseq=highest)
        for name, highest in server.highest.items():
            if highest > 100:
                f = cache.folder(name)
                assert f is not None and f.last_synced_modseq == highest
        assert cache.watermark == server.modseq
        cache.close()


def test_partial_hint_keeps_other_pending_folders(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c.sqlite", "a")
    cache.begin_discovery(90, ["INBOX", "Sent"])
    cache.begin_discovery(95, ["Chat"], complete=False)
    assert cache.pending_folders() == ["Chat", "INBOX", "Sent"]
    cache.begin_discovery(99, ["Sent"])  # a full discovery replaces the pending set
    assert cache.pending_folders() == ["Sent"]
