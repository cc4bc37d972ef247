"""environment.yml pins the same packages as pyproject.toml, so conda and pip users get one set-up."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)\s*==?\s*([0-9][^\s\"',]*)", line.strip().strip('"'))
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = pins(project["dependencies"])
    env = (REPO / "environment.yml").read_text()
    have = pins(env.splitlines())
    assert wanted, "pyproject.toml lists no pinned dependencies"
    missing = {k: v for k, v in wanted.items() if have.get(k) != v}
    assert not missing, f"environment.yml lacks or pins differently: {missing}"
    assert "python=3.11" in env


def test_every_pyproject_dependency_is_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert all("==" in d for d in project["dependencies"])


def test_make_lab_works_as_root_too(tmp_path):
    """`make lab` runs Jupyter with --allow-root exactly when run as root (Jupyter refuses root otherwise)."""
    import os
    import shutil
    import subprocess

    if shutil.which("make") is None:
        import pytest

        pytest.skip("no make here")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    jupyter = venv / "bin" / "jupyter"
    jupyter.write_text('#!/bin/sh\necho "jupyter $*"\n')
    jupyter.chmod(0o755)
    (venv / ".installed-stamp").touch()  # newer than pyproject.toml: the set-up step is skipped
    r = subprocess.run(["make", "-s", "lab", f"VENV={venv}"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "jupyter lab notebooks" in r.stdout
    assert ("--allow-root" in r.stdout) == (os.geteuid() == 0)
