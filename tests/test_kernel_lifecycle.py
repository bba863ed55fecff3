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


def test_every_shutdown_ends_by_itself_none_waits_for_sigterm():
    """ipykernel's shutdown race (``socketlessons._kernel_exit``): with the final collection
    frozen away and no join, 20 of 48 shutdowns hung until jupyter_client terminated the kernel
    (exit status -15). Six kernels in a row, run and shut down as nbmake does (nbclient), each
    with a lesson's imports and a process-mode server, must all exit by themselves (without the
    join, 4 of 8 such shutdowns were terminated)."""
    import nbformat
    from nbclient import NotebookClient

    statuses = []
    for _ in range(6):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import socketlessons.plots\n" + START)])
        client = NotebookClient(nb, timeout=60)
        with client.setup_kernel():
            client.execute_cell(nb.cells[0], 0)
            process = client.km.provisioner.process
        statuses.append(process.returncode)
    assert statuses == [0] * 6, f"exit statuses {statuses}: -15 is a kernel jupyter_client had to terminate"


def test_the_exit_handler_is_a_kernels_only(tmp_path):
    """In a kernel the exit skips the final collection; a script keeps it, so a socket left open
    in a reference cycle still gets its ResourceWarning at exit."""
    import subprocess
    import sys

    script = ("import socket, socketlessons\n"
              "print(socketlessons._kernel_exit.in_kernel(), socketlessons._kernel_exit._installed)\n"
              "class Holder: pass\n"
              "h = Holder(); h.me = h; h.sock = socket.socket(); del h\n")
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.stdout.split() == ["False", "False"]
    assert "ResourceWarning: unclosed <socket.socket" in done.stderr


def test_in_a_kernel_the_exit_handler_is_installed(kernel):
    _km, kc = kernel
    assert _run(kc, "import socketlessons; print(socketlessons._kernel_exit.in_kernel(), "
                    "socketlessons._kernel_exit._installed)") == "True True"
