"""The CR's Appendix I.4 examples (docs/spec/cpm-ms-list-changedsince-cr.txt), both directions.

The CR prints typographic quotes; the wire uses ASCII '"'. Each C: line must parse as a command
and build back byte-exact; each S: line must parse as a response and write back byte-exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from imap_testlib import feed_commands, feed_responses

from cpmsync.imap import (
    ListCommand,
    ListData,
    StatusData,
    StatusResponse,
    command_chunks,
    parse_command,
    serialize_command,
    serialize_response,
)

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "cpm-ms-list-changedsince-cr.txt"

EXAMPLE_1_C = b'a23 LIST (CHANGEDSINCE (821102884)) "" *\r\n'
EXAMPLE_1_S = (
    b'* LIST (\\Marked \\NoInferiors) "/" "Default"\r\n'
    b'* LIST () "/" "tel:15143457900"\r\n'
    b'* LIST () "/" "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"\r\n'
    b'* LIST () "/" "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2"\r\n'
    b"a23 OK LIST Completed\r\n"
)
EXAMPLE_2_C = b'a24 LIST (CHANGEDSINCE (821102884)) "" * RETURN (STATUS (UIDNEXT HIGHESTMODSEQ))\r\n'
EXAMPLE_2_S = (
    b'* LIST (\\Marked \\NoInferiors) "/" "Default"\r\n'
    b'* STATUS "Default" (UIDNEXT 1782 HIGHESTMODSEQ 821109221)\r\n'
    b'* LIST () "/" "tel:15143457900"\r\n'
    b'* STATUS "tel:15143457900" (UIDNEXT 17 HIGHESTMODSEQ 821102893)\r\n'
    b'* LIST () "/" "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2"\r\n'
    b'* STATUS "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2" '
    b"(UIDNEXT 8 HIGHESTMODSEQ 821106452)\r\n"
    b'* LIST () "/" "a81d4fae-7dec-11d0-a765-00a0c91e6bf1/afed4fae-3dec-11d0-a765-00a0c91a3bf5"\r\n'
    b'* STATUS "a81d4fae-7dec-11d0-a765-00a0c91e6bf1/afed4fae-3dec-11d0-a765-00a0c91a3bf5" '
    b"(UIDNEXT 88 HIGHESTMODSEQ 821108927)\r\n"
    b"a24 OK LIST Completed\r\n"
)


def _spec_lines(prefix: str) -> list[bytes]:
    text = SPEC.read_text(encoding="utf-8")
    body = text[text.index("I.4") :]
    body = body[: body.index("I.5")]
    out = []
    for line in body.splitlines():
        if line.startswith(prefix):
            wire = line[len(prefix) :].strip().replace("“", '"').replace("”", '"')
            out.append(wire.encode("ascii") + b"\r\n")
    return out


def test_our_copies_match_the_spec_text() -> None:
    assert SPEC.exists(), "docs/spec/ must carry the CR so the repository stands alone"
    assert _spec_lines("C: ") == [EXAMPLE_1_C, EXAMPLE_2_C]
    assert b"".join(_spec_lines("S: ")) == EXAMPLE_1_S + EXAMPLE_2_S


def test_cr_i4_example1_command() -> None:
    cmd = parse_command(EXAMPLE_1_C)
    assert cmd == ListCommand("a23", "", ("*",), changedsince=821102884)
    assert serialize_command(cmd) == EXAMPLE_1_C
    assert command_chunks(cmd) == [EXAMPLE_1_C]  # no literal: one send


def test_cr_i4_example2_command() -> None:
    cmd = parse_command(EXAMPLE_2_C)
    assert cmd == ListCommand(
        "a24", "", ("*",), changedsince=821102884, return_status=("UIDNEXT", "HIGHESTMODSEQ")
    )
    assert serialize_command(cmd) == EXAMPLE_2_C


def test_cr_i4_example1_responses() -> None:
    evs = feed_responses(EXAMPLE_1_S)
    assert evs[0] == ListData(("\\Marked", "\\NoInferiors"), "/", "Default")
    assert [e.name for e in evs[:-1]] == [  # type: ignore[attr-defined]
        "Default",
        "tel:15143457900",
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2",
    ]
    assert evs[-1] == StatusResponse("a23", "OK", None, "LIST Completed")
    assert b"".join(serialize_response(e) for e in evs) == EXAMPLE_1_S  # type: ignore[arg-type]


def test_cr_i4_example2_responses() -> None:
    evs = feed_responses(EXAMPLE_2_S)
    statuses = [e for e in evs if isinstance(e, StatusData)]
    assert [(s.mailbox, s.uidnext, s.highestmodseq) for s in statuses] == [
        ("Default", 1782, 821109221),
        ("tel:15143457900", 17, 821102893),
        ("f81d4fae-7dec-11d0-a765-00a0c91e6bf5/dfed4fae-3dec-11d0-a765-00a0c91a3bf2", 8, 821106452),
        ("a81d4fae-7dec-11d0-a765-00a0c91e6bf1/afed4fae-3dec-11d0-a765-00a0c91a3bf5", 88, 821108927),
    ]
    assert b"".join(serialize_response(e) for e in evs) == EXAMPLE_2_S  # type: ignore[arg-type]


@pytest.mark.parametrize("wire", [EXAMPLE_1_S, EXAMPLE_2_S, EXAMPLE_1_C + EXAMPLE_2_C])
def test_cr_examples_one_byte_at_a_time(wire: bytes) -> None:
    if wire.startswith(b"a23 LIST"):
        assert feed_commands(wire, chunk=1) == feed_commands(wire)
    else:
        assert feed_responses(wire, chunk=1) == feed_responses(wire)
