"""Command line: ``python -m socketlessons doctor | serve KIND | lab | links``.

``serve`` runs one helper server in the foreground, so ``nc``/``socat`` can talk to it::

    python -m socketlessons serve echo            # prints the address; Ctrl-C stops it
    python -m socketlessons serve udp-echo --loss 0.2 --seed 1

``lab`` opens the lessons in JupyterLab (``--no-browser`` and ``--port`` for a remote machine;
the URL is printed last); ``links --repo URL`` prints the Binder and nbgitpuller links of a fork;
``progress FOLDER`` prints who passed which exercise, from the students' saved notebooks.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Sequence

from .doctor import doctor
from .servers import SERVER_KINDS


def _notebooks_dir() -> pathlib.Path | None:
    """The checkout's ``notebooks/`` folder when installed from a checkout (``pip install -e .``)."""
    for parent in pathlib.Path(__file__).resolve().parents:
        candidate = parent / "notebooks"
        if (candidate / "00_welcome.ipynb").exists():
            return candidate
    return None


def _serve(args: argparse.Namespace) -> int:
    cls = SERVER_KINDS[args.kind]
    options = {}
    if args.kind == "udp-echo":
        options = {"loss": args.loss, "duplicate": args.duplicate, "delay": args.delay, "jitter": args.jitter,
                   "seed": args.seed}
    server = cls(args.host, args.port, **options)
    with server:
        host, port = server.address
        shown = f"[{host}]" if ":" in host else host
        udp = " -u" if args.kind == "udp-echo" else ""
        print(f"{args.kind} server listening on {shown}:{port}  (try: nc{udp} {host} {port}; Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait()  # until Ctrl-C
        except KeyboardInterrupt:
            print("stopped")
    return 0


#: Seconds the URL banner waits for JupyterLab to write its server file.
BANNER_WAIT_S = 180.0


#: A Unix socket's path holds at most 103 bytes on macOS (107 on Linux); a kernel's ipc socket
#: is ``<runtime dir>/kernel-<36-character id>-ipc-<n>`` (jupyter_client's ``connect.py``).
UNIX_PATH_MAX = 103
IPC_SUFFIX_LEN = len("/kernel-") + 36 + len("-ipc-9")


def ipc_fits(runtime_dir: pathlib.Path) -> bool:
    """True when kernels' Unix sockets under ``runtime_dir`` fit the path limit."""
    return len(os.fsencode(str(runtime_dir))) + IPC_SUFFIX_LEN <= UNIX_PATH_MAX


def lab_command(folder: pathlib.Path, *, port: int | None, no_browser: bool, extra: Sequence[str],
                runtime_dir: pathlib.Path | None = None) -> list[str]:
    """The ``jupyter lab`` command line that serves the lessons in ``folder``.

    Loopback only (127.0.0.1); kernels on the ``ipc`` transport (Unix sockets) on Linux and
    macOS, so a kernel has no TCP ports to race another program for (jupyter_client caches
    kernel ports, and a restart reuses them) and no "running over TCP without encryption"
    warning. Windows has no ``ipc`` transport, and a runtime folder whose path is too long for
    a Unix socket (``ipc_fits``) would make every kernel fail: both keep TCP.
    """
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}",
               "--ServerApp.ip=127.0.0.1", "--LabApp.default_url=/lab/tree/00_welcome.ipynb"]
    if port is not None:  # otherwise Jupyter's default: 8888, or the next free port
        command.append(f"--ServerApp.port={port}")
    if os.name == "posix" and (runtime_dir is None or ipc_fits(runtime_dir)):
        command.append("--KernelManager.transport=ipc")
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return [*command, *extra]


def _server_url(pid: int, runtime_dir: pathlib.Path) -> str | None:
    """The URL (with token) of the Jupyter server with process id ``pid``, once it has started."""
    import json

    info_file = runtime_dir / f"jpserver-{pid}.json"
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError):
        return None
    url = info["url"].rstrip("/") + "/lab/tree/00_welcome.ipynb"
    return f"{url}?token={info['token']}" if info.get("token") else url


def _print_banner_when_up(pid: int, runtime_dir: pathlib.Path) -> None:
    """Wait (bounded) for the server ``pid`` to start, then print its URL as the last thing shown,
    with what to do on a remote machine."""
    import time

    deadline = time.monotonic() + BANNER_WAIT_S
    url = None
    while url is None and time.monotonic() < deadline:
        time.sleep(0.25)
        url = _server_url(pid, runtime_dir)
    if url is None:
        return
    time.sleep(1.0)  # let the server's own start-up lines go first
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    print("\n" + "=" * 72 + "\n"
          f"  The lessons are open at:\n\n    {url}\n\n"
          "  On a remote or headless machine, tunnel the port from your laptop, then open the URL there:\n"
          f"    ssh -N -L {port}:127.0.0.1:{port} USER@THIS-MACHINE\n"
          "  Stop with Ctrl-C (twice), or close this terminal.\n" + "=" * 72, flush=True)


