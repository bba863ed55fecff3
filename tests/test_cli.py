"""The command line, run as a learner would run it."""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "socketlessons", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_doctor_reports_every_check():
    result = run("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("python", "IPv4 loopback", "IPv6 loopback", "timer", "widgets"):
        assert name in result.stdout


def test_serve_prints_an_address_that_answers():
    proc = subprocess.Popen([sys.executable, "-m", "socketlessons", "serve", "echo"], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"listening on (127\.0\.0\.1):(\d+)", line)
        assert match, line
        with socket.create_connection((match[1], int(match[2])), timeout=5) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_serve_refuses_a_public_host():
    result = run("serve", "echo", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "loopback" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["nope"])
def test_serve_unknown_kind_lists_the_choices(kind):
    result = run("serve", kind)
    assert result.returncode == 2 and "echo" in result.stderr


def _lines(stream, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@pytest.mark.parametrize("short_runtime_dir", [True, False], ids=["ipc", "runtime-path-too-long-for-ipc"])
def test_lab_serves_the_lessons_on_loopback_prints_the_url_last_and_runs_kernels_on_ipc(tmp_path, short_runtime_dir):
    import shutil
    import tempfile
    import threading

    from socketlessons.__main__ import ipc_fits

    runtime = pathlib.Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp" if os.name == "posix" else None)) \
        if short_runtime_dir else tmp_path / ("r" * 60)
    assert ipc_fits(runtime) == short_runtime_dir
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "socketlessons", "lab", "--no-browser", "--ServerApp.port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out: list[str] = []
    reader = threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True)
    reader.start()
    try:
        # The banner, printed once the server is up: the real URL (port 0 picks one), with the token.
        deadline, url = time.monotonic() + 120, None
        while url is None and time.monotonic() < deadline:
            assert proc.poll() is None, "jupyter lab exited early"
            found = re.search(r"The lessons are open at:\s+(http://127\.0\.0\.1:(\d+)/\S+)", "".join(out))
            url = found[1] if found else None
            time.sleep(0.2)
        assert url, "no URL banner: " + "".join(out)[-2000:]
        assert f"ssh -N -L {found[2]}:127.0.0.1:{found[2]}" in "".join(out)
        info = json.loads(next(runtime.glob("jpserver-*.json")).read_text())
        assert info["hostname"] == "127.0.0.1"
        base, token = info["url"].rstrip("/"), info["token"]
        assert url.startswith(base) and url.endswith(f"?token={token}")
        with urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=10) as reply:
            names = {item["name"] for item in json.load(reply)["content"]}
        assert "00_welcome.ipynb" in names
        # Kernels on Unix sockets (no TCP ports to race for) where the socket path fits; TCP otherwise.
        start = urllib.request.Request(f"{base}/api/kernels?token={token}", data=b"{}", method="POST")
        with urllib.request.urlopen(start, timeout=60) as reply:
            kernel = json.load(reply)
        try:
            connection = json.loads((runtime / f"kernel-{kernel['id']}.json").read_text())
            want = "ipc" if os.name == "posix" and short_runtime_dir else "tcp"
            assert connection["transport"] == want, connection
        finally:
            stop = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(stop, timeout=30).close()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        reader.join(5)
        proc.stdout.close()
        if short_runtime_dir:
            shutil.rmtree(runtime, ignore_errors=True)
    # Stopping the command stops JupyterLab itself: no orphaned server keeps running.
    deadline = time.monotonic() + 10
    while psutil.pid_exists(info["pid"]) and psutil.Process(info["pid"]).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "jupyter lab outlived 'python -m socketlessons lab'"
        time.sleep(0.1)


@pytest.mark.parametrize(("repo", "binder"), [
    ("https://github.com/alice/socketlessons", "https://mybinder.org/v2/gh/alice/socketlessons/main?"),
    ("https://github.com/alice/socketlessons.git", "https://mybinder.org/v2/gh/alice/socketlessons/main?"),
    ("https://gitlab.example.org/bob/sl.git", "https://mybinder.org/v2/git/https%3A%2F%2Fgitlab.example.org%2Fbob%2Fsl.git/main?"),
])
def test_links_prints_binder_and_nbgitpuller_links_for_a_fork(repo, binder):
    from urllib.parse import parse_qs, urlsplit

    result = run("links", "--repo", repo, "--hub", "https://hub.example.org/")
    assert result.returncode == 0, result.stderr
    urls = re.findall(r"https://\S+", result.stdout)
    assert any(u.startswith(binder) and u.endswith("urlpath=lab/tree/notebooks/00_welcome.ipynb") for u in urls), urls
    puller = next(u for u in urls if "git-pull" in u)
    parts = urlsplit(puller)
    assert (parts.netloc, parts.path) == ("hub.example.org", "/hub/user-redirect/git-pull")
    query = parse_qs(parts.query)
    name = repo.rstrip("/").rsplit("/", 1)[-1]  # nbgitpuller clones into the URL's last part, .git included
    assert query == {"repo": [repo], "branch": ["main"], "urlpath": [f"lab/tree/{name}/notebooks/00_welcome.ipynb"]}


@pytest.mark.parametrize("args", [["--repo", "not a url"], ["--repo", "https://github.com/a/b", "--hub", "hub"],
                                  ["--repo", "https://github.com/a/b", "--branch", "two words"]])
def test_links_refuses_what_is_not_a_url_and_says_what_to_use(args):
    result = run("links", *args)
    assert result.returncode == 2 and "must be" in result.stderr and "Traceback" not in result.stderr
