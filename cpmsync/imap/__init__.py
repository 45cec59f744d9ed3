"""Sans-I/O IMAP codec shared by the msgstore server and the daemon client.

Feed bytes in, get typed values out; build typed values, get bytes out (the h11 pattern). No
sockets, no asyncio. See /work/notes/codec-api.md (and the module docstrings) for the contract.
"""

from ._lexer import RawValue
from .datetimes import format_date, format_datetime, parse_date, parse_datetime
from .errors import BadCommandError, ImapLimitError, ImapProtocolError, UnknownCommandError
from .events import NEED_DATA, ContinuationNeeded, NeedData, RawLine
from .mutf7 import decode_mailbox, encode_mailbox
from .response_parser import ResponseParser, parse_response
from .response_writer import serialize_response
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
from .seqset import MAX_UID, STAR, SequenceSet

__all__ = [
    "MAX_UID",
    "NEED_DATA",
    "STAR",
    "Address",
    "AppendUid",
    "BadCommandError",
    "CapabilityData",
    "CodeValue",
    "ContinuationNeeded",
    "ContinuationRequest",
    "CopyUid",
    "ESearchData",
    "EnabledData",
    "Envelope",
    "ExistsData",
    "ExpungeData",
    "FetchData",
    "FetchValue",
    "FlagsData",
    "IdData",
    "ImapLimitError",
    "ImapProtocolError",
    "ListData",
    "NamespaceData",
    "NamespaceDesc",
    "NeedData",
    "RawLine",
    "RawValue",
    "RecentData",
    "Response",
    "ResponseCode",
    "ResponseParser",
    "SearchData",
    "SequenceSet",
    "StatusData",
    "StatusResponse",
    "UnknownCommandError",
    "UnknownResponse",
    "VanishedData",
    "decode_mailbox",
    "encode_mailbox",
    "format_date",
    "format_datetime",
    "parse_date",
    "parse_datetime",
    "parse_response",
    "serialize_response",
]
