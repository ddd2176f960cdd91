"""`harness doctor` on this machine: what the default audit needs is here; what a GPU, an engine, Slurm
or a hand-downloaded Drive folder would need is named with its fix; nothing is downloaded or written."""

import json

import pytest

from conftest import copy_project, harness_cli, set_params


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path / "project")


def findings(project, *extra, env=None):
    done = harness_cli("doctor", "--json", "doctor.json", *extra, cwd=project, env=env)
    result = json.loads((project / "doctor.json").read_text())
    return done, {f["check"]: f for f in result["findings"]}, result["can_run"]


def test_the_default_audit_can_run_and_nothing_is_fetched(project):
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    done, found, can_run = findings(project)
    assert done.returncode == 0 and can_run, done.stdout + done.stderr
    assert "the audit can run as configured" in done.stdout
    assert found["dataset mini"]["status"] == "to fetch" and found["device"]["status"] == "ok"
    assert found["python package torch"]["status"] == "ok"
    assert found["realesrgan-x4plus: weights"]["status"] == "to fetch"
    assert found["metric lpips"]["status"] in ("ok", "warning")
    after = sorted(p.relative_to(project) for p in project.rglob("*") if p.name != "doctor.json")
    assert after == before


def test_a_gpu_audit_here_names_what_is_missing(project):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    set_params(project, device="cuda", runner="docker", teams=["adadat"])
    done, found, can_run = findings(project)
    assert done.returncode == 1 and not can_run
    assert found["GPU"]["status"] == "missing" and "device: cpu" in found["GPU"]["fix"]
    assert found["adadat: weights"]["status"] == "missing" and "team13_AdaDAT" in found["adadat: weights"]["detail"]
    assert found["adadat: code"]["status"] == "to fetch"
    assert "blocking finding(s)" in done.stdout and "GPU" in done.stdout


def test_a_docker_runner_without_an_engine_is_blocking(project, tmp_path):
    set_params(project, runner="docker")
    done, found, _ = findings(project, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert done.returncode == 1
    assert found["docker engine"]["status"] == "missing" and "start dockerd" in found["docker engine"]["fix"]
    set_params(project, runner="auto")
    done, found, _ = findings(project, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert done.returncode == 0 and "falls back to local" in found["docker engine"]["detail"]


def test_slurm_that_does_not_answer_is_blocking(project, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\n")
    set_params(project, executor="slurm")
    done, found, _ = findings(project, env={"SLURM_CONF": str(conf)})
    assert done.returncode == 1
    check = found.get("slurm") or found.get("slurm partition")
    assert check["status"] == "missing" and check["fix"]
