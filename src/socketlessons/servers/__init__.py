"""Background helper servers on loopback, one class per behaviour (see ``_base`` for the rules)."""

from ._base import (
    LoopbackServer,
    ServerError,
    ServerEvent,
    report_errors,
    running_servers,
    stop_all,
)
from ._loops import (
    LOOP_SERVERS,
    AsyncioServer,
    LoopServer,
    SelectorServer,
    SequentialServer,
    ThreadedServer,
)
from ._tcp import (
    ConnectionStats,
    DribbleServer,
    EchoServer,
    SilentServer,
    SinkServer,
    TCPServer,
)
from ._udp import MAX_DATAGRAM, UDPEchoServer

SERVER_KINDS: dict[str, type[LoopbackServer]] = {
    cls.kind: cls for cls in (EchoServer, UDPEchoServer, SinkServer, DribbleServer, SilentServer,
                              *LOOP_SERVERS.values())
}

__all__ = [
    "LOOP_SERVERS",
    "MAX_DATAGRAM",
    "AsyncioServer",
    "LoopServer",
    "SelectorServer",
    "SequentialServer",
    "ThreadedServer",
    "SERVER_KINDS",
    "ConnectionStats",
    "DribbleServer",
    "EchoServer",
    "LoopbackServer",
    "ServerError",
    "ServerEvent",
    "SilentServer",
    "SinkServer",
    "TCPServer",
    "UDPEchoServer",
    "report_errors",
    "running_servers",
    "stop_all",
]
