"""The IMAP bytes of each sync step, built with our codec from the simulated account's data.

Every command and response is a typed value serialized by `cpmsync.imap` exactly as it goes on
the wire; nothing is a per-line constant. `ImapSession` feeds those bytes, flight by flight, into
a `WireCounter` so COMPRESS, TLS and TCP are counted on the real stream.

Strategies (how a client finds the folders that changed):
- ``list-status-per-folder``: LIST "" "*", then one STATUS per folder (pipelined in one flight, the
  cheapest way a client can do it, so the baseline is not made to look worse than it is);
- ``list-status``: LIST "" "*" RETURN (STATUS (...)) (RFC 5819);
- ``list-changedsince``: LIST (CHANGEDSINCE (m)) "" "*" RETURN (STATUS (...)) (the CR, Appendix I).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from cpmsync.daemon.discovery_strategy import DiscoveryStrategy
from cpmsync.simulator.account import Account, Folder, make_message
from cpmsync.simulator.wire import WireConfig, WireCount, WireCounter

__all__ = [
    "STATUS_ITEMS",
    "STRATEGIES",
    "ImapSession",
    "Strategy",
    "predict_catchup_bytes",
]

Strategy = DiscoveryStrategy
ServerStyle = Literal["cpmsync", "dovecot", "msgstore"]
# Most bytes first: the order of the simulator's tables.
STRATEGIES: tuple[Strategy, ...] = (
    DiscoveryStrategy.LIST_STATUS_PER_FOLDER,
    DiscoveryStrategy.LIST_STATUS,
    DiscoveryStrategy.LIST_CHANGEDSINCE,
)
STATUS_ITEMS: tuple[str, ...] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ")
DELIMITER = "/"
# Completion texts as our msgstore server words them (cpmsync/msgstore/session_mailbox.py): with
# COMPRESS a 3-folder LIST-CHANGEDSINCE answer is ~150 B, so a few bytes of wording show up.
_MSGSTORE_TEXTS = {
    "List completed.": "LIST completed",
    "Status completed.": "STATUS completed",
    "Enabled.": "ENABLE completed",
    "Examine completed.": "EXAMINE completed",
    "Fetch completed.": "FETCH completed",
    "Unselect completed.": "UNSELECT completed",
}
PREVIEW_BYTES = 256  # the daemon's [imap] preview_bytes default: the text preview it fetches
PREVIEW_RETRY_BYTES = 1024  # [imap] preview_retry_bytes: the longer prefix for multipart/CPIM misses
_INTERNALDATE = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # fixed width on the wire anyway
CAPABILITIES: tuple[str, ...] = (
    "IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+", "NOTIFY",
    "CONDSTORE", "QRESYNC", "LIST-STATUS", "LIST-CHANGEDSINCE", "COMPRESS=DEFLATE", "UIDPLUS",
    "AUTH=PLAIN",
)  # fmt: skip


def _imap() -> Any:
    """The codec, imported late so the simulator's pure radio parts work without it."""
    import cpmsync.imap as imap

    return imap


@functools.lru_cache(maxsize=500_000)
def _list_line(name: str, attributes: tuple[str, ...] = ()) -> bytes:
    imap = _imap()
    return bytes(
        imap.serialize_response(imap.ListData(attributes=attributes, delimiter=DELIMITER, name=name))
    )


@functools.lru_cache(maxsize=500_000)
def _status_line(name: str, values: tuple[int, ...], items: tuple[str, ...] = STATUS_ITEMS) -> bytes:
    imap = _imap()
    pairs = dict(zip(items, values, strict=True))
    return bytes(imap.serialize_response(imap.StatusData(mailbox=name, items=pairs)))


@functools.lru_cache(maxsize=500_000)
def _status_cmd_suffix(name: str, items: tuple[str, ...] = STATUS_ITEMS) -> bytes:
    """STATUS command bytes after the tag: serialized once per folder, the tag prepended per use."""
    imap = _imap()
    raw = bytes(
        imap.serialize_command(imap.StatusCommand(tag="T", mailbox=name, items=items), literal_plus=True)
    )
    return raw[1:]


