"""Run the lessons the way their users do: in kernels we control, and in a real JupyterLab.

Shared by ``test_browser.py`` (a ``jupyter lab`` server driven by headless Chromium),
``test_classroom.py`` (many lesson kernels at once) and ``test_rerun.py`` (a lesson twice in one
kernel, and after an interrupt).

Rules this module keeps:

* Everything Jupyter writes (runtime files, connection files, settings, workspaces, IPython
  history, the matplotlib cache) goes under a temporary directory, never into the user's home,
  so a test run neither reads nor changes a learner's setup and parallel runs never meet.
* Lessons run from a temporary COPY of ``notebooks/``: JupyterLab autosaves what it executes,
  and the repository stores notebooks without outputs.
* Servers bind loopback on a port the OS picks (``port=0``: the real port is read back from the
  server's runtime file, so there is no bind-then-close race); the token is random.
* Every process started here is terminated in a ``finally``; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
#: The settings override Binder uses too (postBuild copies it): no news toast over the widgets.
OVERRIDES_JSON = ROOT / "binder-settings" / "overrides.json"
#: A lesson is ``notebooks/NN_name.ipynb``; anything else in the folder is not collected.
LESSON_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
#: Per-cell deadline, the same as ``--nbmake-timeout`` in pyproject.toml.
CELL_TIMEOUT_S = 120
#: How long a kernel or a JupyterLab server may take to start on a busy 2-core machine.
STARTUP_TIMEOUT_S = 60
#: Kernel starts tried when a kernel dies binding its ports (a race, see ``LessonKernel.start``).
KERNEL_START_ATTEMPTS = 3
#: How long a process gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_S = 10


def lessons() -> list[pathlib.Path]:
    """Every lesson that exists now (``notebooks/NN_*.ipynb``), in course order."""
    return sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if LESSON_NAME.match(p.name))


def lesson_id(path: pathlib.Path) -> str:
    """A short pytest id: ``00_welcome``."""
    return path.stem


def copy_notebooks(dest: pathlib.Path, source: pathlib.Path = NOTEBOOK_DIR) -> pathlib.Path:
    """Copy ``notebooks/`` (without checkpoints) to ``dest``; return the copy's path."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return dest


def isolated_env(base: pathlib.Path) -> dict[str, str]:
    """Environment variables that keep Jupyter, IPython and matplotlib state under ``base``."""
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "jupyter-config",
        "JUPYTER_DATA_DIR": base / "jupyter-data",
        "JUPYTER_RUNTIME_DIR": base / "jupyter-runtime",
        "IPYTHONDIR": base / "ipython",
        "MPLCONFIGDIR": base / "matplotlib",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({k: str(v) for k, v in dirs.items()})
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("JUPYTER_PATH", None)  # no extra kernelspecs or settings from the caller's setup
    return env


