"""Show that Dovecot 2.3.19's NOTIFY goes silent for good under folder churn (docs/peers.md).

One raw session (no daemon, no SELECT) runs `NOTIFY SET (personal (...))` and IDLE; another client
makes the soak's change stream (20 changes/s: APPEND, flags, EXPUNGE, MOVE, CREATE, RENAME,
DELETE, DELETE + CREATE) for 15 s. Printed: the stream's changes, the NOTIFY lines the raw
session got per second, the last ones, and the changes made around the moment they stopped;
then the tail of Dovecot's log. Run from the repository root (needs dovecot-imapd):

    python3 bench/peer_notify_silence.py [--seed N] [--seconds 15]

`--after-set GAP[,GAP...]`: the other way it goes silent. For each GAP, a fresh session runs NOTIFY
SET; GAP seconds later another client renames a folder, then (one at a time, each given 1.5 s)
deletes one, appends to one, creates one. Printed per GAP: which of the four were announced.

    python3 bench/peer_notify_silence.py --after-set 0.05,0.3,1.0,1.6,3
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imapclient import IMAPClient

from tests.support import DovecotServer
from tests.support.peers import ImapPeer
from tests.support.seed import seed_dovecot
from tests.support.soak.stream import ChangeStream

NOTIFY = b"n NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName))\r\n"


def _until_tagged(f: socket.SocketIO | object, tag: bytes) -> bytes:
    while True:
        line = f.readline()  # type: ignore[attr-defined]
        if not line or line.startswith(tag + b" "):
            return bytes(line)


def _news(s: socket.socket, wait_s: float) -> bytes:
    """Whatever the session sends within `wait_s`."""
    s.settimeout(wait_s)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        pass
    return out


def after_set(gaps: list[float]) -> None:
    """A change within about 1.5 s of NOTIFY SET silences Dovecot 2.3.19's NOTIFY for the session."""
    print(f"{'gap s':>6}  rename  delete  append  create")
    for gap in gaps:
        with DovecotServer(users={"u": "pw"}) as dv:
            c = IMAPClient(dv.host, dv.port, ssl=False)
            c.login("u", "pw")
            for name in ("B", "C", "D"):
                c.create_folder(name)
            s = socket.create_connection((dv.host, dv.port))
            _news(s, 0.5)
            s.sendall(b"l LOGIN u pw\r\n")
            _news(s, 0.5)
            s.sendall(NOTIFY)
            time.sleep(gap)
            seen = []
            steps = (
                (lambda c=c: c.rename_folder("B", "B2"), b"OLDNAME"),
                (lambda c=c: c.delete_folder("C"), b"NonExistent"),
                (lambda c=c: c.append("D", b"Subject: x\r\n\r\nhi\r\n"), b"STATUS D"),
                (lambda c=c: c.create_folder("E"), b'"/" E'),
            )
            for change, mark in steps:
                change()
                seen.append("yes" if mark in _news(s, 1.5) else "NO")
            s.close()
            c.logout()
            print(f"{gap:6.2f}  " + "  ".join(f"{x:>6}" for x in seen))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1145420164)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--after-set", help="comma-separated gaps in seconds (see above)")
    args = ap.parse_args()
    if args.after_set:
        after_set([float(g) for g in args.after_set.split(",")])
        return
    with DovecotServer(users={"soak": "pw"}) as dv:
        seed_dovecot(dv, "soak", 300, 2, seed=args.seed)
        s = socket.create_connection((dv.host, dv.port))
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"l LOGIN soak pw\r\n")
        _until_tagged(f, b"l")
        s.sendall(NOTIFY)
        print("A:", _until_tagged(f, b"n").decode().strip())
        s.sendall(b"i IDLE\r\n")
        print("A:", f.readline().decode().strip())
        got: list[tuple[float, bytes]] = []
        t0 = time.monotonic()
        w0 = time.time()

        def reader() -> None:
            try:
                for line in f:
                    got.append((time.monotonic() - t0, line))
            except OSError:
                pass

        threading.Thread(target=reader, daemon=True).start()
        stream = ChangeStream(ImapPeer("dovecot", dv.host, dv.port, "soak", "pw"), args.seed, 20.0)
        stream.open()
        stop = threading.Event()
        writer = threading.Thread(target=stream.run, args=(stop,))
        writer.start()
        time.sleep(args.seconds)
        stop.set()
        writer.join()
        stream.close()
        end = time.monotonic() - t0
        time.sleep(10)
        per_s: dict[int, int] = {}
        for ts, _ in got:
            per_s[int(ts)] = per_s.get(int(ts), 0) + 1
        print(f"B made {len(stream.changes)} changes from 0 to {end:.1f} s")
        print("A got NOTIFY lines per second (second: lines):", sorted(per_s.items()) or "none")
        news = [(ts, line) for ts, line in got if not line.startswith(b"* OK Still here")]
        last = news[-1][0] if news else 0.0
        print(f"A's last news (then none for {end + 10 - last:.1f} s, keep-alives aside):")
        for ts, line in news[-3:]:
            print(f"  {ts:6.2f}s {line.decode(errors='replace').strip()}")
        print("B's changes around the moment A went silent:")
        for c in stream.changes:
            rel = c.t - w0
            if last - 1.0 < rel < last + 0.3:
                print(f"  {rel:6.2f}s {c.describe(w0).split(' ', 2)[2]}")
        print("Dovecot's log, last lines:")
        for line in dv.log_path.read_text(errors="replace").splitlines()[-4:]:
            print("  " + line[:240])


if __name__ == "__main__":
    main()
