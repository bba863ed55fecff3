"""Process mode: the same helper server, run in a child Python process.

A helper server in the kernel's own threads shares the kernel's GIL: while any other Python
code runs in the kernel, every ``recv``/``send`` of the server waits for its turn (up to the
5 ms switch interval). Lesson 08 measures that. For measurements the GIL would distort, start a
server with ``mode="process"``: the child builds the same server in thread mode, reports its
address through a pipe, and serves until told to stop (or until the pipe closes, so an orphaned
child never outlives the kernel).

The child is started with the ``spawn`` method on every platform: it is what macOS and Windows
use anyway, and forking a kernel with running threads is unsafe.

In a Jupyter kernel, the first process-mode server also makes the kernel's shutdown (and restart)
stop the helper processes first (:func:`stop_children_before_kernel_shutdown`): without that, a
restart took 2.6 s instead of 0.2 s.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import warnings
from typing import Any

from ._base import LoopbackServer, ServerError, ServerEvent

#: How long the child may take to import socketlessons and bind (a cold spawn takes ~0.2 s).
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def _child_main(cls: type[LoopbackServer], settings: dict[str, Any], pipe: multiprocessing.connection.Connection) -> None:
    # Interrupting the kernel (the ■ button) sends SIGINT to its whole process group, this child
    # included (jupyter_client signals the group): the learner's cell should stop, not the helper
    # server under it. The child ends through its pipe ("stop", or the kernel gone) or SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = cls(**settings)
    try:
        server.start()
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    pipe.send(("ready", server.address))
    try:
        pipe.recv()  # "stop", or EOFError when the parent went away
    except (EOFError, OSError):
        pass
    try:
        with warnings.catch_warnings():  # the parent reports the errors, in the learner's cell
            warnings.simplefilter("ignore")
            server.stop()
    finally:
        try:
            pipe.send(("stopped", list(server.errors), list(server.events)))
        except (OSError, ValueError):
            pass
        finally:
            # Sockets are closed and the report is sent: skip interpreter finalisation, which
            # made stop() wait ~17 ms for nothing (benchmarks/README.md).
            os._exit(0)


def _stop_resource_tracker() -> None:
    """Stop multiprocessing's resource tracker process, if this process started one.

    ``spawn`` starts it (once per interpreter) to clean up semaphores a crashed child leaves. It
    ignores SIGINT and SIGTERM by design and exits only when its parent does, or when the parent
    closes its pipe, which ``_stop()`` does (then waits for it). A later spawn starts a new one.
    """
    try:
        from multiprocessing import resource_tracker

        # Private, but stable since Python 3.8. It waits for the tracker to exit, which follows
        # the closed pipe at once; were it ever stuck, jupyter_client still terminates the kernel
        # after half its shutdown_wait_time, which is where things stood before this hook.
        resource_tracker._resource_tracker._stop()
    except (ImportError, AttributeError, OSError, ChildProcessError):
        pass  # Windows has no resource tracker; one already gone is fine


def stop_children_before_kernel_shutdown() -> None:
    """In a Jupyter kernel, stop every helper server, then the resource tracker, when the kernel
    is asked to shut down or restart.

    Why: on a shutdown request ipykernel terminates the kernel's child processes itself, sending
    SIGTERM and then SIGKILL with growing pauses (0.01, 0.03, 0.1, 0.3, 1, 3 s) until none is left
    (ipykernel ``Kernel._progressively_terminate_all_children``, ipython/ipykernel#869). The
    resource tracker ignores SIGTERM, so a kernel that had spawned one helper process spent the
    pauses waiting until jupyter_client, after half its 5 s ``shutdown_wait_time``, terminated the
    kernel: 2.6 s for every restart and every lesson under nbmake, against 0.2 s. Stopping the
    helpers (they answer at once) and closing the tracker's pipe leaves ipykernel nothing to wait
    for. ``do_shutdown`` is the kernel's documented override point and runs before that loop.

    Outside a kernel (plain Python, the tests' own process) this does nothing; calling it again
    does nothing either.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or getattr(kernel, "_socketlessons_stops_children", False):
        return
    original = kernel.do_shutdown

    def do_shutdown(restart: bool) -> Any:
        from ._base import stop_all

        try:
            stop_all()
            _stop_resource_tracker()
        except Exception:  # noqa: BLE001 - the kernel must shut down whatever happens here
            pass
        return original(restart)

    kernel.do_shutdown = do_shutdown
    kernel._socketlessons_stops_children = True


def _script_hint() -> str:
    """What to do when a ``mode="process"`` server is started from a script without a main guard.

    The child is started with ``spawn`` (on every OS: a forked child of a threaded kernel could
    inherit a held lock), so it begins by importing the parent's ``__main__`` again. A script
    that starts a server at its top level then starts one again inside the child, which
    multiprocessing refuses ("An attempt has been made to start a new process before the current
    process has finished its bootstrapping phase", printed by the child), and the child exits.
    A notebook kernel's ``__main__`` has no file, so this never applies there.
    """
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file or "ipykernel" in sys.modules:
        return ""
    return (f". Started from a script ({os.path.basename(main_file)})? Put the code that starts servers under "
            "`if __name__ == \"__main__\":`: a mode=\"process\" server's process begins by importing your "
            "script again (multiprocessing's 'spawn' start method; see 'Safe importing of main module' in "
            "the multiprocessing docs)")


class ServerProcess:
    """Runs ``server``'s twin in a child process."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child_end = ctx.Pipe()
        self.process = ctx.Process(
            target=_child_main,
            args=(type(server), server._settings(), child_end),
            name=f"socketlessons-{server._label}",
            daemon=True,
        )
        self._child_end = child_end

    def start(self) -> tuple[str, int]:
        stop_children_before_kernel_shutdown()
        self.process.start()
        self._child_end.close()
        if not self.pipe.poll(START_TIMEOUT_S):
            self._kill()
            raise RuntimeError(f"the server process did not start within {START_TIMEOUT_S} s")
        try:
            kind, payload = self.pipe.recv()
        except EOFError:
            self.process.join(STOP_TIMEOUT_S)
            code = self.process.exitcode
            self._kill()
            raise RuntimeError(f"the server process exited before it was ready (exit code {code}){_script_hint()}"
                               ) from None
        if kind != "ready":
            self._kill()
            raise RuntimeError(f"the server process could not start: {payload}")
        return tuple(payload)  # type: ignore[return-value]

    def stop(self) -> tuple[list[ServerError], list[ServerEvent]]:
        errors: list[ServerError] = []
        events: list[ServerEvent] = []
        try:
            self.pipe.send("stop")
            if self.pipe.poll(STOP_TIMEOUT_S):
                _, errors, events = self.pipe.recv()
        except (OSError, EOFError, ValueError):
            pass
        self.process.join(STOP_TIMEOUT_S)
        self._kill()
        return errors, events

    def _kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_TIMEOUT_S)
        self.pipe.close()
        self.process.close()
