"""socketlessons: hands-on lessons on Python's ``socket`` module.

The lessons in ``notebooks/`` import everything they need from here: helper servers that run
in the background on loopback, the environment check, and (in later modules) measuring, plotting
and exercise-checking tools.

    >>> from socketlessons import EchoServer
    >>> with EchoServer() as server:
    ...     server.address[0]
    '127.0.0.1'
"""

from .addresses import IPV4_LOOPBACK, IPV6_LOOPBACK
from .doctor import doctor
from .errors import LoopbackOnlyError, ServerWarning
from .servers import (
    MAX_DATAGRAM,
    DribbleServer,
    EchoServer,
    LoopbackServer,
    ServerError,
    ServerEvent,
    SilentServer,
    SinkServer,
    UDPEchoServer,
    running_servers,
    stop_all,
)

__version__ = "0.1.0"

__all__ = [
    "IPV4_LOOPBACK",
    "IPV6_LOOPBACK",
    "MAX_DATAGRAM",
    "DribbleServer",
    "EchoServer",
    "LoopbackOnlyError",
    "LoopbackServer",
    "ServerError",
    "ServerEvent",
    "ServerWarning",
    "SilentServer",
    "SinkServer",
    "UDPEchoServer",
    "__version__",
    "doctor",
    "running_servers",
    "stop_all",
]
