# ruff: noqa: E501  (strategy tables stay one concept per line)
"""The modules a build compiles with mypyc (cpmsync/native.py) behave as their source run as Python.

The rest of the suite runs the installed modules, compiled in CI; a device without a C compiler
runs the same source as Python. Each test here loads that source under another name and holds the
two to each other on generated input: same events, same values, same errors."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
import sys
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imap_testlib import errors_equal, events_of
from test_imap_properties import addr_lists, commands, envelopes, garbage, names, responses

from cpmsync import native
from cpmsync.imap import (
    Address,
    FetchBody,
    FetchCommand,
    ImapProtocolError,
    ListCommand,
    ResponseParser,
    serialize_response,
)

MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _pure(name: str) -> ModuleType:
    """`name`'s .py source, executed as a module of its own package (relative imports resolve to
    the installed siblings), beside the installed module."""
    installed = importlib.import_module(name)
    if not any(b.compiled for b in native.builds() if b.name == name):
        # Not a skip: the README's test command always compiles (.ci/run installs gcc), so an
        # installation without the build has lost it, and the comparison would say nothing.
        pytest.fail(
            f"{name} runs as Python here ({native.summary()}): nothing compiled to compare; build with a C"
            " compiler and without CPMSYNC_PURE_PYTHON (pip install -e .)"
        )
    package, leaf = name.rsplit(".", 1)
    source = os.path.join(os.path.dirname(installed.__file__ or ""), leaf + ".py")
    spec = importlib.util.spec_from_file_location(f"{package}._pure_{leaf}", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _outcome(fn: Any, *args: Any) -> Any:
    """What a call gives: its value, or its error's type and text."""
    try:
        return ("value", fn(*args))
    except Exception as e:
        return ("error", type(e).__name__, str(e))


def test_the_tested_build_runs_every_listed_module_compiled() -> None:
    """The README's test command builds with mypyc: a build that quietly fell back to Python would
    make the speed figures false. (A module compiled from an older source than the one beside it
    stops the suite before any test: tests/conftest.py.)"""
    assert [b.name for b in native.builds() if not b.compiled] == [], native.summary()
    assert native.summary() == "codec compiled with mypyc"


@MANY
@given(
    st.one_of(
        st.lists(responses, min_size=1, max_size=5).map(
            lambda rs: b"".join(serialize_response(r) for r in rs)
        ),
        garbage,
    ),
    st.integers(min_value=1, max_value=64),
)
def test_the_response_parser_gives_the_same_events_compiled_and_pure(data: bytes, chunk: int) -> None:
    pure = _pure("cpmsync.imap.response_parser")
    data += b"\r\n"
    limits = {"max_line_bytes": 300, "max_literal_bytes": 200}
    compiled_events = events_of(ResponseParser(**limits), data, chunk)
    pure_events = events_of(pure.ResponseParser(**limits), data, chunk)
    assert errors_equal(compiled_events, pure_events), (compiled_events, pure_events)


def _frames(framer_class: Any, data: bytes, chunk: int, stop: bool) -> list[object]:
    f = framer_class(300, 200, 600, 50)
    out: list[object] = []
    for i in range(0, len(data), chunk):
        f.feed(data[i : i + chunk])
        while True:
            try:
                frame = f.next_frame(sync_literals_stop=stop)
            except ImapProtocolError as e:
                out.append(("error", type(e).__name__, e.message))
                continue
            out.append(("continuation", f.pop_continuation()))
            if frame is None:
                break
            out.append(bytes(frame))
    return out


@MANY
@given(
    st.lists(
        st.one_of(garbage, st.sampled_from([b"{40}\r\n", b"{400}\r\n", b"{3+}\r\n", b"x" * 350])), max_size=6
    ).map(b"".join),
    st.integers(min_value=1, max_value=64),
    st.booleans(),
)
def test_the_framer_cuts_the_same_lines_compiled_and_pure(data: bytes, chunk: int, stop: bool) -> None:
    pure = _pure("cpmsync.imap._framer")
    from cpmsync.imap import _framer

    data += b"\r\n"
    assert _frames(_framer.Framer, data, chunk, stop) == _frames(pure.Framer, data, chunk, stop)