@functools.lru_cache(maxsize=64)
def _ok_suffix(text: str) -> bytes:
    imap = _imap()
    return bytes(imap.serialize_response(imap.StatusResponse(tag="T", status="OK", text=text)))[1:]


def _text_of(raw: bytes) -> bytes:
    """BODY[TEXT]: the message after its header's blank line."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[i + len(sep) :]
    return b""


def _status_values(f: Folder, items: tuple[str, ...] = STATUS_ITEMS) -> tuple[int, ...]:
    if items is STATUS_ITEMS:
        return (f.messages, f.uidnext, f.uidvalidity, f.unseen, f.highestmodseq)
    return tuple(int(getattr(f, item.lower())) for item in items)


class ImapSession:
    """One client connection: tags, codec serialization, and the wire counter underneath."""

    def __init__(
        self,
        wire: WireConfig | None = None,
        *,
        user: str = "+15145550100",
        list_attributes: Mapping[str, tuple[str, ...]] | None = None,
        server_style: ServerStyle = "cpmsync",
    ) -> None:
        self.counter = WireCounter(wire)
        self.server_style = server_style
        self.user = user
        self._tag = 0
        # LIST attributes per folder as the server writes them (the CR's examples show "()";
        # Dovecot adds \HasNoChildren / \HasChildren); absent names get "()"
        self.list_attributes = list_attributes or {}
        self.noselect: set[str] = set()  # listed but not selectable: no STATUS for them
        self.selected: str | None = None  # the mailbox the session has EXAMINEd, if any

    def list_line(self, name: str) -> bytes:
        return _list_line(name, self.list_attributes.get(name, ()))

    def tag(self) -> str:
        self._tag += 1
        return f"a{self._tag}"

    def up(self, *cmds: object) -> None:
        imap = _imap()
        self.counter.send("up", b"".join(bytes(imap.serialize_command(c, literal_plus=True)) for c in cmds))

    def down(self, *resps: object) -> None:
        imap = _imap()
        self.counter.send("down", b"".join(bytes(imap.serialize_response(r)) for r in resps))

    def down_raw(self, data: bytes) -> None:
        self.counter.send("down", data)

    def ok_text(self, text: str) -> str:
        """Completion text as the server words it; Dovecot appends its command timing."""
        if self.server_style == "dovecot" and text.endswith(" completed."):
            return text[:-1] + " (0.001 + 0.000 secs)."
        if self.server_style == "msgstore":
            return _MSGSTORE_TEXTS.get(text, text)
        return text

    def ok(self, tag: str, text: str, code: object = None) -> object:
        return _imap().StatusResponse(tag=tag, status="OK", code=code, text=self.ok_text(text))

    # --- connection setup -------------------------------------------------------------
    def connect(self, *, compress: bool, password: str = "correct-horse-battery") -> None:
        """TCP + TLS, greeting, LOGIN, ENABLE QRESYNC and optional COMPRESS DEFLATE in one flight
        (as the daemon's `setup`: COMPRESS last, RFC 4978)."""
        imap = _imap()
        self.counter.connect()
        caps = imap.ResponseCode(name="CAPABILITY", value=CAPABILITIES)
        self.down(imap.StatusResponse(tag=None, status="OK", code=caps, text="Message Store ready."))
        t = self.tag()
        self.up(imap.LoginCommand(tag=t, username=self.user, password=password))
        self.down(self.ok(t, "Logged in", caps))
        t = self.tag()
        enable = imap.EnableCommand(tag=t, capabilities=("QRESYNC",))
        enabled = (imap.EnabledData(capabilities=("QRESYNC",)), self.ok(t, "Enabled."))
        if not compress:
            self.up(enable)
            self.down(*enabled)
            return
        tc = self.tag()
        self.up(enable, imap.CompressCommand(tag=tc, mechanism="DEFLATE"))
        self.down(*enabled, self.ok(tc, "Begin compression."))
        self.counter.start_compression()

    def notify(self) -> None:
        """NOTIFY SET STATUS for all personal mailboxes, then IDLE to wait for events."""
        imap = _imap()
        t = self.tag()
        events = tuple(
            imap.NotifyEvent(name=n) for n in ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName")
        )
        self.up(
            imap.NotifyCommand(
                tag=t, groups=(imap.NotifyGroup(filter="personal", events=events),), status=False
            )
        )
        self.down(self.ok(t, "NOTIFY completed"))
        self.idle()

    def idle(self) -> None:
        imap = _imap()
        self._idle_tag = self.tag()
        self.up(imap.IdleCommand(tag=self._idle_tag))
        self.down(imap.ContinuationRequest(text="idling"))

    def done(self) -> None:
        """End IDLE: DONE and its tagged OK (the counterpart of `idle`)."""
        self.counter.send("up", b"DONE\r\n")
        self.down(self.ok(self._idle_tag, "Idle completed."))

    def reidle(self) -> None:
        """Client keep-alive: DONE, tagged OK, IDLE again (RFC 2177 asks for this within 29 min)."""
        self.done()
        self.idle()

    def noop(self) -> None:
        imap = _imap()
        t = self.tag()
        self.up(imap.NoopCommand(tag=t))
        self.down(self.ok(t, "NOOP completed."))

    def server_keepalive(self) -> None:
        """Dovecot's imap_idle_notify_interval: an untagged OK while the client idles."""
        imap = _imap()
        self.down(imap.StatusResponse(tag=None, status="OK", text="Still here"))

    def logout(self) -> None:
        imap = _imap()
        t = self.tag()
        self.up(imap.LogoutCommand(tag=t))
        self.down(
            imap.StatusResponse(tag=None, status="BYE", text="Logging out"), self.ok(t, "Logout completed.")
        )
        self.counter.close()

    # --- sync -------------------------------------------------------------------------
    def discover(
        self,
        strategy: Strategy,
        folders: Mapping[str, Folder],
        changed: Iterable[str],
        last_modseq: int,
        *,
        status_items: tuple[str, ...] = STATUS_ITEMS,
        pipelined: bool = True,
    ) -> None:
        """Find the changed folders with `strategy` (the step LIST-CHANGEDSINCE shrinks).

        `status_items`: the STATUS items the client asks for, in its order (the daemon leaves
        UIDVALIDITY out under CHANGEDSINCE). `pipelined=False`: list-status-per-folder waits for each
        STATUS answer before the next command, one flight (and one deflate flush) per command
        each way, as the daemon does; the default is the cheapest client, all in one flight.
        """
        imap = _imap()
        items = status_items
        t = self.tag()
        done = self.ok(t, "List completed.")
        if strategy is DiscoveryStrategy.LIST_STATUS_PER_FOLDER:
            self.up(imap.ListCommand(tag=t, reference="", patterns=("*",)))
            body = b"".join(self.list_line(n) for n in folders)
            self.down_raw(body + bytes(imap.serialize_response(done)))
            cmds = []
            tail = []
            ok = _ok_suffix(self.ok_text("Status completed."))
            for n, f in folders.items():
                if n in self.noselect:
                    continue
                ts = self.tag().encode()
                cmd = ts + _status_cmd_suffix(n, items)
                answer = _status_line(n, _status_values(f, items), items) + ts + ok
                if pipelined:
                    cmds.append(cmd)
                    tail.append(answer)
                else:
                    self.counter.send("up", cmd)
                    self.down_raw(answer)
            if pipelined:
                self.counter.send("up", b"".join(cmds))
                self.down_raw(b"".join(tail))
            return
        if strategy.incremental:
            self.up(
                imap.ListCommand(
                    tag=t, reference="", patterns=("*",), changedsince=last_modseq, return_status=items
                )
            )
            names: Iterable[str] = [n for n in changed if n in folders]
        else:
            self.up(imap.ListCommand(tag=t, reference="", patterns=("*",), return_status=items))
            names = folders
        body = b"".join(
            self.list_line(n)
            + (b"" if n in self.noselect else _status_line(n, _status_values(folders[n], items), items))
            for n in names
        )
        self.down_raw(body + bytes(imap.serialize_response(done)))

    def sync_folder(
        self,
        folder: Folder,
        known_modseq: int,
        new_messages: Sequence[tuple[int, bytes]] = (),
        flag_changes: Sequence[int] = (),
        *,
        preview_bytes: int = PREVIEW_BYTES,
        preview_retry_bytes: int = PREVIEW_RETRY_BYTES,
    ) -> None:
        """One changed folder as the daemon syncs it (cpmsync/daemon/sync.py, QRESYNC path).

        EXAMINE with QRESYNC (UIDVALIDITY, the known MODSEQ and the UIDs the device holds); the
        server answers with the mailbox's state (an UNSELECT of the previous folder goes first, in
        the same write) and a FETCH (UID FLAGS MODSEQ) per known message whose
        flags changed. When EXISTS shows more messages than the device knows, one UID FETCH of
        `first_new:*` for the headers the UI shows: UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE
        ENVELOPE and a `preview_bytes` preview of the text (BODY.PEEK[TEXT]<0.n>, with the
        HEADER.FIELDS (CONTENT-TYPE CONTENT-TRANSFER-ENCODING) that say how to decode it), never the
        whole message; a second UID FETCH of `preview_retry_bytes` of TEXT for the multipart/CPIM
        messages whose prefix ended before their text part. The same for all strategies.
        `new_messages` are (uid, raw RFC 5322 bytes): their ENVELOPE and preview come from those bytes.
        """
        imap = _imap()
        rc = imap.ResponseCode
        n_known = max(0, folder.messages - len(new_messages))
        max_known = min((u for u, _ in new_messages), default=folder.uidnext) - 1
        # the device's UIDs, taken as one range just below the new ones (no expunged gaps)
        known = None
        if n_known and max_known >= 1:
            known = imap.SequenceSet(((max(1, max_known - n_known + 1), max_known),))
        qr = imap.QresyncParams(uidvalidity=folder.uidvalidity, modseq=known_modseq, known_uids=known)
        # The daemon closes the previous folder in the same write (imap_client.select): news the
        # server sends just before the switch then still names the old folder.
        closing = self.tag() if self.selected is not None else None
        t = self.tag()
        select = imap.SelectCommand(tag=t, mailbox=folder.name, readonly=True, qresync=qr)
        self.up(*([imap.UnselectCommand(tag=closing)] if closing else []), select)

        def code(name: str, value: object, text: str) -> object:
            return imap.StatusResponse(tag=None, status="OK", code=rc(name=name, value=value), text=text)

        msgstore = self.server_style == "msgstore"
        resps: list[object] = []
        if closing is not None:
            resps.append(self.ok(closing, "Unselect completed."))
        resps += [
            imap.FlagsData(flags=("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")),
            code(
                "PERMANENTFLAGS", (), "Limited" if self.server_style == "msgstore" else "Read-only mailbox."
            ),
            imap.ExistsData(count=folder.messages),
            imap.RecentData(count=len(new_messages)),
        ]
        if folder.unseen:  # the unseen messages taken as the newest
            resps.append(code("UNSEEN", folder.messages - folder.unseen + 1, "First unseen"))
        resps += [
            code("UIDVALIDITY", folder.uidvalidity, "UIDs valid"),
            code("UIDNEXT", folder.uidnext, "Predicted next UID"),
            code("HIGHESTMODSEQ", folder.highestmodseq, "Highest"),
        ]
        if msgstore:  # OBJECTID (RFC 8474): "F" + 24 hex digits
            mailboxid = "F" + hashlib.sha256(folder.name.encode()).hexdigest()[:24]
            resps.append(code("MAILBOXID", mailboxid, "Ok"))
        for uid in flag_changes:
            resps.append(
                imap.FetchData(
                    seq=max(1, min(uid, folder.messages)),
                    items={"UID": uid, "FLAGS": ("\\Seen",), "MODSEQ": folder.highestmodseq},
                )
            )
        resps.append(self.ok(t, "Examine completed.", rc(name="READ-ONLY")))
        self.down(*resps)
        self.selected = folder.name
        if not new_messages:
            return
        from cpmsync.daemon.preview import MIME_FIELDS, needs_more, text_preview
        from cpmsync.msgstore.fetch_render import body_section, envelope  # what a server derives

        t = self.tag()
        preview = imap.FetchBody(peek=True, text="TEXT", partial=(0, max(preview_bytes, 1)))
        items: list[object] = ["UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
        # with the preview, the Content-Type / Content-Transfer-Encoding fields to decode it
        mime = imap.FetchBody(peek=True, text="HEADER.FIELDS", fields=MIME_FIELDS)
        if preview_bytes > 0:
            items += [mime, preview]
        tail = imap.SequenceSet(((max_known + 1, imap.STAR),))
        self.up(imap.FetchCommand(tag=t, seqset=tail, items=tuple(items), uid=True))
        resps = []
        for i, (uid, raw) in enumerate(new_messages):
            data: dict[str, object] = {
                "UID": uid,
                "FLAGS": ("\\Recent",),
                "MODSEQ": folder.highestmodseq,
                "INTERNALDATE": _INTERNALDATE,
                "RFC822.SIZE": len(raw),
                "ENVELOPE": envelope(raw),
            }
            if preview_bytes > 0:
                data[mime.response_key] = body_section(raw, mime) or b""
                data[preview.response_key] = _text_of(raw)[:preview_bytes]
            resps.append(imap.FetchData(seq=n_known + 1 + i, items=data))
        resps.append(self.ok(t, "Fetch completed."))
        self.down(*resps)
        retry: list[tuple[int, int, bytes]] = []  # (seq, uid, text) the daemon fetches again
        for i, (uid, raw) in enumerate(new_messages):
            mime_raw, text = body_section(raw, mime), _text_of(raw)
            cut = text[:preview_bytes]
            if needs_more(mime_raw, cut, preview_bytes, text_preview(mime_raw, cut, preview_bytes)):
                retry.append((n_known + 1 + i, uid, text))
        if not retry or preview_retry_bytes <= preview_bytes:
            return
        t = self.tag()
        longer = imap.FetchBody(peek=True, text="TEXT", partial=(0, preview_retry_bytes))
        uids = imap.SequenceSet.from_ints(sorted(u for _, u, _ in retry))
        self.up(imap.FetchCommand(tag=t, seqset=uids, items=("UID", longer), uid=True))
        self.down(
            *[
                imap.FetchData(seq=seq, items={"UID": uid, longer.response_key: text[:preview_retry_bytes]})
                for seq, uid, text in retry
            ],
            self.ok(t, "Fetch completed."),
        )

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        """Commands and answers inside go out as one flight each way, as the daemon's multi-folder
        sync pipelines EXAMINE + UID FETCH of folder after folder (daemon/sync_many.py): one
        deflate flush per direction instead of one per command."""
        real = self.counter.send
        held: dict[str, list[bytes]] = {"up": [], "down": []}

        def hold(direction: str, data: bytes) -> None:
            held[direction].append(data)

        self.counter.send = hold  # type: ignore[method-assign]
        try:
            yield
        finally:
            self.counter.send = real  # type: ignore[method-assign]
            for direction in ("up", "down"):
                if held[direction]:
                    real(direction, b"".join(held[direction]))

    def unselect(self) -> None:
        """UNSELECT after the last folder (the daemon EXAMINEs, so nothing to expunge)."""
        imap = _imap()
        if self.selected is None:
            return
        t = self.tag()
        self.up(imap.UnselectCommand(tag=t))
        self.down(self.ok(t, "Unselect completed."))
        self.selected = None

    def apply_actions(self, folder: str, uids: Sequence[int], modseq: int) -> None:
        """An app's actions on one folder as the daemon sends them (daemon/actions.py): SELECT,
        one UID STORE per message with UNCHANGEDSINCE, UNSELECT, pipelined in one flight."""
        imap = _imap()
        rc = imap.ResponseCode
        select = self.tag()
        stores = [self.tag() for _ in uids]
        unselect = self.tag()
        self.up(
            imap.SelectCommand(tag=select, mailbox=folder),
            *(
                imap.StoreCommand(
                    tag=t,
                    seqset=imap.SequenceSet.from_ints([u]),
                    mode="+",
                    flags=("\\Seen",),
                    silent=True,
                    uid=True,
                    unchangedsince=modseq,
                )
                for t, u in zip(stores, uids, strict=True)
            ),
            imap.UnselectCommand(tag=unselect),
        )
        self.down(
            imap.FlagsData(flags=("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")),
            imap.ExistsData(count=len(uids)),
            imap.StatusResponse(
                tag=None, status="OK", code=rc(name="HIGHESTMODSEQ", value=modseq), text="Highest"
            ),
            self.ok(select, "Select completed.", rc(name="READ-WRITE")),
            *(self.ok(t, "Store completed.") for t in stores),
            self.ok(unselect, "Unselect completed."),
        )

    def push_status(self, folder: Folder) -> None:
        """A NOTIFY event for a non-selected mailbox: an untagged STATUS (RFC 5465 §5.2)."""
        self.down_raw(_status_line(folder.name, _status_values(folder)))

    def finish(self) -> WireCount:
        return self.counter.finish()


def predict_catchup_bytes(
    folder_names: Sequence[str],
    statuses: Mapping[str, Mapping[str, int]],
    changed: Iterable[str],
    strategy: Strategy,
    compress: bool,
    *,
    last_modseq: int = 0,
    wire: WireConfig | None = None,
    connect: bool = True,
    fetch_changed: bool = False,
    logout: bool = False,
    list_attributes: Mapping[str, tuple[str, ...]] | None = None,
    server_style: ServerStyle = "cpmsync",
    status_items: Sequence[str] = STATUS_ITEMS,
    pipelined: bool = True,
    new_messages: Mapping[str, Sequence[bytes]] | None = None,
    flag_changes: Mapping[str, Sequence[int]] | None = None,
    known_modseqs: Mapping[str, int] | None = None,
    preview_bytes: int = PREVIEW_BYTES,
    setup: Callable[[ImapSession], None] | None = None,
) -> WireCount:
    """Bytes of one catch-up sync against an account of this exact shape.

    `statuses` maps each folder name to its STATUS items (MESSAGES, UIDNEXT, UIDVALIDITY,
    UNSEEN, HIGHESTMODSEQ; missing items default to 0). `changed` names the folders whose
    HIGHESTMODSEQ is above `last_modseq` (LIST-CHANGEDSINCE returns exactly those). With
    `connect` the TCP, TLS, greeting, LOGIN, ENABLE and COMPRESS exchanges are included;
    `fetch_changed` adds what the daemon does per changed folder (`ImapSession.sync_folder`):
    EXAMINE with QRESYNC (known MODSEQ from `known_modseqs`, else `last_modseq`), the flag
    changes of `flag_changes[name]` (UIDs) in its answer, a UID FETCH of the headers and a
    `preview_bytes` text preview of `new_messages[name]` (raw messages, the newest UIDs below
    UIDNEXT), and one UNSELECT at the end. `list_attributes` gives the
    LIST attributes the server writes per folder (default none, as in the CR's examples);
    `server_style="dovecot"` words completion texts as Dovecot does (with its timing),
    `"msgstore"` as our msgstore server does.
    `status_items` / `pipelined`: what the client asks STATUS for and whether list-status-per-folder
    pipelines its STATUS commands (see `ImapSession.discover`); the defaults are the cheapest
    client, the daemon's own choices can be passed to predict its bytes.
    `setup` runs on the session first (after `connect`, if any) and its bytes are left out of the
    result: it replays what a real connection sent before the metered catch-up, so a COMPRESS
    stream carries that deflate history (e.g. a NOTIFY SET before the catch-up).
    Folders without STATUS (\\NoSelect parents) can be left out of `statuses`: they then get a
    LIST line but no STATUS line. Returns per-layer totals (`imap_up`/`imap_down`,
    `wire_up`/`wire_down`, ...).
    """
    folders: dict[str, Folder] = {}
    for n in folder_names:
        s = statuses.get(n, {})
        folders[n] = Folder(
            n,
            int(s.get("UIDVALIDITY", 1)),
            int(s.get("UIDNEXT", 1)),
            int(s.get("MESSAGES", 0)),
            int(s.get("UNSEEN", 0)),
            int(s.get("HIGHESTMODSEQ", 0)),
        )
    sess = ImapSession(wire, list_attributes=list_attributes, server_style=server_style)
    sess.noselect = {n for n in folder_names if n not in statuses}
    if connect:
        sess.connect(compress=compress)
    elif compress:
        sess.counter.start_compression()
    before = WireCount()
    if setup is not None:
        setup(sess)
        before = dataclasses.replace(sess.counter.count, flights=list(sess.counter.count.flights))
    changed_list = list(changed)
    sess.discover(
        strategy, folders, changed_list, last_modseq, status_items=tuple(status_items), pipelined=pipelined
    )
    if fetch_changed:
        with sess.pipelined():
            for n in changed_list:
                if n not in folders:
                    continue
                f = folders[n]
                raws = list((new_messages or {}).get(n, ()))
                first = f.uidnext - len(raws)
                sess.sync_folder(
                    f,
                    (known_modseqs or {}).get(n, last_modseq),
                    [(first + i, raw) for i, raw in enumerate(raws)],
                    list((flag_changes or {}).get(n, ())),
                    preview_bytes=preview_bytes,
                )
            sess.unselect()
    if logout:
        sess.logout()
    after = sess.finish()
    if setup is None:
        return after
    return WireCount(
        **{k: v - getattr(before, k) for k, v in after.as_dict().items()},
        flights=after.flights[len(before.flights) :],
    )


def account_catchup_bytes(
    acct: Account,
    changed: Sequence[str],
    strategy: Strategy,
    compress: bool,
    *,
    wire: WireConfig | None = None,
    last_modseq: int | None = None,
    seed: int = 0,
) -> WireCount:
    """`simulate bytes`: connect, discover, fetch one new message's headers and preview in each
    changed folder (as the daemon does), unselect, log out."""
    rng = random.Random(seed)
    base = last_modseq if last_modseq is not None else acct.modseq
    news: dict[str, list[tuple[int, bytes]]] = {}
    for n in changed:
        uid = acct.new_message(n)
        news[n] = [
            (uid, make_message(rng, n if n.startswith("tel:") else "tel:+15145550199", acct_user(), uid))
        ]
    sess = ImapSession(wire)
    sess.connect(compress=compress)
    sess.discover(strategy, acct.folders, changed, base)
    for n in changed:
        sess.sync_folder(acct.folders[n], base, news[n])
    sess.unselect()
    sess.logout()
    return sess.finish()


def acct_user() -> str:
    return "tel:+15145550100"
