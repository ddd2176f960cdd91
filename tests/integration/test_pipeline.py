"""The audit as a real DVC pipeline: every team, a failing one, re-runs limited to what changed."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_project

pytestmark = [pytest.mark.slow, pytest.mark.dvc]
SUITE = ["bicubic", "realesrgan-x4plus", "realesr-animevideov3", "random-tta"]


def sh(*args, cwd, env):
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, downloads):
    """A fresh repository holding the project plus one broken team; `dvc repro` run once."""
    root = copy_project(tmp_path_factory.mktemp("audit") / "repo", teams=SUITE + ["broken", "paper-only"])
    (root / "teams" / "paper-only").mkdir()
    (root / "teams" / "paper-only" / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "paper-only", "name": "Architecture only", "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 28.0}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test"}}},
        "entry": {"kind": "none"}, "runtime": {"scale": 4}, "determinism": {"class": "deterministic"},
        "status": {"runnable": False, "reasons": ["no inference script in the release"]}}))
    broken = root / "teams" / "broken"
    broken.mkdir()
    (broken / "garbage.pth").write_bytes(b"not a checkpoint")
    (broken / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "broken", "name": "Broken checkpoint", "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 28.0}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test"}}},
        "weights": [{"name": "model.pth", "source": {"kind": "local", "path": "teams/broken/garbage.pth"}}],
        "entry": {"kind": "spandrel", "weights": "model.pth"},
        "runtime": {"scale": 4}, "determinism": {"class": "deterministic"}, "status": {"runnable": True}}))
    env = {**os.environ, "HARNESS_DOWNLOADS": str(downloads),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("HARNESS_METRIC_WEIGHTS", None)
    sh("git", "init", "-q", cwd=root, env=env)
    sh("dvc", "init", "-q", cwd=root, env=env)
    sh("dvc", "config", "core.analytics", "false", cwd=root, env=env)
    output = sh("dvc", "repro", cwd=root, env=env)
    return root, env, output


def test_first_repro_runs_every_stage_and_reports_verdicts(pipeline):
    root, _, output = pipeline
    expected = {"params", "data", "metric_weights", "submit", "report"} | {
        f"{stage}@{team}" for stage in ("weights", "code", "infer", "evaluate")
        for team in SUITE + ["broken", "paper-only"]}
    assert ran_stages(output) == expected
    assert "report: report/index.html (`harness report --show` prints it)" in output  # the story, not here
    report = {t["team"]: t for t in json.loads((root / "report" / "report.json").read_text())["teams"]}
    for team in ("bicubic", "realesrgan-x4plus", "realesr-animevideov3"):
        assert report[team]["verdict"] in ("exact", "reproduced"), report[team]
    band = report["random-tta"]
    assert band["verdict"] == "reproduced" and band["runs"] == 3
    assert band["metrics"]["psnr"]["spread"] > 0  # the runs really differ
    low, high = band["metrics"]["psnr"]["band"]
    assert low <= band["metrics"]["psnr"]["published"] <= high
    assert report["broken"]["verdict"] == "failed" and report["broken"]["failure"]["kind"] == "entry_error"
    assert report["paper-only"]["verdict"] == "not_runnable"
    assert report["paper-only"]["failure"]["message"] == "no inference script in the release"
    assert "broken" in (root / "report" / "report.md").read_text()


def test_metrics_show(pipeline):
    root, env, _ = pipeline
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=root, env=env))
    flat = json.dumps(shown)
    assert "metrics/mini/bicubic.json" in flat and '"psnr"' in flat


def test_second_repro_is_a_no_op_and_one_team_change_reruns_only_that_team(pipeline):
    root, env, _ = pipeline
    assert ran_stages(sh("dvc", "repro", cwd=root, env=env)) == set()
    manifest = root / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["description"] = "MATLAB-compatible bicubic x4, described anew."
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    again = ran_stages(sh("dvc", "repro", cwd=root, env=env))
    assert {"infer@bicubic", "evaluate@bicubic", "report"} <= again
    # submit looks at every team; with executor: local its output does not change, so no other team reruns.
    assert again <= {"weights@bicubic", "code@bicubic", "submit", "infer@bicubic", "evaluate@bicubic", "report"}


def test_a_repeated_audit_leaves_dvc_lock_and_git_status_as_they_were(pipeline):
    """What changes from one session to the next (times, the checkout's commit, the kernel) is kept in
    session.json files DVC does not hash, and random-tta's runs differ from each other but not from one
    audit to the next: every stage run again gives the same dvc.lock."""
    root, env, _ = pipeline
    env = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    sh("git", "add", "-A", cwd=root, env=env)
    sh("git", "commit", "-qm", "the reference audit", cwd=root, env=env)
    assert len(ran_stages(sh("dvc", "repro", "--force", cwd=root, env=env))) > 20  # every stage, again
    assert sh("git", "status", "--porcelain", cwd=root, env=env) == ""
    assert (root / "runs" / "mini" / "bicubic" / "run-1" / "session.json").exists()  # kept, just not hashed


def tracked_state(root: Path) -> dict[str, bytes]:
    """Every file the pipeline makes or records (runs, evaluations, metrics, plots, its report, dvc.lock)."""
    files = [p for folder in ("runs", "evaluations", "metrics", "plots") for p in (root / folder).rglob("*")]
    files += [p for p in (root / "report").glob("*")] + [root / "dvc.lock", root / "params.yaml"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files  # session files: when and where, not hashed
            if p.is_file() and not p.name.endswith("session.json")}


def test_a_check_the_machine_cannot_make_changes_no_file_the_pipeline_tracks(pipeline):
    """On a machine without a GPU: verify --device cuda after the pipeline's CPU run is refused by its plan
    (no_gpu), never answered from the CPU run; `dvc exp run -S device=cuda` stops at its first stage; a
    challenge's audit writes its own report. Nothing the pipeline tracks changes."""
    import torch

    from conftest import harness_cli

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    root, env, _ = pipeline
    env = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True).returncode:
        sh("git", "add", "-A", cwd=root, env=env)
        sh("git", "commit", "-qm", "the reference audit", cwd=root, env=env)
    before = tracked_state(root)
    for extra in ([], ["--rerun"]):
        done = harness_cli("verify", "bicubic", "--device", "cuda", *extra, cwd=root, env={**env, "COLUMNS": "80"})
        assert done.returncode == 2, done.stdout + done.stderr
        assert re.search(r"missing\s+device: no_gpu", done.stdout), done.stdout
        assert "reusing" not in done.stdout and "1 piece(s) missing: device" in done.stderr
    experiment = subprocess.run(["dvc", "exp", "run", "-S", "device=cuda"], cwd=root, env=env,
                                capture_output=True, text=True)
    assert experiment.returncode != 0 and "no_gpu" in experiment.stdout + experiment.stderr
    assert "Running stage 'infer@" not in experiment.stdout
    challenge = harness_cli("audit", "--challenge", "mini", cwd=root, env=env)
    assert "report/mini/index.html" in challenge.stdout, challenge.stdout + challenge.stderr
    assert json.loads((root / "report" / "mini" / "report.json").read_text())["dataset"] == "mini"
    after = tracked_state(root)
    changed = [name for name in before if before[name] != after.get(name)]
    assert changed == [], "\n".join(changed)
    assert set(after) == set(before)


