"""The slurm executor on a real single-node cluster (tests/slurm/cluster.sh: munge, MariaDB, slurmdbd,
slurmctld, slurmd, a GPU declared as a generic resource): the mini suite through `dvc repro` as one job
array, with a failing job and a cancelled one reported by type while the others complete; a job past
its Slurm time limit; a rerun that skips complete teams; a job running its team in Docker."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, set_params

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
SUITE = ["bicubic", "realesrgan-x4plus", "realesr-animevideov3", "random-tta"]
SLURM = {"cpus_per_task": 1, "mem_gb": 2, "poll_s": 1}
SLEEPER = "import time\n\ndef main(model_dir, input_path, output_path, device):\n    time.sleep(900)\n"


def add_probe(root: Path, team_id: str, code: str, runtime: dict | None = None, entry: dict | None = None,
              weights: list | None = None) -> None:
    folder = root / "teams" / team_id
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(code)
    (folder / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": team_id, "name": f"Probe {team_id}", "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 28.0}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test probe"}}},
        "weights": weights or [],
        "entry": entry or {"kind": "ntire-main", "module": "model.py", "function": "main"},
        "runtime": {"scale": 4, "timeout_s": 1200, **(runtime or {})},
        "determinism": {"class": "deterministic"}, "status": {"runnable": True},
        "container": {"recipe": "spandrel-torch26"}}, sort_keys=False))


def environment(downloads: Path) -> dict:
    return {**os.environ, "HARNESS_DOWNLOADS": str(downloads),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def harness(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=root, env=env, capture_output=True,
                          text=True)


def dvc_repo(root: Path, env: dict) -> None:
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def slurm_audit(tmp_path_factory, downloads, slurm_cluster):
    """`dvc repro` with executor: slurm over the mini suite, a broken team and a sleeper that is cancelled."""
    root = copy_project(tmp_path_factory.mktemp("slurm-audit") / "repo", teams=SUITE + ["broken", "sleeper"])
    set_params(root, executor="slurm", slurm=SLURM, metrics=["psnr", "ssim", "niqe"])
    (root / "teams" / "garbage.pth").write_bytes(b"not a checkpoint")
    add_probe(root, "broken", "", entry={"kind": "spandrel", "weights": "model.pth"},
              weights=[{"name": "model.pth", "source": {"kind": "local", "path": "teams/garbage.pth"}}])
    add_probe(root, "sleeper", SLEEPER)
    env = environment(downloads)
    dvc_repo(root, env)
    repro = subprocess.Popen(["dvc", "repro"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    jobs_file = root / ".cache" / "slurm" / "mini" / "jobs.json"
    deadline = time.time() + 600
    while time.time() < deadline and repro.poll() is None:  # cancel the sleeper once Slurm runs it
        if jobs_file.exists() and "sleeper" in json.loads(jobs_file.read_text())["jobs"]:
            listing = harness(root, env, "jobs")
            if any("sleeper" in line and "RUNNING" in line for line in listing.stdout.splitlines()):
                cancelled = harness(root, env, "cancel", "sleeper")
                assert cancelled.returncode == 0 and "cancelled 1 job(s)" in cancelled.stdout, cancelled.stderr
                break
        time.sleep(1)
    output, _ = repro.communicate(timeout=900)
    assert repro.returncode == 0, output
    return root, env, output


def test_dvc_repro_runs_the_mini_suite_as_slurm_jobs_with_local_verdicts(slurm_audit):
    root, _, output = slurm_audit
    report = {t["team"]: t for t in json.loads((root / "report" / "report.json").read_text())["teams"]}
    assert report["bicubic"]["verdict"] == "exact", report["bicubic"]
    for team in ("realesrgan-x4plus", "realesr-animevideov3"):  # exact where their digests were taken (ncnn: by CPU)
        assert report[team]["verdict"] in ("exact", "reproduced"), report[team]
    assert report["random-tta"]["verdict"] == "reproduced" and report["random-tta"]["runs"] == 3
    jobs = json.loads((root / ".cache" / "slurm" / "mini" / "jobs.json").read_text())["jobs"]
    assert set(jobs) == set(SUITE) | {"broken", "sleeper"}
    # Teams that ask for the same resources share one job array.
    arrays = {entry["job_id"].split("_")[0] for entry in jobs.values() if entry["array"]}
    assert arrays and len(arrays) < len(jobs)
    for team in SUITE:
        record = json.loads((root / "runs" / "mini" / team / "record.json").read_text())
        assert record["slurm_job_id"] == jobs[team]["job_id"] and record["slurm_state"] == "COMPLETED"
        assert all(run["provenance"]["slurm_job_id"] == jobs[team]["job_id"] for run in record["runs"])
    assert "audit jobs:" in output and "running" in output  # progress while waiting


def test_a_failing_and_a_cancelled_job_are_reported_by_type(slurm_audit):
    root, _, _ = slurm_audit
    report = {t["team"]: t for t in json.loads((root / "report" / "report.json").read_text())["teams"]}
    assert report["broken"]["verdict"] == "failed" and report["broken"]["failure"]["kind"] == "entry_error"
    assert report["sleeper"]["verdict"] == "failed" and report["sleeper"]["failure"]["kind"] == "cancelled"
    assert "Slurm job" in report["sleeper"]["failure"]["message"]


def test_jobs_lists_states_and_a_rerun_skips_complete_teams(slurm_audit):
    root, env, _ = slurm_audit
    listing = harness(root, env, "jobs")
    assert listing.returncode == 0
    rows = {line.split()[1]: line for line in listing.stdout.splitlines() if line.startswith("│ ")}
    assert "COMPLETED" in rows["bicubic"] and "CANCELLED" in rows["sleeper"]
    again = harness(root, env, "infer", "bicubic")
    assert again.returncode == 0 and "runs complete for this manifest; no job submitted" in again.stderr


def test_a_job_past_its_time_limit_is_a_timeout(tmp_path, downloads, slurm_cluster):
    root = copy_project(tmp_path / "repo", teams=["sleeper"])
    set_params(root, executor="slurm", slurm={**SLURM, "time_limit_min": 1})
    add_probe(root, "sleeper", SLEEPER)
    env = environment(downloads)
    assert harness(root, env, "fetch", "data", "mini").returncode == 0
    started = time.time()
    done = harness(root, env, "infer", "sleeper", "--record-failure")
    assert done.returncode == 0, done.stderr
    record = json.loads((root / "runs" / "mini" / "sleeper" / "record.json").read_text())
    # submitit stops the job at the limit itself, so Slurm may record FAILED instead of TIMEOUT.
    assert record["failure"]["kind"] == "timeout" and record["slurm_state"] in ("TIMEOUT", "FAILED")
    assert "at its time limit" in record["failure"]["message"]
    assert time.time() - started < 300


def test_a_job_runs_its_team_in_docker(tmp_path, downloads, slurm_cluster, docker_client):
    from conftest import LOCAL_BASE

    root = copy_project(tmp_path / "repo", teams=["bicubic"], image_sources=True)
    set_params(root, executor="slurm", slurm=SLURM, runner="docker",
               docker={"base_image": LOCAL_BASE, "cpus": 1, "memory_gb": 2})
    env = environment(downloads)
    assert harness(root, env, "fetch", "data", "mini").returncode == 0
    assert harness(root, env, "fetch", "weights", "bicubic").returncode == 0
    done = harness(root, env, "infer", "bicubic")
    assert done.returncode == 0, done.stderr
    record = json.loads((root / "runs" / "mini" / "bicubic" / "record.json").read_text())
    assert record["runner"] == "docker" and record["slurm_state"] == "COMPLETED"
    assert record["runs"][0]["provenance"]["container"]["network"] == "none"