def _lab(args: argparse.Namespace) -> int:
    folder = _notebooks_dir()
    if folder is None:
        print("The lessons are in the notebooks/ folder of a checkout: clone the repository and run "
              "'make lab' there.", file=sys.stderr)
        return 1
    if args.port is not None and not 0 <= args.port <= 65535:
        print(f"--port must be between 0 and 65535 (0: any free port), got {args.port}", file=sys.stderr)
        return 2
    from jupyter_core.paths import jupyter_runtime_dir

    runtime_dir = pathlib.Path(jupyter_runtime_dir())
    command = lab_command(folder, port=args.port, no_browser=args.no_browser, extra=args.extra,
                          runtime_dir=runtime_dir)
    if os.name == "posix":
        # Become jupyter lab (no child left behind when this process is stopped or killed); a
        # forked watcher prints the URL once the server is up, then exits.
        pid = os.getpid()
        if os.fork() == 0:
            try:
                _print_banner_when_up(pid, runtime_dir)
            finally:
                os._exit(0)
        os.execv(sys.executable, command)
    proc = subprocess.Popen(command)
    threading.Thread(target=_print_banner_when_up, args=(proc.pid, runtime_dir), daemon=True).start()
    return proc.wait()


def links(repo: str, *, hub: str | None = None, branch: str = "main") -> dict[str, str]:
    """The links a teacher hands out for a fork at ``repo`` (an https git URL).

    ``binder``: mybinder.org opening lesson 00 (``v2/gh/OWNER/NAME/BRANCH`` for GitHub,
    ``v2/git/<url>/BRANCH`` otherwise); ``nbgitpuller`` (with ``hub``): the JupyterHub link that
    clones or updates the lessons in each student's home, then opens lesson 00 (nbgitpuller's
    ``repo``, ``branch`` and ``urlpath`` options; ``urlpath`` includes the clone's folder name).
    """
    from urllib.parse import quote, urlencode, urlsplit

    parts = urlsplit(repo)
    if parts.scheme not in ("https", "http", "git", "file") or not parts.path.strip("/"):
        raise ValueError(f"repo must be the URL of a git repository (https://github.com/OWNER/NAME), got {repo!r}")
    if not branch or any(c.isspace() for c in branch):
        raise ValueError(f"branch must be a branch name such as 'main', got {branch!r}")
    name = parts.path.rstrip("/").rsplit("/", 1)[-1]  # nbgitpuller's folder: the URL's last part, as is
    lesson = "notebooks/00_welcome.ipynb"
    if parts.netloc == "github.com" and parts.path.strip("/").count("/") == 1:
        owner_name = parts.path.strip("/").removesuffix(".git")
        binder = f"https://mybinder.org/v2/gh/{owner_name}/{quote(branch, safe='')}?urlpath=lab/tree/{lesson}"
    else:
        binder = (f"https://mybinder.org/v2/git/{quote(repo, safe='')}/{quote(branch, safe='')}"
                  f"?urlpath=lab/tree/{lesson}")
    found = {"binder": binder}
    if hub is not None:
        hub_parts = urlsplit(hub)
        if hub_parts.scheme not in ("https", "http") or not hub_parts.netloc:
            raise ValueError(f"hub must be the URL of a JupyterHub (https://hub.example.org), got {hub!r}")
        query = urlencode({"repo": repo, "branch": branch, "urlpath": f"lab/tree/{name}/{lesson}"})
        found["nbgitpuller"] = f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m socketlessons", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check this machine for the lessons")
    serve = sub.add_parser("serve", help="run a helper server in this terminal")
    serve.add_argument("kind", choices=sorted(SERVER_KINDS))
    serve.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default) or ::1")
    serve.add_argument("--port", type=int, default=0, help="0 (default) lets the OS choose")
    for flag in ("loss", "duplicate", "delay", "jitter"):
        serve.add_argument(f"--{flag}", type=float, default=0.0, help=f"udp-echo only: {flag}")
    serve.add_argument("--seed", type=int, default=None, help="udp-echo only: random seed")
    lab = sub.add_parser("lab", help="open the lessons in JupyterLab (other options go to jupyter lab)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser (remote or headless machine)")
    lab.add_argument("--port", type=int, default=None,
                     help="the port to serve on (default: 8888, or the next free one; 0: any free port)")
    link = sub.add_parser("links", help="print the Binder and nbgitpuller links of your fork")
    link.add_argument("--repo", required=True, help="your fork's URL, e.g. https://github.com/YOU/socketlessons")
    link.add_argument("--hub", default=None, help="your JupyterHub's URL, for the nbgitpuller link")
    link.add_argument("--branch", default="main", help="the branch to hand out (default: main)")
    prog = sub.add_parser("progress", help="who passed which exercise, from saved student notebooks")
    prog.add_argument("paths", nargs="+", help="folders holding one folder per student, or notebooks")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if args.command == "doctor":
        report = doctor()
        print(report)
        return 0 if report.ok else 1
    if args.command == "serve":
        try:
            return _serve(args)
        except ValueError as exc:
            parser.error(str(exc))
    if args.command == "progress":
        from .progress import exercises_in_course_order, read_progress

        try:
            found = read_progress(args.paths)
        except ValueError as exc:
            parser.error(str(exc))
        print(found.table(exercises_in_course_order()))
        return 0
    if args.command == "links":
        try:
            found = links(args.repo, hub=args.hub, branch=args.branch)
        except ValueError as exc:
            parser.error(str(exc))
        print(f"Binder (one container per student, nothing to install):\n  {found['binder']}\n"
              f"  badge: [![Binder](https://mybinder.org/badge_logo.svg)]({found['binder']})")
        if "nbgitpuller" in found:
            print(f"JupyterHub with nbgitpuller (clones or updates the lessons, keeps students' edits):\n"
                  f"  {found['nbgitpuller']}")
        else:
            print("JupyterHub: add --hub https://YOUR-HUB for the nbgitpuller link")
        return 0
    return _lab(args)


if __name__ == "__main__":
    sys.exit(main())
