"""Command line: ``python -m socketlessons doctor | serve KIND | lab``.

``serve`` runs one helper server in the foreground, so ``nc``/``socat`` can talk to it::

    python -m socketlessons serve echo            # prints the address; Ctrl-C stops it
    python -m socketlessons serve udp-echo --loss 0.2 --seed 1
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


def _lab(args: argparse.Namespace) -> int:
    folder = _notebooks_dir()
    if folder is None:
        print("The lessons are in the notebooks/ folder of a checkout: clone the repository and run "
              "'make lab' there.", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}",
               "--ServerApp.ip=127.0.0.1", "--LabApp.default_url=/lab/tree/00_welcome.ipynb", *args.extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    if os.name == "posix":
        # Become jupyter lab (no child left behind when this process is stopped or killed).
        os.execv(sys.executable, command)
    return subprocess.call(command)


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
    sub.add_parser("lab", help="open the lessons in JupyterLab (other options go to jupyter lab)")
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
    return _lab(args)


if __name__ == "__main__":
    sys.exit(main())
