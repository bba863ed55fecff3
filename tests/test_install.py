"""The README's path without make, followed as written on a fresh virtual environment: it must
install the package with its dependencies and give a working ``socketlessons`` command."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_plain_venv_and_pip_install_give_a_working_command(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(ROOT)],
                             capture_output=True, text=True, timeout=780)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    command = bindir / ("socketlessons.exe" if os.name == "nt" else "socketlessons")
    doctor = subprocess.run([str(command), "doctor"], capture_output=True, text=True, timeout=120)
    assert "IPv4 loopback" in doctor.stdout and "Traceback" not in doctor.stderr, doctor.stdout + doctor.stderr
    lab_help = subprocess.run([str(command), "lab", "--help"], capture_output=True, text=True, timeout=60)
    assert lab_help.returncode == 0 and "--no-browser" in lab_help.stdout, lab_help.stderr
    # JupyterLab itself came with the package: the lessons need nothing else.
    jupyter = subprocess.run([str(python), "-m", "jupyter", "lab", "--version"], capture_output=True, text=True,
                             timeout=120)
    assert jupyter.returncode == 0 and jupyter.stdout.strip().startswith("4."), jupyter.stdout + jupyter.stderr
