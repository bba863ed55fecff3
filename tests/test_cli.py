"""The command line, run as a learner would run it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

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