def terminate(proc: subprocess.Popen[Any], grace_s: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. Safe on a process that already exited."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace_s)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Tracebacks from the kernel carry terminal colours; reports read better without."""
    return _ANSI.sub("", text)


def _tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---- a real JupyterLab server -----------------------------------------------------------------


class JupyterLabServer:
    """``jupyter lab`` on 127.0.0.1, a port picked by the OS, a random token, isolated state.

    Use as a context manager::

        with JupyterLabServer(tmp_path) as lab:
            page.goto(lab.url("lab/tree/00_welcome.ipynb"))

    ``root`` is a fresh copy of ``notebooks/`` (JupyterLab saves executed notebooks there).
    """

    def __init__(self, base: pathlib.Path, source: pathlib.Path = NOTEBOOK_DIR,
                 disabled_extensions: tuple[str, ...] = ()) -> None:
        self.base = base
        self.source = source
        self.disabled_extensions = disabled_extensions
        self.root = base / "notebooks"
        self.token = secrets.token_hex(16)
        self.port: int | None = None
        self.log_path = base / "jupyter-lab.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def url(self, path: str = "lab") -> str:
        """Address of ``path`` on this server, with the token."""
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def start(self) -> JupyterLabServer:
        copy_notebooks(self.root, self.source)
        env = isolated_env(self.base)
        if self.disabled_extensions:  # what `jupyter labextension disable NAME` writes
            labconfig = pathlib.Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
            labconfig.mkdir(parents=True, exist_ok=True)
            (labconfig / "page_config.json").write_text(
                json.dumps({"disabledExtensions": {name: True for name in self.disabled_extensions}}))
        settings = self.base / "lab-settings"
        settings.mkdir()
        shutil.copy(OVERRIDES_JSON, settings / "overrides.json")
        workspaces = self.base / "lab-workspaces"
        workspaces.mkdir()
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--allow-root",  # CI runs as root; the server refuses to start otherwise
            "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.workspaces_dir={workspaces}",
            f"--LabApp.app_settings_dir={settings}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=None",
            "--LabApp.expose_app_in_browser=True",  # the tests read the notebook model via window.jupyterapp
        ]  # fmt: skip
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.base, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self.port = self._wait_for_port(pathlib.Path(env["JUPYTER_RUNTIME_DIR"]))
            self._wait_for_status()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_port(self, runtime: pathlib.Path) -> int:
        """Read the port the server bound from its ``jpserver-<pid>.json`` runtime file."""
        assert self.proc is not None
        info = runtime / f"jpserver-{self.proc.pid}.json"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{_tail(self.log_path)}")
            try:
                return int(json.loads(info.read_text())["port"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        raise TimeoutError(f"jupyter lab wrote no {info.name} in {STARTUP_TIMEOUT_S} s:\n{_tail(self.log_path)}")

    def _wait_for_status(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"jupyter lab did not answer /api/status in {STARTUP_TIMEOUT_S} s")

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        """Terminate the server; it shuts its kernels down on SIGTERM, and any kernel still
        alive a few seconds later (the server was killed, or hung) is killed too."""
        import psutil

        try:
            if self.proc is not None:
                try:
                    children = psutil.Process(self.proc.pid).children(recursive=True)
                except psutil.Error:
                    children = []
                terminate(self.proc)
                _, alive = psutil.wait_procs(children, timeout=TERMINATE_GRACE_S / 2)
                for child in alive:
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                psutil.wait_procs(alive, timeout=TERMINATE_GRACE_S / 2)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> JupyterLabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- lesson kernels driven by nbclient ------------------------------------------------------


class LessonError(AssertionError):
    """A lesson cell failed: says which lesson, which cell and what it printed."""


#: Starts ipykernel after lowering the descriptor limit (soft and hard) to the number given.
_LIMITED_LAUNCH = (
    "import resource, runpy, sys\n"
    "n = int(sys.argv.pop(1))\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))\n"
    "sys.argv[0] = 'ipykernel_launcher'\n"
    "runpy.run_module('ipykernel_launcher', run_name='__main__', alter_sys=True)\n"
)


def _kernelspec(base: pathlib.Path, *, max_descriptors: int | None = None) -> pathlib.Path:
    """A kernelspec that runs THIS interpreter's ipykernel, whatever else is installed; with
    ``max_descriptors``, in a kernel whose descriptor limit (``ulimit -n``) is that low."""
    kernels = base / "kernels"
    spec = kernels / "socketlessons-test"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if max_descriptors is not None:
        argv = [sys.executable, "-c", _LIMITED_LAUNCH, str(max_descriptors), "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({
        "argv": argv,
        "display_name": "socketlessons tests",
        "language": "python",
        "interrupt_mode": "signal",
    }))  # fmt: skip
    return kernels