def test_a_run_verify_made_is_the_pipelines_run(pipeline):
    """verify --rerun runs and scores a team of the pipeline as its stages would: dvc repro then runs
    neither its inference again nor puts an older run back over it."""
    from conftest import harness_cli

    root, env, _ = pipeline
    done = harness_cli("verify", "realesr-animevideov3", "--rerun", cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recorded as the pipeline's run of realesr-animevideov3" in done.stdout
    output = root / "runs" / "mini" / "realesr-animevideov3" / "run-1" / "0001x4.png"
    made = output.stat().st_mtime_ns
    again = ran_stages(sh("dvc", "repro", cwd=root, env=env))
    assert not again & {"infer@realesr-animevideov3", "evaluate@realesr-animevideov3"}, again
    assert output.stat().st_mtime_ns == made  # the run verify made, not an older one from the cache


def test_hand_placed_weights_are_pinned_and_never_deleted(pipeline):
    """A weights folder placed by hand (a Drive folder downloaded from a mirror) is accepted, pinned file
    by file, survives its pipeline stage, and a changed file is refused by name."""
    root, env, _ = pipeline
    team = "adadat"  # its weights are a Drive folder whose file name is not published
    placed = root / "weights" / team / "team13_AdaDAT"
    placed.mkdir(parents=True)
    (placed / "net_g_latest.pth").write_bytes(b"hand-placed checkpoint")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["teams"] = params["teams"] + [team]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = sh("dvc", "repro", "-s", f"weights@{team}", cwd=root, env=env)
    assert f"weights@{team}" in ran_stages(output)
    assert (placed / "net_g_latest.pth").read_bytes() == b"hand-placed checkpoint"
    pins = json.loads((root / "weights" / team / "sha256.json").read_text())
    assert list(pins) == ["team13_AdaDAT/net_g_latest.pth"]
    (placed / "net_g_latest.pth").write_bytes(b"another checkpoint")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "fetch", "weights", team], cwd=root, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "team13_AdaDAT/net_g_latest.pth" in done.stderr and "pinned" in done.stderr
    assert (placed / "net_g_latest.pth").read_bytes() == b"another checkpoint"  # refused, not deleted
