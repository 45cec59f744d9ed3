"""Recorded traffic traces: (time, direction, bytes) rows a device keeps, priced on a radio.

Format (what the daemon writes; both forms are accepted):
- CSV with a header line ``t_s,direction,bytes``; or
- JSON lines, one object per line: ``{"t_s": 12.503, "direction": "down", "bytes": 1187}``.

``t_s``: seconds as a float (Unix time or relative; the trace is shifted to start at 0).
``direction``: ``up`` (device -> server) or ``down`` (server -> device); ``out``/``in`` are
accepted as synonyms (the daemon's trace table spells them that way).
``bytes``: the bytes one socket write/read carried at the stream layer: what the IMAP client
hands to / gets from the TLS socket (after COMPRESS=DEFLATE when active, before TLS). The
simulator adds TLS records, TCP/IP headers and ACKs (`--layer wire` means already included).
Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cpmsync.config import UserInputError
from cpmsync.simulator.radio import Transfer
from cpmsync.simulator.wire import WireConfig, WireCounter

__all__ = ["TraceError", "load_trace", "to_wire_transfers"]

_DIRECTIONS = {"up": "up", "out": "up", "down": "down", "in": "down"}  # in/out as the daemon's cache says
DELAYED_ACK_S = 0.2  # RFC 1122 §4.2.3.2: at most 0.5 s; Linux uses 40-200 ms


class TraceError(UserInputError):
    """A trace file the user asked us to price is unreadable or malformed."""

    label = "trace error"


def _row(where: str, t: object, d: object, n: object) -> Transfer:
    try:
        ts = float(t)  # type: ignore[arg-type]
        nb = int(n)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise TraceError(f"{where}: t_s must be a number and bytes an integer") from None
    direction = _DIRECTIONS.get(str(d).strip().lower(), "")
    if not direction:
        raise TraceError(f"{where}: direction must be 'up' or 'down' (or 'out'/'in'), not {d!r}")
    if nb < 0:
        raise TraceError(f"{where}: bytes must not be negative")
    return Transfer(ts, direction, nb)


def load_trace(path: Path) -> list[Transfer]:
    """Read a CSV or JSON-lines trace; errors name the file and line."""
    try:
        text = path.read_text()
    except OSError as e:
        raise TraceError(f"{path}: cannot read trace: {e.strerror}") from None
    lines = [
        (i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")
    ]
    out: list[Transfer] = []
    if lines and lines[0][1].lstrip().startswith("{"):
        for i, ln in lines:
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError as e:
                raise TraceError(f"{path}:{i}: not JSON: {e.msg}") from None
            if not isinstance(obj, dict) or not {"t_s", "direction", "bytes"} <= obj.keys():
                raise TraceError(f"{path}:{i}: needs keys t_s, direction, bytes")
            out.append(_row(f"{path}:{i}", obj["t_s"], obj["direction"], obj["bytes"]))
    else:
        reader = csv.reader(io.StringIO("\n".join(ln for _, ln in lines)))
        rows = list(reader)
        if rows and [c.strip().lower() for c in rows[0]] == ["t_s", "direction", "bytes"]:
            rows = rows[1:]
            numbers = [i for i, _ in lines[1:]]
        else:
            numbers = [i for i, _ in lines]
        for i, r in zip(numbers, rows, strict=True):
            if len(r) != 3:
                raise TraceError(f"{path}:{i}: expected 3 columns t_s,direction,bytes")
            out.append(_row(f"{path}:{i}", *r))
    if not out:
        raise TraceError(f"{path}: the trace has no rows")
    t0 = min(x.t_s for x in out)
    return sorted((Transfer(x.t_s - t0, x.direction, x.nbytes) for x in out), key=lambda x: x.t_s)


def to_wire_transfers(
    trace: list[Transfer], wire: WireConfig | None = None
) -> tuple[list[Transfer], int, int]:
    """Add TLS records, TCP/IP headers and pure ACKs to stream-layer rows; returns (transfers, up, down)."""
    out: list[Transfer] = []
    counter = WireCounter(wire)
    for k, tr in enumerate(trace):
        i0 = len(counter.count.flights)
        counter.send(tr.direction, b"\0" * tr.nbytes)
        if k + 1 == len(trace) or trace[k + 1].t_s - tr.t_s > DELAYED_ACK_S:
            counter.finish()  # nothing follows within the delayed-ACK timer: the ACK goes alone
        for direction, n in counter.count.flights[i0:]:
            out.append(Transfer(tr.t_s, direction, n))
    i0 = len(counter.count.flights)
    c = counter.finish()
    last = trace[-1].t_s if trace else 0.0
    out += [Transfer(last, d, n) for d, n in c.flights[i0:]]
    return out, c.wire_up, c.wire_down
