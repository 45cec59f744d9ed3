"""matplotlib figures (Agg backend, PNG): energy against folder count, and an RRC timeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.simulator.radio import RadioProfile, Transfer
from cpmsync.simulator.rrc import PROMOTION, TRANSFER_DOWN, TRANSFER_UP, RadioResult
from cpmsync.simulator.runner import Row

__all__ = ["plot_energy_vs_folders", "plot_timeline"]

STRATEGY_NAMES = {
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER: "LIST + STATUS per folder",
    DiscoveryStrategy.LIST_STATUS: "LIST-STATUS",
    DiscoveryStrategy.LIST_CHANGEDSINCE: "LIST-CHANGEDSINCE",
}
STRATEGY_COLORS = {
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER: "tab:red",
    DiscoveryStrategy.LIST_STATUS: "tab:orange",
    DiscoveryStrategy.LIST_CHANGEDSINCE: "tab:green",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_energy_vs_folders(rows: Sequence[Row], out: Path, *, title: str) -> Path:
    """One panel per radio: J/day against folder count (log x), a line per strategy (dashed = DEFLATE)."""
    plt = _plt()
    radios = list(dict.fromkeys(r.radio for r in rows))
    fig, axes = plt.subplots(1, len(radios), figsize=(6.2 * len(radios), 4.6), squeeze=False)
    for ax, radio in zip(axes[0], radios, strict=True):
        for disc, name in STRATEGY_NAMES.items():
            for compress in (False, True):
                pts = sorted(
                    (r.folders, r.energy_j_per_day)
                    for r in rows
                    if r.radio == radio and r.discovery == disc and r.compress == compress
                )
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    markersize=4,
                    color=STRATEGY_COLORS[disc],
                    linestyle="--" if compress else "-",
                    label=name + (" + DEFLATE" if compress else ""),
                )
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)  # a truncated axis would exaggerate the differences
        ax.set_xlabel("folders in the account")
        ax.set_ylabel("radio energy per day (J)")
        ax.set_title(f"{radio}")
        ax.grid(True, which="both", alpha=0.3)
        sec = ax.secondary_yaxis("right", functions=(lambda j: j / 554.4, lambda p: p * 554.4))
        sec.set_ylabel("% of a 4000 mAh, 3.85 V battery")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=11)
    return _save(plt, fig, out, dpi=110)


def plot_timeline(
    panels: Sequence[tuple[str, RadioProfile, RadioResult, Sequence[Transfer]]],
    out: Path,
    *,
    t0_s: float,
    t1_s: float,
    windows: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """Power over a window (shaded by RRC state) with the transfers as ticks underneath.

    Each panel may have its own window (`windows`); short windows (< 5 min) are drawn in seconds
    so a single burst's promotion, transfer and tail phases can be read.
    """
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 3.2 * len(panels)), squeeze=False)
    palette = ["#d62728", "#ff7f0e", "#bcbd22", "#1f77b4", "#9467bd", "#8c564b", "#7f7f7f"]
    wins = list(windows) if windows is not None else [(t0_s, t1_s)] * len(panels)
    for ax, (label, profile, result, transfers), (w0, w1) in zip(axes[:, 0], panels, wins, strict=True):
        unit, scale = ("s", 1.0) if w1 - w0 < 300 else ("min", 60.0)
        colors = {ph.state: palette[i % len(palette)] for i, ph in enumerate(profile.phases)}
        colors.update({PROMOTION: "black", TRANSFER_UP: "tab:green", TRANSFER_DOWN: "tab:cyan"})
        segs = [s for s in (result.segments or []) if s.t1_s > w0 and s.t0_s < w1]
        seen: set[str] = set()
        for s in segs:
            a, b = (max(s.t0_s, w0) - w0) / scale, (min(s.t1_s, w1) - w0) / scale
            ax.fill_between(
                [a, b],
                0,
                s.power_mw,
                color=colors.get(s.state, "grey"),
                alpha=0.85,
                linewidth=0.6,
                edgecolor=colors.get(s.state, "grey"),
                label=None if s.state in seen else s.state,
            )
            seen.add(s.state)
        ymax = max([s.power_mw for s in segs] + [100.0])
        for tr in transfers:
            if w0 <= tr.t_s < w1:
                x = (tr.t_s - w0) / scale
                y = -0.06 * ymax if tr.direction == "up" else -0.12 * ymax
                ax.plot([x], [y], marker="|", color="tab:green" if tr.direction == "up" else "tab:blue", ms=8)
        ax.set_xlim(0, (w1 - w0) / scale)
        ax.set_ylim(-0.16 * ymax, ymax * 1.12)
        ax.set_ylabel("power (mW)")
        ax.set_xlabel(f"{unit} (ticks below zero: transfers, green = up, blue = down)", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=7, ncol=4, loc="upper right")
        ax.grid(True, alpha=0.25)
    return _save(plt, fig, out, dpi=100)


def _save(plt: Any, fig: Any, out: Path, *, dpi: int) -> Path:
    """Lay the figure out, write it to `out` (making its folder) and free it."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
