"""`harness verify`, `evaluate` and `report` end to end through the real CLI."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import harness_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def env(niqe_cache, downloads):
    return {"HARNESS_METRIC_WEIGHTS": str(niqe_cache), "HARNESS_DOWNLOADS": str(downloads)}


def test_verify_then_a_changed_published_number_diverges(project, env):
    first = harness_cli("verify", "bicubic", "--json", "v1.json", cwd=project, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads((project / "v1.json").read_text())
    assert result["team"] == "bicubic" and result["verdict"] in ("exact", "reproduced")
    psnr = result["metrics"]["psnr"]
    assert {"published", "reproduced", "delta", "tolerance", "ok"} <= set(psnr) and psnr["ok"] is True
    assert result["metrics"]["niqe"]["ok"] is True  # NIQE from the harness's own cache, offline

    manifest = project / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["published"]["mini"]["values"]["psnr"] = 29.50
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    second = harness_cli("verify", "bicubic", "--json", "v2.json", cwd=project, env=env)
    assert second.returncode == 1
    assert "reusing" in second.stdout and "diverged" in second.stdout
    changed = json.loads((project / "v2.json").read_text())
    assert changed["verdict"] == "diverged" and changed["metrics"]["psnr"]["ok"] is False
    assert changed["metrics"]["psnr"]["delta"] == pytest.approx(psnr["reproduced"] - 29.50)
    assert changed["metrics"]["ssim"]["ok"] is True


def test_evaluate_interface_and_report(project, env):
    assert harness_cli("verify", "bicubic", cwd=project, env=env).returncode == 0
    done = harness_cli("evaluate", "--sr", "runs/mini/bicubic/run-1", "--hr", "data/mini/HR",
                       "--metrics", "psnr,ssim,lpips", "--mode", "strict", "--json", "e.json", cwd=project, env=env)
    assert done.returncode == 1 and "not computed: lpips (--allow-unavailable accepts that)" in done.stderr
    result = json.loads((project / "e.json").read_text())
    assert sorted(result["per_image"]) == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert set(result["per_image"]["0001"]) == {"psnr", "ssim"}
    assert result["mean"]["psnr"] > 25 and "lpips" in result["unavailable"]
    assert "harness fetch metric-weights lpips" in done.stdout

    report = harness_cli("report", "--teams", "bicubic,realesrgan-x4plus", cwd=project, env=env)
    assert report.returncode == 0
    assert "SUMMARY: 2 team(s): " in report.stdout and "1 failed" in report.stdout  # x4plus never ran
    written = json.loads((project / "report" / "report.json").read_text())
    assert [t["verdict"] for t in written["teams"]][1] == "failed"
    assert written["teams"][1]["failure"]["kind"] == "not_evaluated"
    assert (project / "report" / "summary.csv").read_text().startswith("team,verdict,failure_kind")
    check = harness_cli("report", "--show", "--check", cwd=project, env=env)
    assert check.returncode == 1 and "SUMMARY:" in check.stdout


def test_errors_are_short_and_typed(project, env):
    done = harness_cli("verify", "bicubc", cwd=project, env=env)
    assert done.returncode == 2 and "did you mean 'bicubic'" in done.stderr and "Traceback" not in done.stderr
    done = harness_cli("infer", "realesrgan-x4plus", cwd=project, env=env)
    assert done.returncode == 2 and "harness fetch data mini" in done.stderr
    done = harness_cli("evaluate", "--sr", "nowhere", "--hr", "nowhere", "--json", "x.json", cwd=project, env=env)
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_in_a_log_verify_prints_progress_lines_while_it_runs(project, env):
    """stderr to a pipe (CI, `| tee`): plain lines as the work goes, not bars drawn at the end."""
    seen, seen_while_running = [], []
    with subprocess.Popen([sys.executable, "-m", "harness.cli", "verify", "bicubic", "--rerun"], cwd=project,
                          env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as process:
        for line in process.stderr:
            seen.append(line.rstrip())
            if process.poll() is None:
                seen_while_running.append(line.rstrip())
        process.wait(timeout=600)
    assert process.returncode == 0, seen
    early = [line for line in seen_while_running if line.startswith(("bicubic run 1/1", "evaluating bicubic"))]
    assert any(line.endswith(": 0/6") or line.endswith(": 1/6") for line in early), seen  # as the work goes
    assert any(re.fullmatch(r"evaluating bicubic run 1/1: 6/6 in \d+\.\d s", line) for line in seen), seen
    assert not any("━" in line for line in seen)  # no bar drawn into the log


def test_list_never_cuts_a_team_id(project):
    shown = harness_cli("list", cwd=project, env={"COLUMNS": "100"})
    assert shown.returncode == 0
    for team in os.listdir(project / "teams"):
        if not team.startswith("_") and (project / "teams" / team / "manifest.yaml").exists():
            assert team in shown.stdout, team


def test_at_80_columns_what_a_user_copies_is_whole(project):
    """A URL, a commit, a Drive id, a path or a command that the plan names is printed whole on one line,
    however narrow the screen; `harness list` never cuts an id nor wraps a name inside a word."""
    import yaml as yaml_mod

    from harness.catalogue import roster
    from harness.core.project import Project

    team = roster.load(Project(project), "samsungaicamera")
    weights = team.weights[0]["source"]
    plan = harness_cli("verify", "samsungaicamera", "--plan", cwd=project, env={"COLUMNS": "80"})
    assert plan.returncode == 2, plan.stdout + plan.stderr
    lines = plan.stdout.splitlines()
    for whole in (team.data["code"]["repository"], team.data["code"]["commit"], weights["id"], weights["path"],
                  "harness data import ntire2025-test --lr PATH --hr PATH", "harness fetch code samsungaicamera",
                  "harness fetch weights samsungaicamera"):
        assert any(whole in line for line in lines), (whole, plan.stdout)
    assert "…" not in plan.stdout
    listing = harness_cli("list", cwd=project, env={"COLUMNS": "80"})
    assert listing.returncode == 0 and "…" not in listing.stdout
    shown = listing.stdout
    for path in sorted((project / "teams").glob("*/manifest.yaml")):
        if path.parent.name.startswith("_"):
            continue
        data = yaml_mod.safe_load(path.read_text())
        assert data["id"] in shown, data["id"]
        for word in data["name"].split():
            assert word in shown, (data["id"], word)  # wrapped between words, never inside one
