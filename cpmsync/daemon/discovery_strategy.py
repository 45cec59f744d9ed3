"""The names of the ways a client finds the folders that changed, shared by daemon, simulator and demo.

One enum so the daemon's runs (stored in its cache), the simulator's tables and the demo's
measurements speak of the same strategy by the same name; no module compares strings.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DiscoveryStrategy"]


class DiscoveryStrategy(StrEnum):
    """A discovery strategy, cheapest first; the value is what caches, reports and CLIs show."""

    LIST_CHANGEDSINCE = "list-changedsince"  # OMA CPM CR, Appendix I
    LIST_STATUS = "list-status"  # RFC 5819
    LIST_STATUS_PER_FOLDER = "list-status-per-folder"  # RFC 3501: LIST, then STATUS per folder

    @classmethod
    def _missing_(cls, value: object) -> DiscoveryStrategy | None:
        # The simulator called the per-folder fallback "list-status-each" until Dec 2026.
        return cls.LIST_STATUS_PER_FOLDER if value == "list-status-each" else None

    @property
    def incremental(self) -> bool:
        """Lists only folders changed above the watermark: changes must be pended and it advanced."""
        return self is DiscoveryStrategy.LIST_CHANGEDSINCE

    @property
    def label(self) -> str:
        """How tables and plots name it."""
        return _LABELS[self]


_LABELS = {
    DiscoveryStrategy.LIST_CHANGEDSINCE: "LIST-CHANGEDSINCE",
    DiscoveryStrategy.LIST_STATUS: "LIST-STATUS",
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER: "LIST + STATUS",
}