@MANY
@given(
    st.one_of(
        st.sampled_from(["1,3:5,7", "*", "1:*", "4294967295", "0", "3:1", "1,,2", "1:2:3", "", " 1"]),
        st.from_regex(r"[0-9:,*]{0,24}", fullmatch=True),
    )
)
def test_sequence_sets_parse_and_expand_the_same_compiled_and_pure(text: str) -> None:
    pure = _pure("cpmsync.imap.seqset")
    from cpmsync.imap import seqset

    def run(m: Any) -> Any:
        s = m.SequenceSet.parse(text)
        return (str(s), [s.contains(n, 50) for n in range(0, 60)], list(s.iter_ints(40)))

    assert _outcome(run, seqset) == _outcome(run, pure)


@MANY
@given(st.one_of(names, st.text(alphabet="&-ABCabc+/,01 ", max_size=20)))
def test_mailbox_names_encode_and_decode_the_same_compiled_and_pure(name: str) -> None:
    pure = _pure("cpmsync.imap.mutf7")
    from cpmsync.imap import mutf7

    for fn in ("encode_mailbox", "decode_mailbox"):
        assert _outcome(getattr(mutf7, fn), name) == _outcome(getattr(pure, fn), name)


dates = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC))


@MANY
@given(
    st.one_of(
        dates.map(lambda d: d.strftime("%d-%b-%Y %H:%M:%S +0000")),
        dates.map(lambda d: d.strftime(" %-d-%b-%Y %H:%M:%S -0130")),
        st.from_regex(r"[0-9 ]{0,3}-[A-Za-z]{3}-[0-9]{4} [0-9:]{8} [+-][0-9]{4}", fullmatch=True),
        st.text(max_size=30),
    )
)
def test_internal_dates_parse_the_same_compiled_and_pure(text: str) -> None:
    pure = _pure("cpmsync.imap.datetimes")
    from cpmsync.imap import datetimes

    assert _outcome(datetimes.parse_datetime, text) == _outcome(pure.parse_datetime, text)
    assert _outcome(datetimes.parse_date, text[:11]) == _outcome(pure.parse_date, text[:11])


header_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "=?UTF-8?B?w6lsw6hu?= <elen@example.com>",
            "=?ISO-8859-1?Q?Andr=E9?= <a@b.c>, tel:+4915112345",
            "Fri, 04 Dec 2026 17:42:50 +0100",
            "4 Dec 2026 17:42 GMT",
            "Mon, 31 Feb 2026 25:61:61 +9999",
            '"Last, First" <x@y>, undisclosed-recipients:;',
        ]
    ),
)


@MANY
@given(header_text, st.binary(max_size=200))
def test_headers_read_the_same_compiled_and_pure(value: str, raw: bytes) -> None:
    pure = _pure("cpmsync.daemon.headers")
    from cpmsync.daemon import headers

    for fn in ("header_date", "decode_words", "field_addresses"):
        assert _outcome(getattr(headers, fn), value) == _outcome(getattr(pure, fn), value), fn
    head = b"From: " + value.encode("utf-8", "surrogateescape") + b"\r\nTo: " + raw + b"\r\n\r\n"
    for field in ("from", "to"):
        assert _outcome(headers.header_addresses, head, field) == _outcome(pure.header_addresses, head, field)


group_or_odd = st.sampled_from(
    [
        (
            Address(None, None, "friends", None),
            Address("=?UTF-8?Q?Ren=C3=A9?=", None, "r", "x.y"),
            Address(None, None, None, None),
        ),
        (Address(None, None, "user", "MISSING_DOMAIN"), Address(None, None, "b", ".SYNTAX-ERROR.")),
        (Address("Only Name", None, None, None),),
    ]
)


@MANY
@given(st.one_of(addr_lists, group_or_odd), envelopes)
def test_envelope_addresses_read_the_same_compiled_and_pure(addrs: Any, env: Any) -> None:
    pure = _pure("cpmsync.daemon.headers")
    from cpmsync.daemon import headers

    for fn in ("envelope_addresses", "usable"):
        assert _outcome(getattr(headers, fn), addrs) == _outcome(getattr(pure, fn), addrs), fn
    assert _outcome(headers.garbled_envelope, env) == _outcome(pure.garbled_envelope, env)


