"""A lesson kernel that is asked to shut down exits at once, instead of after 0.4 s or 3 s.

Two things slowed every shutdown and restart of a lesson kernel (``shutdown_request`` until its
process is gone: what nbclient, nbmake and JupyterLab's restart wait for):

* **The final garbage collection.** When a Python process exits, the interpreter runs the
  cyclic garbage collector over every object still alive. A lesson kernel holds matplotlib,
  numpy and IPython, half a million objects, and that last collection is most of its exit: a
  process that had imported ``matplotlib.figure`` took 0.12-0.15 s to exit, 0.015-0.02 s with
  ``gc.freeze()`` called first. ``gc.freeze()`` moves every object alive into a permanent
  generation that collections skip. Everything else about the exit stays: the other ``atexit``
  handlers run (``stop_all`` stops the helper servers and joins their threads; IPython saves
  its history), standard streams are flushed, objects without reference cycles are freed and
  finalized as their last reference goes. What is skipped is finalizing objects caught in
  reference cycles at exit; their memory, sockets and files go back to the operating system
  with the process, as after ``os._exit`` (Instagram ends its workers with
  ``atexit.register(os._exit, 0)`` for this reason: "Dismissing Python Garbage Collection at
  Instagram", 2017; freezing skips less).
* **A race in ipykernel (7.4) at shutdown.** The control thread answers ``shutdown_request``,
  then publishes its "idle" status and flushes ``sys.stdout``, a flush that waits for the IOPub
  thread. Meanwhile the main thread leaves its event loop and, in ``IPKernelApp.close()`` (an
  ``atexit`` handler), stops the IOPub thread and joins the control thread. When the stop comes
  first, the flush waits out its timeout and the join with it, until jupyter_client gives up
  after 2.5 s and terminates the kernel. The slower the main thread's way out, the rarer this
  is: with the final collection frozen away it struck 20 of 48 shutdowns (a lesson's imports
  and a process-mode server). So before ``close()`` runs, this module's handler waits (at most
  ``CONTROL_JOIN_S``) for the control thread to finish: it ends by itself once that flush is
  done, because ``shutdown_request`` has already stopped its event loop.

Measured on the course's machine, 24 shutdowns each of a kernel that had imported
``socketlessons.plots`` and started a process-mode ``EchoServer`` (nbclient's shutdown, which
looks every 0.1 s whether the process is gone): as ipykernel leaves it, 0.31-0.42 s; with the
join alone, the same; with ``gc.freeze()`` alone, 0.11 s or 2.7-3.0 s (20 of 48); with both,
0.11-0.12 s, 24 of 24.

Only inside a Jupyter kernel: a script or a test run keeps the full collection, so a resource
left open still shows as a ``ResourceWarning`` there.
"""

from __future__ import annotations

import atexit
import gc
import sys
import threading

#: Longest the exit waits for the control thread to finish answering ``shutdown_request``.
CONTROL_JOIN_S = 1.0

_installed = False


def _kernel_app() -> object | None:
    """The running ``IPKernelApp`` if this process is a notebook's kernel, else None."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    app_class = getattr(kernelapp, "IPKernelApp", None)
    if app_class is None or not app_class.initialized():
        return None
    return app_class.instance()


def in_kernel() -> bool:
    """Is this process a running ipykernel (a notebook's kernel), not a script or a test run?"""
    return _kernel_app() is not None


def _at_exit() -> None:
    app = _kernel_app()
    kernel = getattr(app, "kernel", None)
    control = getattr(app, "control_thread", None)
    # Only after a shutdown_request (it leaves its reply here): then the control thread's loop
    # has been told to stop and the join ends as soon as its last flush is through. An exit for
    # another reason (exit() in a cell) would wait out the whole timeout for nothing.
    asked = getattr(kernel, "_shutdown_message", None) is not None
    if asked and isinstance(control, threading.Thread) and control.is_alive() \
            and control is not threading.current_thread():
        control.join(CONTROL_JOIN_S)
    gc.freeze()


def install() -> bool:
    """In a kernel, register the exit handler (once per process); True if it is registered."""
    global _installed
    if not _installed and in_kernel():
        atexit.register(_at_exit)
        _installed = True
    return _installed
