"""socketlessons: hands-on lessons on Python's ``socket`` module.

The lessons in ``notebooks/`` import everything they need from here: helper servers that run
in the background on loopback, the environment check, and (in later modules) measuring, plotting
and exercise-checking tools.

    >>> from socketlessons import EchoServer
    >>> with EchoServer() as server:
    ...     server.address[0]
    '127.0.0.1'
"""

from . import _kernel_exit

# First, so that its atexit handler runs after stop_all's (handlers run last-registered first)
# and before ipykernel's own, registered when the kernel started.
_kernel_exit.install()

from .addresses import IPV4_LOOPBACK, IPV6_LOOPBACK
from .doctor import doctor
from .errors import LoopbackOnlyError, ServerWarning
from .servers import (
    MAX_DATAGRAM,
    AsyncioServer,
    DribbleServer,
    EchoServer,
    LoopbackServer,
    SelectorServer,
    SequentialServer,
    ServerError,
    ServerEvent,
    SilentServer,
    SinkServer,
    ThreadedServer,
    UDPEchoServer,
    running_servers,
    stop_all,
)

__version__ = "0.1.0"

# The measuring toolkit pulls in matplotlib and ipywidgets: imported on first use (PEP 562),
# so `python -m socketlessons serve echo` starts without them.
_LAZY = {
    "SweepPanel": "widgets",
    "LivePlot": "plots",
    "sequence_diagram": "plots",
    "Tracer": "trace",
    "TracedSocket": "trace",
    "sweep": "measure",
    "time_op": "measure",
    "harness_overhead": "measure",
    "fit_growth": "measure",
    "fit_affine": "measure",
    "compare": "measure",
    "show_solution": "checks",
    "run_load": "load",
    "drive": "clients",
    "start_clients": "clients",
    "serve_in_background": "clients",
    "open_connections": "load",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'socketlessons' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

__all__ = [
    "IPV4_LOOPBACK",
    "LivePlot",
    "SweepPanel",
    "TracedSocket",
    "Tracer",
    "compare",
    "fit_affine",
    "fit_growth",
    "harness_overhead",
    "open_connections",
    "run_load",
    "sequence_diagram",
    "serve_in_background",
    "show_solution",
    "start_clients",
    "sweep",
    "time_op",
    "IPV6_LOOPBACK",
    "MAX_DATAGRAM",
    "AsyncioServer",
    "DribbleServer",
    "EchoServer",
    "LoopbackOnlyError",
    "LoopbackServer",
    "ServerError",
    "ServerEvent",
    "SelectorServer",
    "SequentialServer",
    "ServerWarning",
    "SilentServer",
    "SinkServer",
    "ThreadedServer",
    "UDPEchoServer",
    "__version__",
    "doctor",
    "drive",
    "running_servers",
    "stop_all",
]
