"""The two ways of installing agree, and notebooks are stored clean."""

from __future__ import annotations

import json
import pathlib
import re

import pytest
import tomllib
import yaml

import socketlessons

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, requirement
    return match[1].lower().replace("_", "-"), match[2].replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(_split(d.replace("=", "==", 1) if re.match(r"^python=\d", d) else d)
                 for d in env["dependencies"] if isinstance(d, str))
    assert conda.pop("python") == "==3.11", "repo2docker recognises only a python=X.Y pin"
    conda.pop("pip")
    assert conda == dict(_split(r) for r in project["dependencies"])
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # a pip: section must not hold a local path (kills the cache)
            assert not any(str(line).lstrip("-e ").startswith(".") for line in entry.get("pip", []))


def test_postbuild_installs_the_package():
    assert "pip install" in (ROOT / "postBuild").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"cells {dirty} carry outputs: run 'make strip' before committing"
    assert "widgets" not in nb.get("metadata", {}), "widget state is an output too"


def test_public_api_is_sorted_and_complete():
    names = socketlessons.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(socketlessons, name), name
