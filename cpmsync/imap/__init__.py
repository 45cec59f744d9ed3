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

from ._lexer import Adjacent as Adjacent
from ._lexer import RawValue as RawValue
from .command_parser import *  # noqa: F403
from .command_writer import *  # noqa: F403
from .commands import *  # noqa: F403
from .datetimes import *  # noqa: F403
from .errors import *  # noqa: F403
from .events import *  # noqa: F403
from .mutf7 import *  # noqa: F403
from .response_parser import *  # noqa: F403
from .response_writer import *  # noqa: F403
from .responses import *  # noqa: F403
from .sasl import *  # noqa: F403
from .seqset import *  # noqa: F403

# The public names are those the modules list in their __all__ (star imports take exactly
# those, and re-export them), not a copy here.