def code_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the code cells that nbclient would execute (not empty, not skip-execution)."""
    return [
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and c.source.strip() and "skip-execution" not in c.metadata.get("tags", [])
    ]  # fmt: skip


def error_outputs(cell: nbformat.NotebookNode) -> list[str]:
    """``"Ename: evalue"`` of each error output of ``cell`` (empty: no error)."""
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", []) if o.get("output_type") == "error"]


@dataclass
class CellRun:
    """One executed cell: where, how long (wall clock, seconds), and its error if any."""

    index: int
    seconds: float
    error: str | None = None


@dataclass
class LessonRun:
    """One pass over a lesson in a kernel."""

    lesson: str
    cells: list[CellRun] = field(default_factory=list)
    nb: nbformat.NotebookNode | None = None

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.cells)

    def longest_cell(self) -> CellRun:
        return max(self.cells, key=lambda c: c.seconds)


class LessonKernel:
    """One IPython kernel (this interpreter, isolated state under ``base``), executing lessons
    cell by cell with nbclient, as JupyterLab would: the same kernel across runs, so a second
    run sees what the first one left behind.

    Use ``async with LessonKernel.started(base, cwd) as k: await k.run_lesson(path)``.
    """

    def __init__(self, base: pathlib.Path, cwd: pathlib.Path, *, cell_timeout: int = CELL_TIMEOUT_S,
                 max_descriptors: int | None = None) -> None:
        from jupyter_client.kernelspec import KernelSpecManager

        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.cwd = cwd
        self.cell_timeout = cell_timeout
        self.env = isolated_env(base)
        self.log_path = base / "kernel.log"
        self._ksm = KernelSpecManager(kernel_dirs=[str(_kernelspec(base, max_descriptors=max_descriptors))])
        # On POSIX the kernel talks over Unix sockets (the ipc transport, as `make lab` and the
        # hub setup start kernels): no TCP ports to race other programs for. Their paths must be
        # short (about 100 bytes), so they live in a folder of their own under /tmp.
        self._ipc_dir = pathlib.Path(tempfile.mkdtemp(prefix="slk-", dir="/tmp")) if os.name == "posix" else None
        self.km = self._new_manager(0)
        self.kc: Any = None
        self._log: Any = None
        #: Starts retried because the kernel died binding its ports (see ``start``).
        self.port_races = 0

    def _new_manager(self, attempt: int) -> Any:
        from jupyter_client.manager import AsyncKernelManager

        if self._ipc_dir is not None:
            return AsyncKernelManager(kernel_name="socketlessons-test", kernel_spec_manager=self._ksm,
                                      transport="ipc", connection_file=str(self._ipc_dir / f"k{attempt}.json"))
        return AsyncKernelManager(
            kernel_name="socketlessons-test",
            kernel_spec_manager=self._ksm,
            connection_file=str(self.base / f"kernel-connection-{attempt}.json"),
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls, base: pathlib.Path, cwd: pathlib.Path, **kw: Any) -> AsyncIterator[LessonKernel]:
        kernel = cls(base, cwd, **kw)
        try:
            await kernel.start()
            yield kernel
        finally:
            await kernel.shutdown()

    @property
    def pid(self) -> int | None:
        proc = getattr(self.km.provisioner, "process", None)
        return getattr(proc, "pid", None)

    async def start(self) -> None:
        """Start the kernel and wait until it answers.

        On POSIX the kernel uses Unix sockets and cannot race anyone for a port. On TCP
        (Windows), jupyter_client picks the kernel's five ports by binding port 0 and closing
        it; the kernel binds them a moment later, and on a busy host another process can take
        one in between (helper servers and client sockets use the same ephemeral range): the
        kernel dies with "Address already in use". JupyterLab's own restarter would retry the
        SAME ports (jupyter_client caches them: ``cache_ports=True``), which is why `make lab`
        and the hub setup use the ipc transport; here a new manager draws new ports, and the
        retry is counted in ``port_races``.
        """
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in shutdown()
        for attempt in range(KERNEL_START_ATTEMPTS):
            if attempt:
                self.km = self._new_manager(attempt)
            await self.km.start_kernel(cwd=str(self.cwd), env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
            self.kc = self.km.client()
            self.kc.start_channels()
            try:
                await self.kc.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
                return
            except RuntimeError:
                if attempt + 1 == KERNEL_START_ATTEMPTS or "Address already in use" not in _tail(self.log_path, 5):
                    raise RuntimeError(f"the kernel died while starting:\n{_tail(self.log_path)}") from None
                self.port_races += 1
                self.kc.stop_channels()
                self.kc = None
                with contextlib.suppress(Exception):  # it is dead already; reap what is left
                    await self.km.shutdown_kernel(now=True)
                await self.km.cleanup_resources()

    async def shutdown(self) -> None:
        """Ask the kernel to exit (its atexit hooks stop helper servers); kill it if it will not."""
        try:
            if self.kc is not None:
                self.kc.stop_channels()
                self.kc = None
            if self.km.has_kernel:
                await self.km.shutdown_kernel(now=False)
        finally:
            await self.km.cleanup_resources()  # connection file, ports, zmq context
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._ipc_dir is not None:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)

    async def interrupt(self) -> None:
        """SIGINT to the kernel, as JupyterLab's ■ button sends."""
        await self.km.interrupt_kernel()

    def _client(self, nb: nbformat.NotebookNode) -> Any:
        from nbclient import NotebookClient

        client = NotebookClient(nb, km=self.km, timeout=self.cell_timeout, allow_errors=False, record_timing=True)
        client.kc = self.kc
        return client

    async def run_lesson(self, path: pathlib.Path, *, cells: list[int] | None = None) -> LessonRun:
        """Execute the lesson's code cells (or only ``cells``) in order; raise ``LessonError`` on
        the first cell that fails (except cells tagged ``raises-exception``)."""
        nb = nbformat.read(path, as_version=4)
        run = LessonRun(path.stem, nb=nb)
        client = self._client(nb)
        for index in code_cells(nb) if cells is None else cells:
            run.cells.append(await self._run_cell(client, nb, index, path.stem))
        return run

    async def _run_cell(self, client: Any, nb: nbformat.NotebookNode, index: int, lesson: str) -> CellRun:
        from nbclient.exceptions import CellExecutionError

        t0 = time.monotonic()
        try:
            await client.async_execute_cell(nb.cells[index], index)
        except CellExecutionError as exc:
            raise LessonError(f"{lesson}: cell {index} failed:\n{strip_ansi(str(exc))[-3000:]}") from None
        except Exception as exc:
            raise LessonError(f"{lesson}: cell {index}: {type(exc).__name__}: {exc}\nkernel log:\n{_tail(self.log_path)}") from None
        return CellRun(index, time.monotonic() - t0)

    async def run_cell_interrupted(self, path: pathlib.Path, index: int, after_s: float) -> CellRun:
        """Start cell ``index`` of the lesson, interrupt the kernel ``after_s`` seconds in, and
        return how the cell ended (``error`` is ``"KeyboardInterrupt: ..."`` when the interrupt
        landed inside it, ``None`` when the cell had already finished)."""
        nb = nbformat.read(path, as_version=4)
        cell = nb.cells[index]
        client = self._client(nb)
        client.allow_errors = True  # the KeyboardInterrupt is expected: keep it as an output
        t0 = time.monotonic()
        task = asyncio.ensure_future(client.async_execute_cell(cell, index))
        done, _ = await asyncio.wait({task}, timeout=after_s)
        if not done:
            await self.interrupt()
        await asyncio.wait_for(task, timeout=self.cell_timeout)
        errors = error_outputs(cell)
        return CellRun(index, time.monotonic() - t0, errors[0] if errors else None)

    async def run_code(self, source: str) -> str:
        """Execute ``source`` (not a lesson cell: test instrumentation) and return its stdout."""
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        run_client = self._client(nb)
        await self._run_cell(run_client, nb, 0, "instrumentation")
        return "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout")
