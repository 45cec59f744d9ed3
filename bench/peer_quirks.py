"""Show, on the wire, the Dovecot NOTIFY quirk that docs/peers.md describes (prints both sessions).

Session A holds NOTIFY + IDLE; session B creates a folder, renames it and appends to another one.
Dovecot 2.3.19 sends A nothing for any of it. Run from the repository root:

    python3 bench/peer_quirks.py        (needs dovecot-imapd)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import DovecotServer
from tests.support.raw_imap import RawImap

MESSAGE = "From: a@example.org\r\nSubject: x\r\n\r\nhello\r\n"
NOTIFY = (
    "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) "
    "(personal (MessageNew MessageExpunge FlagChange MailboxName))"
)


async def append(w: RawImap, box: str) -> bytes:
    await w.send(f"a APPEND {box} {{{len(MESSAGE)}+}}\r\n{MESSAGE}\r\n".encode())
    while not (line := await w.readline()).startswith(b"a "):
        pass
    return line


async def main() -> None:
    with DovecotServer() as dv:
        user = next(iter(dv.users))
        password = dv.users[user]
        async with RawImap(dv.host, dv.port) as a, RawImap(dv.host, dv.port) as b:
            await a.login(user, password)
            await b.login(user, password)
            await b.command("CREATE Default")
            for text in ("ENABLE QRESYNC", NOTIFY):
                print("A:", text)
                for line in await a.command(text):
                    print("   ", line)
            await a.unsolicited(0.5)
            await a.send(b"i IDLE\r\n")
            print("A: i IDLE ->", await a.readline())
            for op in ("CREATE b2", "RENAME b2 b3"):
                print("B:", op, "->", (await b.command(op))[-1])
            print("B: APPEND Default ->", await append(b, "Default"))
            print("A receives within 10 s:", await a.unsolicited(10))
            print("B: APPEND Default ->", await append(b, "Default"))
            print("A receives within 5 s:", await a.unsolicited(5))


if __name__ == "__main__":
    asyncio.run(main())
