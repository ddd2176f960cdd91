"""The organizer's route, rehearsed: every published output of NTIRE 2025 scored again, no GPU and no team
code. A loopback Drive (tests/fakedrive.py) holds the organizers' layout: one shared folder, a sub-folder
per team named as the manifests name it, 100 outputs in each (small generated images); the ground truth
is imported; `harness audit --challenge ntire2025-sr-x4 --from-outputs` scores every team from its own
folder, the report is written, and a second audit downloads nothing."""

import json

import numpy as np
import pytest
import yaml

from harness.catalogue import roster
from harness.core.project import Project
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import write_rgb8
from harness.run import published_outputs

from conftest import copy_project, harness_cli, set_params
from fakedrive import Drive, Served

pytestmark = [pytest.mark.slow, pytest.mark.network]
STEMS = [f"{index:04d}" for index in range(901, 1001)]


def ground_truth(stem: str) -> np.ndarray:
    """A 32x32 image with structure (a gradient and a pattern that differs per image)."""
    rng = np.random.default_rng(int(stem))
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([x * 7, y * 7, (x + y) * 3 + 40], axis=-1) + rng.integers(0, 40, (32, 32, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def organizers(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("route") / "project")
    set_params(root, metrics=["psnr", "ssim"], teams=[])
    proj = Project(root)
    teams = [t for t in roster.load_all(proj)[0] if t.data["challenge"] == "ntire2025-sr-x4"]
    sources = {published_outputs.default_source(t, "ntire2025-test") for t in teams} - {None}
    [shared] = sources  # the organizers publish every team's outputs in one shared Drive folder
    drive = Drive()
    drive.folder(shared.split(":", 1)[1], "NTIRE2025_ImageSR_x4 results")
    truth = tmp_path_factory.mktemp("truth")
    for stem in STEMS:
        hr = ground_truth(stem)
        write_rgb8(truth / "HR" / f"{stem}.png", hr)
        write_rgb8(truth / "LR" / f"{stem}x4.png", imresize(hr, 0.25))
    with_outputs = []
    for index, team in enumerate(teams):
        folder = published_outputs.team_folder(team, "ntire2025-test")
        if not folder:
            continue
        with_outputs.append(team.id)
        sub = drive.add(shared.split(":", 1)[1], folder, folder=True)
        noise = np.random.default_rng(index)
        for stem in STEMS:
            out = np.clip(ground_truth(stem) + noise.normal(0, 2 + index % 5, (32, 32, 3)), 0, 255).astype(np.uint8)
            path = truth / "outputs" / folder / f"{stem}x4.png"
            write_rgb8(path, out)
            drive.add(sub, f"{stem}x4.png", path.read_bytes())
    served = Served(drive, tmp_path_factory.mktemp("drive"))
    env = {**served.environment, "HARNESS_DOWNLOADS": str(root / ".cache" / "downloads")}
    imported = harness_cli("data", "import", "ntire2025-test", "--hr", str(truth / "HR"), "--lr", str(truth / "LR"),
                           cwd=root, env=env)
    assert imported.returncode == 0, imported.stderr
    yield root, env, drive, teams, with_outputs
    served.close()


def test_every_published_output_is_scored_again_from_its_own_folder(organizers):
    root, env, drive, teams, with_outputs = organizers
    done = harness_cli("audit", "--challenge", "ntire2025-sr-x4", "--from-outputs", cwd=root, env=env)
    assert done.returncode == 1, done.stdout + done.stderr  # generated outputs do not reproduce the table
    assert "Traceback" not in done.stderr
    assert len(with_outputs) == 24 and len(drive.downloads()) == 24 * 100  # each file once, 100 per folder
    report = json.loads((root / "report" / "ntire2025-sr-x4" / "report.json").read_text())  # the challenge's own
    rows = {row["team"]: row for row in report["teams"]}
    assert set(rows) == {t.id for t in teams}
    for team_id, row in rows.items():
        if team_id in with_outputs:
            assert row["verdict"] in ("diverged", "reproduced", "exact"), row
            assert row["metrics"]["psnr"]["reproduced"] is not None and row["runs"] == 1
            assert row["metrics"]["lpips"]["status"] == "unavailable"  # no weights here: said, never 0
        else:  # the late entries and the baseline publish no outputs: a typed reason, not a crash
            assert row["verdict"] in ("failed", "not_runnable") and row["failure"]["kind"], row
    run = root / "runs" / "ntire2025-test" / "junyi" / "run-1"
    assert sorted(p.name for p in run.glob("*.png")) == [f"{stem}x4.png" for stem in STEMS]
    assert (root / "report" / "ntire2025-sr-x4" / "index.html").exists()
    assert not (root / "report" / "index.html").exists()  # the pipeline's report is not the challenge's


def test_a_second_audit_downloads_nothing(organizers):
    root, env, drive, _, _ = organizers
    before = len(drive.downloads())
    done = harness_cli("audit", "--challenge", "ntire2025-sr-x4", "--from-outputs", cwd=root, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(drive.downloads()) == before
    assert yaml.safe_load((root / "params.yaml").read_text())["metrics"] == ["psnr", "ssim"]