mime_heads = st.one_of(
    st.binary(max_size=120),
    st.sampled_from(
        [
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
            b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            b"Content-Type: multipart/alternative; boundary=xx\r\n\r\n",
            b"Content-Type: message/cpim\r\n\r\n",
            b"Content-Transfer-Encoding: base64\r\n\r\n",
        ]
    ),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode()),
    st.sampled_from(
        [
            b"--xx\r\nContent-Type: text/plain\r\n\r\nhello =E9\r\n--xx--\r\n",
            b"From: a@b\r\nContent-Type: text/plain\r\n\r\nchat text",
            b"aGVsbG8gd29ybGQ=\r\n",
        ]
    ),
)


@MANY
@given(mime_heads, bodies, st.integers(0, 200))
def test_previews_are_the_same_compiled_and_pure(head: bytes, body: bytes, limit: int) -> None:
    pure = _pure("cpmsync.daemon.preview")
    from cpmsync.daemon import preview

    got = _outcome(preview.text_preview, head, body, limit)
    assert got == _outcome(pure.text_preview, head, body, limit)
    text = got[1] if got[0] == "value" else None
    assert _outcome(preview.needs_more, head, body, limit, text) == _outcome(
        pure.needs_more, head, body, limit, text
    )


def _twin(value: Any, pure: ModuleType, compiled: ModuleType) -> Any:
    """`value` built again from the pure module's classes (nested values too), field by field."""
    if type(value).__module__ == compiled.__name__ and dataclasses.is_dataclass(value):
        cls = getattr(pure, type(value).__name__)
        kwargs = {
            f.name: _twin(getattr(value, f.name), pure, compiled) for f in dataclasses.fields(value) if f.init
        }
        return cls(**kwargs)
    if isinstance(value, tuple | list):
        return type(value)(_twin(v, pure, compiled) for v in value)
    if isinstance(value, dict):
        return {k: _twin(v, pure, compiled) for k, v in value.items()}
    return value


def _same_value_class(value: Any, pure: ModuleType) -> Any:
    """The compiled dataclass and its source behave alike: repr (a password or body masked the
    same), equality, hash (or the refusal to hash a dict inside), replace, and refusing assignment
    (frozen). Returns the pure twin."""
    compiled = sys.modules[type(value).__module__]
    twin = _twin(value, pure, compiled)
    assert type(twin) is not type(value) and type(twin).__name__ == type(value).__name__
    assert repr(twin) == repr(value)
    assert _twin(value, pure, compiled) == twin and dataclasses.replace(value) == value
    assert _outcome(hash, twin) == _outcome(hash, value)
    first = dataclasses.fields(value)[0].name
    assert repr(dataclasses.replace(twin, **{first: getattr(value, first)})) == repr(value)
    for v in (value, twin):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(v, first, getattr(v, first))
    return twin


@MANY
@given(responses)
def test_response_values_are_the_same_compiled_and_pure(r: Any) -> None:
    _same_value_class(r, _pure("cpmsync.imap.responses"))


@MANY
@given(commands)
def test_command_values_are_the_same_compiled_and_pure(cmd: Any) -> None:
    twin = _same_value_class(cmd, _pure("cpmsync.imap.commands"))
    if isinstance(cmd, FetchCommand):  # what a FETCH's answer is keyed by
        for att, att_twin in zip(cmd.items, twin.items, strict=True):
            if isinstance(att, FetchBody):
                assert (att.section, att.response_key) == (att_twin.section, att_twin.response_key)
    if isinstance(cmd, ListCommand):
        assert cmd.is_extended == twin.is_extended


def test_every_listed_module_has_a_test_here() -> None:
    """A module added to cpmsync.native.COMPILED needs its comparison above."""
    source = open(__file__, encoding="utf-8").read()
    for name in native.COMPILED:
        assert f'_pure("{name}")' in source, name
