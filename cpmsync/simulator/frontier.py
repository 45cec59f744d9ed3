"""Energy versus delay: where polling, push as commonly deployed, and the daemon's schedule sit.

Every point is one day priced by `schedule_price.price_schedule` (the packet-level day planner with
the daemon's own schedule code), so the daemon's default is what the daemon does, not a formula.
Written by `cpmsync simulate report` as docs/push-energy.md with docs/img/frontier_*.png.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.daemon.settings import DaemonSettings
from cpmsync.simulator.catchup import Strategy
from cpmsync.simulator.radio import RadioProfile, load_profile
from cpmsync.simulator.schedule_price import SchedulePrice, ScheduleSpec, price_schedule

__all__ = ["DEFAULT_LABEL", "build_frontier", "configurations", "frontier_points"]

POLL_MINUTES = (1, 5, 15, 30, 60)
FIXED_HEARTBEAT_MINUTES = (4, 9, 29)
NAT_MINUTES = (5, 10, 15, 30)
NATS_S = tuple(60.0 * m for m in NAT_MINUTES)
RADIOS = ("lte", "nr-nsa", "nr-sa", "3g", "wifi")
FOLDERS = (100, 10_000)
DISCOVERIES: tuple[Strategy, ...] = (DiscoveryStrategy.LIST_CHANGEDSINCE, DiscoveryStrategy.LIST_STATUS)
CHANGES_PER_DAY = 40.0
DEFAULT_LABEL = "daemon default (adaptive heartbeat)"
KEEPALIVE_LABEL = "push, server keep-alive 2 min"


def configurations() -> list[ScheduleSpec]:
    """The anchors and the daemon: polling, push with a server keep-alive, fixed and learned heartbeats."""
    specs = [ScheduleSpec(f"poll every {m} min", poll_s=60.0 * m) for m in POLL_MINUTES]
    # As most IMAP push clients meet Dovecot: its 2-minute "* OK Still here", a re-IDLE every 29 min.
    specs.append(ScheduleSpec(KEEPALIVE_LABEL, server_keepalive_s=120.0, fixed_heartbeat_s=29 * 60.0))
    specs += [
        ScheduleSpec(f"push, fixed heartbeat {m} min", fixed_heartbeat_s=60.0 * m)
        for m in FIXED_HEARTBEAT_MINUTES
    ]
    specs.append(ScheduleSpec(DEFAULT_LABEL, settings=DaemonSettings()))
    return specs


@dataclass(frozen=True, slots=True)
class Point:
    price: SchedulePrice
    default: bool


def frontier_points(
    radios: Sequence[RadioProfile],
    *,
    nats_s: Iterable[float] = NATS_S,
    folders: Iterable[int] = FOLDERS,
    discoveries: Iterable[Strategy] = DISCOVERIES,
    changes_per_day: float = CHANGES_PER_DAY,
    progress: Callable[[float], None] | None = None,
) -> list[Point]:
    nats = tuple(nats_s)
    grid = [(f, d) for f in folders for d in discoveries]
    specs = configurations()
    out: list[Point] = []
    for nfolders, disc in grid:
        for spec in specs:
            # A polling client opens a new connection each time: the NAT never matters to it.
            for nat in nats[:1] if spec.poll_s is not None else nats:
                prices = price_schedule(
                    spec, radios, nat_timeout_s=nat, changes_per_day=changes_per_day, folders=nfolders,
                    discovery=disc,
                )  # fmt: skip
                targets = nats if spec.poll_s is not None else (nat,)
                for p in prices:
                    for n in targets:
                        out.append(
                            Point(dataclasses.replace(p, nat_timeout_s=n), spec.label == DEFAULT_LABEL)
                        )
        if progress is not None:
            progress(1 / len(grid))
    return out


def _scaled_tail(profile: RadioProfile, factor: float) -> RadioProfile:
    """The same radio with every connected-state timer scaled (a shorter or longer tail)."""
    phases = []
    for ph in profile.phases:
        if ph.needs_promotion or ph.duration_ms is None:
            phases.append(ph)
        else:
            phases.append(ph.model_copy(update={"duration_ms": ph.duration_ms * factor}))
    return profile.model_copy(update={"phases": tuple(phases), "name": f"{profile.name} tail x{factor:g}"})


def sensitivity(profile: RadioProfile) -> list[tuple[str, str, float, float, float]]:
    """(parameter, value, daemon J/day, 15-min poll J/day, daemon median delay) around the base case."""
    base = {"nat": 600.0, "changes": CHANGES_PER_DAY, "tail": 1.0}
    cases = [("tail length", f"x{f:g}", {"tail": f}) for f in (0.5, 1.0, 2.0)]
    cases += [("NAT timeout", f"{n:g} min", {"nat": 60.0 * n}) for n in (5, 10, 30)]
    cases += [("changes per day", f"{c:g}", {"changes": c}) for c in (10, 40, 200)]
    daemon = ScheduleSpec(DEFAULT_LABEL, settings=DaemonSettings())
    poll = ScheduleSpec("poll every 15 min", poll_s=900.0)
    rows = []
    for name, value, over in cases:
        k = base | over
        prof = _scaled_tail(profile, k["tail"]) if k["tail"] != 1.0 else profile
        (d,) = price_schedule(daemon, [prof], nat_timeout_s=k["nat"], changes_per_day=k["changes"])
        (p,) = price_schedule(poll, [prof], nat_timeout_s=k["nat"], changes_per_day=k["changes"])
        rows.append((name, value, d.joules_per_day, p.joules_per_day, d.median_delay_s))
    return rows


def plot_frontier(points: Sequence[Point], out: Path, *, title: str) -> Path:
    """J/day against median delay (both log), a labelled point per configuration, default marked."""
    from cpmsync.simulator.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.5, 6.2))
    for disc, marker in ((DiscoveryStrategy.LIST_CHANGEDSINCE, "o"), (DiscoveryStrategy.LIST_STATUS, "s")):
        pts = [p for p in points if p.price.discovery == disc]
        for p in pts:
            x = max(p.price.median_delay_s, 0.1)
            y = p.price.joules_per_day
            face = "tab:red" if p.default else ("tab:blue" if "poll" in p.price.label else "tab:gray")
            ax.scatter(
                [x], [y], marker=marker, s=90 if p.default else 40, color=face,
                edgecolors="black" if p.default else "none",
            )  # fmt: skip
            if disc.incremental:
                # The median alone flatters a heartbeat longer than the NAT: half the changes wait
                # for the next reconnect. The p95 says so.
                text = f"{p.price.label} (p95 {p.price.p95_delay_s:,.0f} s)"
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("median delay from a change on the server to its event (s)")
    ax.set_ylabel("radio energy per day (J)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.scatter([], [], marker="o", color="white", edgecolors="black", label="LIST-CHANGEDSINCE catch-ups")
    ax.scatter([], [], marker="s", color="white", edgecolors="black", label="LIST-STATUS catch-ups")
    ax.scatter([], [], marker="o", color="tab:red", edgecolors="black", s=90, label="the daemon's default")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _md_table(points: Sequence[Point], radio: str, folders: int, disc: str) -> list[str]:
    nats = sorted({p.price.nat_timeout_s for p in points})
    labels = list(dict.fromkeys(p.price.label for p in points))
    head = (
        "| configuration | " + " | ".join(f"NAT {n / 60:g} min: J/day, median / p95 s" for n in nats) + " |"
    )
    lines = [head, "|---|" + "---:|" * len(nats)]
    for label in labels:
        cells = []
        for n in nats:
            got = [
                p.price
                for p in points
                if p.price.label == label
                and p.price.radio == radio
                and p.price.folders == folders
                and p.price.discovery == disc
                and p.price.nat_timeout_s == n
            ]
            g = got[0] if got else None
            cells.append(
                f"{g.joules_per_day:,.0f}, {g.median_delay_s:,.1f} / {g.p95_delay_s:,.0f}" if g else ""
            )
        name = f"**{label}**" if label == DEFAULT_LABEL else label
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def build_frontier(out: Path, *, progress: Callable[[float], None] | None = None) -> Path:
    """Price the grid, write docs/push-energy.md, img/frontier_lte.png and the raw points as JSON."""
    started = time.perf_counter()
    radios = [load_profile(r) for r in RADIOS]
    points = frontier_points(radios, progress=progress)
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    (img / "frontier.json").write_text(json.dumps([p.price.as_dict() for p in points], indent=1))
    lte_10min = [
        p
        for p in points
        if p.price.radio == "lte" and p.price.nat_timeout_s == 600 and p.price.folders == 10_000
    ]
    plot_frontier(
        lte_10min,
        img / "frontier_lte.png",
        title=f"LTE, NAT timeout 10 min, 10,000 folders, {CHANGES_PER_DAY:g} changes/day: energy vs delay",
    )
    lte = load_profile("lte")
    sens = sensitivity(lte)
    elapsed = time.perf_counter() - started

    def pick(label: str, radio: str, nat: float, folders: int = 10_000) -> SchedulePrice:
        return next(
            p.price
            for p in points
            if p.price.label == label and p.price.radio == radio and p.price.nat_timeout_s == nat
            and p.price.folders == folders and p.price.discovery == DiscoveryStrategy.LIST_CHANGEDSINCE
        )  # fmt: skip

    lines = [
        "# Push versus polling: energy against delay",
        "",
        "Generated by `cpmsync simulate report --out docs` "
        f"({elapsed:,.0f} s; {len(points):,} priced days). Each point is one day of",
        f"{CHANGES_PER_DAY:g} server changes (Poisson, diurnal), 6 connection losses a day, priced",
        "packet by packet on the radio's RRC model. Push days re-IDLE through the daemon's own",
        "schedule code (`cpmsync/daemon/schedule.py`):",
        "the default is what the daemon does with `config/daemon.toml` as shipped, after it has learned",
        "the network (learning costs a few lost connections once per network: `learning_losses` in the",
        "JSON). Price any configuration: `cpmsync simulate schedule --config FILE --nat-timeout S`.",
        "",
        "![energy versus delay on LTE](img/frontier_lte.png)",
        "",
        "## The daemon's default against the anchors (10,000 folders, LIST-CHANGEDSINCE)",
        "",
        "| radio | NAT | daemon J/day (median s) | 15-min poll J/day (median s) "
        "| push + 2-min keep-alive J/day | daemon vs poll | daemon vs keep-alive |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for radio in RADIOS:
        for nat in sorted({p.price.nat_timeout_s for p in points}):
            d = pick(DEFAULT_LABEL, radio, nat)
            q = pick("poll every 15 min", radio, nat)
            k = pick(KEEPALIVE_LABEL, radio, nat)
            lines.append(
                f"| {radio} | {nat / 60:g} min | {d.joules_per_day:,.0f} ({d.median_delay_s:,.1f}) | "
                f"{q.joules_per_day:,.0f} ({q.median_delay_s:,.0f}) | {k.joules_per_day:,.0f} | "
                f"{d.joules_per_day / q.joules_per_day:.2f}x | {d.joules_per_day / k.joules_per_day:.2f}x |"
            )
    lines += [
        "",
        "What decides the answer: each radio wake costs a promotion and a tail (on LTE ~12.8 J, whatever",
        "it carries), and a held connection needs one wake per NAT period to stay reachable. Below a",
        "15-minute NAT, 15-minute polling needs fewer wakes than any push can; the daemon's learned",
        "heartbeat sits one wake per NAT period plus one per change above that floor, at a median delay",
        "of about a second instead of minutes. With a NAT of 15 minutes or more, push costs the same as or",
        "less than 15-minute polling. Push as commonly deployed (the server's 2-minute keep-alive)",
        "costs several times either.",
        "",
        "## Sensitivity (LTE, 1,000 folders, LIST-CHANGEDSINCE; base: NAT 10 min, 40 changes/day)",
        "",
        "| parameter | value | daemon J/day | 15-min poll J/day | daemon / poll | daemon median delay s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, value, dj, pj, med in sens:
        lines.append(f"| {name} | {value} | {dj:,.0f} | {pj:,.0f} | {dj / pj:.2f} | {med:,.1f} |")
    lines += [
        "",
        "The NAT timeout moves the daemon's cost most (it sets the heartbeat count); the tail length",
        "scales both sides alike (a longer tail makes every wake dearer, and push has more of them);",
        "each change is a wake of its own for push (it also serves as a heartbeat), while polling",
        "batches changes into its fixed wakes, so push's cost grows with the number of changes.",
        "",
        "## Every configuration (J/day, median / p95 delay s)",
        "",
    ]
    for radio in ("lte", "nr-sa", "wifi"):
        for folders in FOLDERS:
            for disc in DISCOVERIES:
                lines += [f"### {radio}, {folders:,} folders, {disc} catch-ups", ""]
                lines += _md_table(points, radio, folders, disc)
                lines.append("")
    lines.append("All points, every radio: [img/frontier.json](img/frontier.json).")
    path = out / "push-energy.md"
    path.write_text("\n".join(lines) + "\n")
    return path
