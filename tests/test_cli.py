"""The command line, run as a learner would run it."""

from __future__ import annotations

import json
import os
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


def test_lab_serves_the_lessons_on_loopback(tmp_path):
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "socketlessons", "lab", "--no-browser", "--ServerApp.port=0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        # With port 0 the printed URL is not the real one: the server writes it to jpserver-PID.json.
        deadline, info = time.monotonic() + 90, None
        while info is None and time.monotonic() < deadline:
            assert proc.poll() is None, "jupyter lab exited early"
            found = list((tmp_path / "rt").glob("jpserver-*.json"))
            info = json.loads(found[0].read_text()) if found else None
            time.sleep(0.2)
        assert info, "jupyter lab did not start"
        assert info["hostname"] == "127.0.0.1"
        base, token = info["url"].rstrip("/"), info["token"]
        with urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=10) as reply:
            names = {item["name"] for item in json.load(reply)["content"]}
        assert "00_welcome.ipynb" in names
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    # Stopping the command stops JupyterLab itself: no orphaned server keeps running.
    deadline = time.monotonic() + 10
    while psutil.pid_exists(info["pid"]) and psutil.Process(info["pid"]).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "jupyter lab outlived 'python -m socketlessons lab'"
        time.sleep(0.1)
