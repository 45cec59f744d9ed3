"""Sans-I/O IMAP codec shared by the msgstore server and the daemon client.

Feed bytes in, get typed values out; build typed values, get bytes out (the h11 pattern). No
sockets, no asyncio, no threads, no recursion that grows with the input.

Client side::

    p = ResponseParser()
    for chunk in command_chunks(ListCommand("a1", "", ("*",), changedsince=821102884)):
        send(chunk)            # before each chunk after the first, wait for a ContinuationRequest
    p.feed(received_bytes)     # any chunking
    for resp in p.events():    # ListData, StatusData, StatusResponse("a1", "OK", ...), ...
        ...

Server side::

    p = CommandParser()
    p.feed(received_bytes)
    while (ev := p.next_event()) is not NEED_DATA:   # ContinuationNeeded / RawLine / a *Command
        send(serialize_response(StatusResponse(ev.tag, "OK", None, "done")))

Every malformed input raises an ImapProtocolError subclass after the bad line was consumed; the
parser then continues with the next line. Limits are constructor keywords (max_line_bytes,
max_literal_bytes, max_message_bytes).
"""

from ._lexer import Adjacent, RawValue
from .command_parser import CommandParser, parse_command
from .command_writer import command_chunks, fetch_att_bytes, serialize_command
from .commands import (
    AppendCommand,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    Command,
    CompressCommand,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExpungeCommand,
    FetchAtt,
    FetchBody,
    FetchCommand,
    IdCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    NotifyCommand,
    NotifyEvent,
    NotifyGroup,
    QresyncParams,
    RenameCommand,
    SearchArg,
    SearchCommand,
    SearchKey,
    SelectCommand,
    StartTlsCommand,
    StatusCommand,
    StoreCommand,
    SubscribeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)
from .datetimes import format_date, format_datetime, parse_date, parse_datetime
from .errors import (
    BadCommandError,
    ImapLimitError,
    ImapProtocolError,
    InvalidMailboxNameError,
    UnknownCommandError,
)
from .events import NEED_DATA, ContinuationNeeded, NeedData, RawLine
from .mutf7 import decode_mailbox, encode_mailbox
from .response_parser import ResponseParser, parse_response
from .response_writer import MailboxStyle, serialize_response
from .responses import (
    Address,
    AppendUid,
    CapabilityData,
    CodeValue,
    ContinuationRequest,
    CopyUid,
    EnabledData,
    Envelope,
    ESearchData,
    ExistsData,
    ExpungeData,
    FetchData,
    FetchValue,
    FlagsData,
    IdData,
    ListData,
    NamespaceData,
    NamespaceDesc,
    RecentData,
    Response,
    ResponseCode,
    SearchData,
    StatusData,
    StatusResponse,
    UnknownResponse,
    VanishedData,
)
from .sasl import IDLE_DONE, SASL_CANCEL, decode_sasl_response, encode_sasl_response, is_idle_done
from .seqset import MAX_UID, STAR, SequenceSet

__all__ = [
    "IDLE_DONE",
    "MAX_UID",
    "NEED_DATA",
    "SASL_CANCEL",
    "STAR",
    "Address",
    "Adjacent",
    "AppendCommand",
    "AppendUid",
    "AuthenticateCommand",
    "BadCommandError",
    "CapabilityCommand",
    "CapabilityData",
    "CheckCommand",
    "CloseCommand",
    "CodeValue",
    "Command",
    "CommandParser",
    "CompressCommand",
    "ContinuationNeeded",
    "ContinuationRequest",
    "CopyCommand",
    "CopyUid",
    "CreateCommand",
    "DeleteCommand",
    "ESearchData",
    "EnableCommand",
    "EnabledData",
    "Envelope",
    "ExistsData",
    "ExpungeCommand",
    "ExpungeData",
    "FetchAtt",
    "FetchBody",
    "FetchCommand",
    "FetchData",
    "FetchValue",
    "FlagsData",
    "IdCommand",
    "IdData",
    "IdleCommand",
    "ImapLimitError",
    "ImapProtocolError",
    "InvalidMailboxNameError",
    "ListCommand",
    "ListData",
    "LoginCommand",
    "LogoutCommand",
    "LsubCommand",
    "MailboxStyle",
    "MoveCommand",
    "NamespaceCommand",
    "NamespaceData",
    "NamespaceDesc",
    "NeedData",
    "NoopCommand",
    "NotifyCommand",
    "NotifyEvent",
    "NotifyGroup",
    "QresyncParams",
    "RawLine",
    "RawValue",
    "RecentData",
    "RenameCommand",
    "Response",
    "ResponseCode",
    "ResponseParser",
    "SearchArg",
    "SearchCommand",
    "SearchData",
    "SearchKey",
    "SelectCommand",
    "SequenceSet",
    "StartTlsCommand",
    "StatusCommand",
    "StatusData",
    "StatusResponse",
    "StoreCommand",
    "SubscribeCommand",
    "UnknownCommandError",
    "UnknownResponse",
    "UnselectCommand",
    "UnsubscribeCommand",
    "VanishedData",
    "command_chunks",
    "decode_mailbox",
    "decode_sasl_response",
    "encode_mailbox",
    "encode_sasl_response",
    "fetch_att_bytes",
    "format_date",
    "format_datetime",
    "is_idle_done",
    "parse_command",
    "parse_date",
    "parse_datetime",
    "parse_response",
    "serialize_command",
    "serialize_response",
]
