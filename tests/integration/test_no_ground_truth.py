"""Evaluation without ground truth: the no-reference metrics, the LR-consistency check, and verdicts
that say how much was checked. Real images (the mini suite's photographs), real team runs, the real CLI."""

import json
import shutil

import numpy as np
import pytest
import yaml

from harness.core.records import stated
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import encode_png, read_rgb8

from conftest import harness_cli

pytestmark = pytest.mark.slow

MINI_TEAMS = ["bicubic", "realesrgan-x4plus", "realesr-animevideov3", "random-tta"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory, niqe_cache, downloads):
    """The mini audit with ground truth: every mini team's honest outputs, and their NIQE."""
    from conftest import copy_project

    root = copy_project(tmp_path_factory.mktemp("nogt") / "repo")
    env = {"HARNESS_METRIC_WEIGHTS": str(niqe_cache), "HARNESS_DOWNLOADS": str(downloads)}
    done = harness_cli("audit", "--teams", ",".join(MINI_TEAMS), cwd=root, env=env)
    assert "SUMMARY: 4 team(s)" in done.stdout, done.stdout + done.stderr
    return root, env


def evaluate_without_hr(root, env, sr: str, name: str) -> tuple[dict, str]:
    done = harness_cli("evaluate", "--sr", sr, "--lr", "data/mini/LR", "--metrics", "psnr,niqe,perceptual_score",
                       "--json", name, cwd=root, env=env)
    assert done.returncode == 1 and "not computed: psnr, perceptual_score" in done.stderr, done.stdout + done.stderr
    done = harness_cli("evaluate", "--sr", sr, "--lr", "data/mini/LR", "--metrics", "psnr,niqe,perceptual_score",
                       "--json", name, "--allow-unavailable", "--allow-findings", cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((root / name).read_text()), done.stdout


def test_honest_outputs_of_every_mini_team_fit_their_inputs(audited):
    root, env = audited
    for team in MINI_TEAMS:
        result, _ = evaluate_without_hr(root, env, f"runs/mini/{team}/run-1", f"{team}.json")
        assert [f for f in result["findings"] if f["kind"] == "lr_inconsistent"] == [], team
        fits = result["lr_consistency"]["per_image"]
        assert sorted(fits) == ["0001", "0002", "0003", "0004", "0005", "0006"]
        assert all(25 < fit["psnr_y"] < 70 and fit["best_alternative"] is None for fit in fits.values()), team
        # The no-reference metric is the one computed with ground truth, to the last bit the pipeline keeps.
        with_hr = json.loads((root / "evaluations" / "mini" / f"{team}.json").read_text())["runs"][0]
        assert stated(result["mean"]["niqe"]) == with_hr["mean"]["niqe"]


def test_swapped_channels_a_shift_and_exchanged_outputs_are_named(audited, tmp_path):
    root, env = audited
    tampered = tmp_path / "tampered"
    shutil.copytree(root / "runs" / "mini" / "bicubic" / "run-1", tampered)
    swapped = read_rgb8(tampered / "0002x4.png")
    (tampered / "0002x4.png").write_bytes(encode_png(np.ascontiguousarray(swapped[:, :, ::-1])))
    shifted = read_rgb8(tampered / "0004x4.png")
    (tampered / "0004x4.png").write_bytes(encode_png(np.ascontiguousarray(np.roll(shifted, 1, axis=1))))
    first, second = (tampered / "0005x4.png").read_bytes(), (tampered / "0006x4.png").read_bytes()
    (tampered / "0005x4.png").write_bytes(second)
    (tampered / "0006x4.png").write_bytes(first)

    result, stdout = evaluate_without_hr(root, env, str(tampered), "tampered.json")
    named = {f["image"]: f["message"] for f in result["findings"] if f["kind"] == "lr_inconsistent"}
    assert set(named) == {"0002", "0004", "0005", "0006"}
    assert "channels read as BGR" in named["0002"]
    assert "shifted by dx=+1, dy=+0" in named["0004"]
    assert "fits input 0006" in named["0005"] and "fits input 0005" in named["0006"]
    assert "lr_inconsistent" in stdout and "0004" in stdout
    # Without ground truth: PSNR and the score are unavailable (never partial), NIQE is computed.
    assert result["ground_truth"] is False and "niqe" in result["mean"]
    assert set(result["unavailable"]) == {"psnr", "perceptual_score", "lpips", "dists", "musiq", "maniqa",
                                          "clipiqa"}
    assert "ground truth" in result["unavailable"]["psnr"]["reason"]
    assert "ground truth" in result["unavailable"]["perceptual_score"]["reason"]
    assert "psnr" not in result["per_image"]["0001"]


def test_a_wrong_scale_output_is_named(audited, tmp_path):
    root, env = audited
    outputs = tmp_path / "scaled"
    shutil.copytree(root / "runs" / "mini" / "bicubic" / "run-1", outputs)
    lr = read_rgb8(root / "data" / "mini" / "LR" / "0003x4.png")
    (outputs / "0003x4.png").write_bytes(encode_png(imresize(lr, 3)))
    result, _ = evaluate_without_hr(root, env, str(outputs), "scaled.json")
    named = {f["image"]: f["message"] for f in result["findings"] if f["kind"] == "lr_inconsistent"}
    assert list(named) == ["0003"] and "3x3 its input, not x4" in named["0003"]


def test_verify_on_a_test_set_without_ground_truth(audited, tmp_path):
    """The NTIRE test set as it is public: LR only. A team is verified on what needs no HR."""
    root, env = audited
    project = tmp_path / "repo"
    shutil.copytree(root, project, ignore=shutil.ignore_patterns("runs", "evaluations", "metrics", "report"))
    lr_dir = tmp_path / "test-lr"
    lr_dir.mkdir()
    source = read_rgb8(root / "data" / "mini" / "HR" / "0001.png")
    for index, stem in enumerate(range(901, 1001)):
        top, left = (index // 10) * 20, (index % 10) * 20
        tile = np.ascontiguousarray(source[top:top + 128, left:left + 128])
        (lr_dir / f"{stem:04d}x4.png").write_bytes(encode_png(imresize(tile, 0.5)))
    imported = harness_cli("data", "import", "ntire2025-test", "--lr", str(lr_dir), cwd=project, env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr

    manifest = project / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["published"]["ntire2025-test"] = {"values": {"psnr": 27.0, "ssim": 0.7, "niqe": 5.0},
                                           "precision": {"psnr": 2, "ssim": 4, "niqe": 4},
                                           "source": data["published"]["mini"]["source"]}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    first = harness_cli("verify", "bicubic", "--dataset", "ntire2025-test", "--json", "v.json", cwd=project, env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    row = json.loads((project / "v.json").read_text())
    assert row["verdict"] == "diverged" and row["ground_truth"] is False
    assert row["metrics"]["psnr"]["status"] == "unavailable" and "ground truth" in row["metrics"]["psnr"]["reason"]

    data["published"]["ntire2025-test"]["values"]["niqe"] = round(row["metrics"]["niqe"]["reproduced"], 4)
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    second = harness_cli("verify", "bicubic", "--dataset", "ntire2025-test", "--json", "v.json", cwd=project, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "reproduced (1 of 3 metrics; no ground truth)" in second.stdout

    for field in ("values", "precision"):
        del data["published"]["ntire2025-test"][field]["niqe"]
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    third = harness_cli("verify", "bicubic", "--dataset", "ntire2025-test", "--json", "v.json", cwd=project, env=env)
    assert third.returncode == 1, third.stdout + third.stderr
    assert json.loads((project / "v.json").read_text())["failure"]["kind"] == "no_ground_truth"
    assert "harness data import ntire2025-test --hr PATH" in third.stdout
