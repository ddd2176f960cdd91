"""The podman runner: the docker runner's code against a daemonless `podman system service`, with the
same lock-down, proven for real: a mini-suite team bit-identical to the local runner, nothing written
outside the output folder, no network, and a Slurm job running its team with podman."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from test_docker import ESCAPE_PROBE, NETWORK_PROBE, add_team

from harness.catalogue import datasets as data_mod
from harness.catalogue import manifests
from harness.core.settings import DockerSettings
from harness.run import inference
from harness.run.runners.local import LocalRunner

from conftest import LOCAL_BASE, copy_project, set_params

pytestmark = [pytest.mark.slow, pytest.mark.podman]
DOCKER = {"base_image": LOCAL_BASE, "cpus": 1, "memory_gb": 2, "scratch_gb": 1}  # as params.yaml says it


@pytest.fixture(scope="module")
def podman_runner():
    def unavailable(reason: str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the podman tests: `make engine`)")
        pytest.skip(reason)

    if not shutil.which("podman"):
        unavailable("podman is not installed")
    if subprocess.run(["podman", "image", "exists", LOCAL_BASE]).returncode != 0:
        unavailable(f"podman has no {LOCAL_BASE}: run `make engine`")
    from harness.run.runners.podman import PodmanRunner

    runner = PodmanRunner(DockerSettings(**DOCKER))
    yield runner
    runner.service.stop()


def test_a_mini_team_runs_bit_identical_to_the_local_runner(tmp_path, mini_data, podman_runner):
    root = copy_project(tmp_path / "project", teams=["bicubic"], image_sources=True)
    team = manifests.load(root / "teams" / "bicubic" / "manifest.yaml")
    lr_dir = data_mod.get("mini").lr_dir(mini_data)
    place = inference.RunPlace("mini", lr_dir, root / "weights" / "bicubic", root / "runs", root)
    in_podman = inference.infer_team(team, podman_runner, place, "cpu")
    assert in_podman["status"] == "ok", in_podman["failure"]
    provenance = in_podman["runs"][0]["provenance"]
    assert provenance["container"]["network"] == "none" and provenance["container"]["user"] == "10001:10001"
    place = inference.RunPlace("mini", lr_dir, root / "weights" / "bicubic", root / "runs-local", root)
    local = inference.infer_team(team, LocalRunner(), place, "cpu")
    assert local["runs"][0]["provenance"]["outputs_sha256"] == provenance["outputs_sha256"]


def test_podman_containers_cannot_write_outside_or_reach_the_network(tmp_path, mini_data, podman_runner):
    root = copy_project(tmp_path / "project", teams=[], image_sources=True)
    add_team(root, "escape-probe", ESCAPE_PROBE)
    add_team(root, "network-probe", NETWORK_PROBE, kwargs={"url": "http://127.0.0.1:9/"})
    weights = root / "weights" / "escape-probe"
    weights.mkdir(parents=True)
    lr_copy = tmp_path / "lr"
    shutil.copytree(data_mod.get("mini").lr_dir(mini_data), lr_copy)
    team = manifests.load(root / "teams" / "escape-probe" / "manifest.yaml")
    place = inference.RunPlace("mini", lr_copy, weights, root / "runs", root)
    record = inference.infer_team(team, podman_runner, place, "cpu")
    log = (root / "runs" / "mini" / "escape-probe" / "logs" / "run-1.log").read_text()
    assert record["failure"]["kind"] == "entry_error" and "ESCAPED" not in log and log.count("refused") == 4
    assert not list(lr_copy.glob("escape*")) and not list(weights.glob("escape*"))
    probe = manifests.load(root / "teams" / "network-probe" / "manifest.yaml")
    place = inference.RunPlace("mini", lr_copy, weights, root / "runs", root)
    record = inference.infer_team(probe, podman_runner, place, "cpu")
    assert record["failure"]["kind"] == "entry_error" and "URLError" in record["failure"]["message"]


def test_a_slurm_job_runs_its_team_with_podman(tmp_path, downloads, slurm_cluster, podman_runner):
    root = copy_project(tmp_path / "repo", teams=["bicubic"], image_sources=True)
    set_params(root, executor="slurm", runner="podman", docker=DOCKER,
               slurm={"cpus_per_task": 1, "mem_gb": 2, "poll_s": 1})
    env = {**os.environ, "HARNESS_DOWNLOADS": str(downloads)}
    for args in (["fetch", "data", "mini"], ["fetch", "weights", "bicubic"], ["infer", "bicubic"]):
        done = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=root, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((root / "runs" / "mini" / "bicubic" / "record.json").read_text())
    assert record["runner"] == "podman" and record["slurm_state"] == "COMPLETED"
