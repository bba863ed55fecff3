"""A lesson kernel with process-mode helper servers, interrupted and shut down as JupyterLab does.

Two things a learner does every day: press ■ (interrupt) on a cell that takes too long, and
restart the kernel. Interrupting signals the kernel's whole process group, helper children
included; shutting down makes ipykernel terminate the kernel's children itself, with growing
pauses while any is left. Both used to go wrong with process-mode servers (lessons 00, 01, 03,
05 and 08 start them): an interrupt killed the helpers (the next cell got "Connection refused"),
and a shutdown or restart waited 2.5 s for the multiprocessing resource tracker, which ignores
SIGTERM, until jupyter_client terminated the kernel.
"""

from __future__ import annotations

import os
import time

import psutil
import pytest
from jupyter_client.manager import KernelManager

pytestmark = pytest.mark.skipif(os.name == "nt", reason="process groups and signals: POSIX")

START = "from socketlessons import EchoServer; import socket, time; s = EchoServer(mode='process').start()"
ECHO = ("with socket.create_connection(s.address, timeout=5) as c:\n"
        "    c.sendall(b'still here'); print(c.recv(64).decode())")


def _run(kc, code: str, timeout: float = 60) -> str:
    """Execute ``code``; return what it printed, or its error's name and value."""
    out: list[str] = []

    def hook(msg):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(content["text"])
        elif msg["msg_type"] == "error":
            out.append(f"{content['ename']}: {content['evalue']}")

    kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return "".join(out).strip()


@pytest.fixture
def kernel():
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        yield km, kc
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def test_an_interrupt_stops_the_cell_not_the_helper_server(kernel):
    km, kc = kernel
    assert _run(kc, START) == ""
    slow = kc.execute("time.sleep(60)")  # a cell that takes too long
    while True:  # interrupt only once that cell runs (bounded: get_iopub_msg times out)
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == slow and msg["msg_type"] == "execute_input":
            break
    time.sleep(0.2)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != slow:
        reply = kc.get_shell_msg(timeout=30)
    assert reply["content"].get("ename") == "KeyboardInterrupt", reply["content"]
    time.sleep(0.5)  # ipykernel aborts requests that arrive right after an error
    assert _run(kc, ECHO) == "still here"


def test_the_kernel_shuts_down_on_request_and_leaves_no_process(kernel):
    km, kc = kernel
    assert _run(kc, START) == ""
    process = km.provisioner.process  # the kernel's Popen
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "the helper server runs in a child process"
    km.shutdown_kernel()  # what JupyterLab's "Shut Down Kernel" and a restart do first
    # Exit status 0: the kernel finished its shutdown itself. -15 (SIGTERM) means jupyter_client
    # gave up waiting after half its shutdown_wait_time and terminated it.
    assert process.returncode == 0, f"the kernel was terminated (exit status {process.returncode})"
    end = time.monotonic() + 10
    while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children) and time.monotonic() < end:
        time.sleep(0.05)
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
