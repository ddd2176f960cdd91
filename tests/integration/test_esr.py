"""The Efficient SR challenges as data, on a fixture repository in their layout: models/teamXX_Name.py,
weights in model_zoo/ (in git), select_model's contract. Model metrics (parameters, FLOPs, activations,
conv layers) are reproduced exactly and checked against numbers this test works out by hand; the model
alone is checked when the dataset is not here; a runtime measured on a CPU is never compared; with a few
images of the validation set imported, PSNR is compared image by image with published per-image values."""

import json
import math
import subprocess

import numpy as np
import pytest
import yaml

from harness.imaging.pictures import read_rgb8, write_rgb8

from conftest import copy_project, harness_cli

pytestmark = pytest.mark.slow

TINY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """conv 3->8, ReLU, conv 8->48, pixel shuffle x4."""

    def __init__(self, in_ch, out_ch, channels=8, upscale=4):
        super().__init__()
        self.head = nn.Conv2d(in_ch, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, out_ch * upscale * upscale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(upscale)
        self.cuda()(torch.randn(1, 3, 32, 32).cuda())  # a warm-up on the GPU, as some teams' constructors do

    def forward(self, x):
        return self.shuffle(self.tail(torch.relu(self.head(x))))
'''
# Worked out by hand for Tiny(3, 3) on the 256x256 probe (fvcore counts a multiply-add of a convolution once):
PARAMS = (8 * 3 * 9 + 8) + (48 * 8 * 9 + 48)                        # 3728
FLOPS = 256 * 256 * 8 * 3 * 9 + 256 * 256 * 48 * 8 * 9               # 240 648 192
ACTIVATIONS = 8 * 256 * 256 + 48 * 256 * 256                          # 3 670 016
VALID = [f"{i:07d}" for i in range(1, 101)] + [f"{i:04d}" for i in range(801, 901)]  # sorted, as declared


@pytest.fixture(scope="module")
def esr(tmp_path_factory, mini_data):
    import torch

    base = tmp_path_factory.mktemp("esr")
    repository = base / "mirror" / "example-org" / "esr-repo"
    (repository / "models").mkdir(parents=True)
    (repository / "model_zoo").mkdir()
    (repository / "models" / "team07_Tiny.py").write_text(TINY)
    torch.manual_seed(7)
    head, tail = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 48, 3, padding=1)
    state = {"head.weight": head.weight.detach(), "head.bias": head.bias.detach(),
             "tail.weight": tail.weight.detach() * 0.1, "tail.bias": tail.bias.detach() * 0.1}
    torch.save({"params_ema": state}, repository / "model_zoo" / "team07_Tiny.pth")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repository)], check=True)
    subprocess.run([*git, "-C", str(repository), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repository), "commit", "-qm", "teams"], check=True)
    commit = subprocess.run(["git", "-C", str(repository), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    weights = repository / "model_zoo" / "team07_Tiny.pth"
    import hashlib

    root = copy_project(base / "project", teams=[], image_sources=True)
    lr_stems = ["0000001", "0000002", "0801"]
    images = base / "valid"
    for stem, source in zip(lr_stems, ("0001", "0002", "0004"), strict=True):
        hr = read_rgb8(mini_data / "mini" / "HR" / f"{source}.png")[:64, :64]
        write_rgb8(images / "HR" / f"{stem}.png", hr)
        write_rgb8(images / "LR" / f"{stem}x4.png", read_rgb8(mini_data / "mini" / "LR" / f"{source}x4.png")[:16, :16])
    per_image = {stem: expected_psnr(images, stem, state) for stem in lr_stems}
    for team_id, flops in (("esr-tiny", FLOPS / 1e9), ("esr-off", FLOPS / 1e9 + 0.01)):
        listed = [None] * len(VALID)
        for stem, value in per_image.items():
            listed[VALID.index(stem)] = round(value, 4)
        folder = root / "teams" / team_id
        folder.mkdir()
        (folder / "manifest.yaml").write_text(yaml.safe_dump({
            "schema_version": 1, "id": team_id, "name": team_id, "challenge": "ntire2026-esr",
            "tracks": ["overall", "runtime", "flops", "params"],
            "published": {
                "model": {"values": {"params": PARAMS / 1e6, "flops": round(flops, 9), "activations": ACTIVATIONS / 1e6,
                                     "conv2d": 2, "runtime": 5.5},
                          "precision": {"params": 6, "flops": 9, "activations": 6, "conv2d": 0, "runtime": 4},
                          "source": {"kind": "official-table", "citation": "a fixture"}},
                "div2k-lsdir-valid": {"values": {"psnr_rgb": 25.0, "runtime": 6.0},
                                      "precision": {"psnr_rgb": 6, "runtime": 4}, "per_image": {"psnr_rgb": listed},
                                      "source": {"kind": "official-table", "citation": "a fixture"}}},
            "code": {"repository": "https://github.com/example-org/esr-repo", "commit": commit, "path": "."},
            "weights": [{"name": "team07_Tiny.pth", "source": {"kind": "code", "path": "model_zoo/team07_Tiny.pth"},
                         "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}],
            "entry": {"kind": "select-model", "code_root": "code", "module": "models/team07_Tiny.py", "class": "Tiny",
                      "positional": [3, 3], "weights": "team07_Tiny.pth", "state_key": ["params_ema", "params", "raw"],
                      "data_range": 1.0, "tile": None},
            "runtime": {"scale": 4}, "determinism": {"class": "deterministic"}, "status": {"runnable": True}}))
    env = {"HARNESS_GIT_MIRROR": str(base / "mirror")}
    for team_id in ("esr-tiny", "esr-off"):
        harness_cli("fetch", "code", team_id, cwd=root, env=env, check=True)
        harness_cli("fetch", "weights", team_id, cwd=root, env=env, check=True)
    return root, env, images, per_image


def expected_psnr(images, stem, state) -> float:
    """The network run by hand in numpy (3x3 convolutions, ReLU, pixel shuffle) and the organizers' PSNR:
    RGB, 4-pixel border, on 0..255 after rounding."""
    lr = read_rgb8(images / "LR" / f"{stem}x4.png").astype(np.float64) / 255.0

    def conv(x, weight, bias):
        weight, bias = weight.double().numpy(), bias.double().numpy()
        padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        out = np.zeros((x.shape[0], x.shape[1], weight.shape[0]))
        for dy in range(3):
            for dx in range(3):
                out += padded[dy:dy + x.shape[0], dx:dx + x.shape[1]] @ weight[:, :, dy, dx].T
        return out + bias

    features = np.maximum(conv(lr, state["head.weight"], state["head.bias"]), 0)
    out = conv(features, state["tail.weight"], state["tail.bias"])  # h x w x 48: channel c*16 + 4i + j
    h, w = lr.shape[:2]
    sr = out.reshape(h, w, 3, 4, 4).transpose(0, 3, 1, 4, 2).reshape(h * 4, w * 4, 3)
    sr = np.clip(sr, 0, 1) * 255.0
    sr = np.round(sr).astype(np.uint8)
    hr = read_rgb8(images / "HR" / f"{stem}.png")
    difference = sr[4:-4, 4:-4].astype(np.float64) - hr[4:-4, 4:-4].astype(np.float64)
    return 20 * math.log10(255.0 / math.sqrt(np.mean(difference ** 2)))


def verify(root, env, team_id, *args) -> dict:
    done = harness_cli("verify", team_id, *args, "--json", "v.json", cwd=root, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads((root / "v.json").read_text())


def test_model_metrics_are_reproduced_exactly_from_the_repository_weights(esr):
    root, env, _, _ = esr
    row = verify(root, env, "esr-tiny", "--dataset", "model", "--device", "cpu")
    metrics = row["metrics"]
    assert row["verdict"] == "reproduced", row
    assert metrics["params"]["reproduced"] == pytest.approx(PARAMS / 1e6, abs=1e-12)
    assert metrics["flops"]["reproduced"] == pytest.approx(FLOPS / 1e9, abs=1e-12)
    assert metrics["activations"]["reproduced"] == pytest.approx(ACTIVATIONS / 1e6, abs=1e-12)
    assert metrics["conv2d"]["reproduced"] == 2
    assert metrics["runtime"]["status"] == "unavailable" and "images" in metrics["runtime"]["reason"]
    run = root / "runs" / "model" / "esr-tiny" / "run-1"
    sizes = {p.name: read_rgb8(p).shape for p in run.glob("*.png")}
    assert len(sizes) == 6 and all(shape == (320, 320, 3) or shape == (300, 320, 3) for shape in sizes.values())
    off = verify(root, env, "esr-off", "--dataset", "model", "--device", "cpu")
    assert off["verdict"] == "diverged" and not off["metrics"]["flops"]["ok"] and off["metrics"]["params"]["ok"]


def test_without_its_dataset_the_model_alone_is_checked_and_the_dataset_named(esr):
    root, env, _, _ = esr
    row = verify(root, env, "esr-tiny", "--dataset", "div2k-lsdir-test", "--device", "cpu")
    assert row["checked_on"] == "model" and row["dataset"] == "div2k-lsdir-test"
    assert row["verdict"] == "reproduced" and "runtime" in row["unverified"]
    harness_cli("report", "--teams", "esr-tiny", "--dataset", "div2k-lsdir-test", cwd=root, env=env, check=True)
    shown = (root / "report" / "report.md").read_text()
    assert "the model alone" in shown and "| 2 / 2 (+0) ✓ |" in shown  # a count is shown without decimals


def test_a_team_that_runs_on_cuda_only_is_refused_on_cpu_before_anything_starts(esr):
    root, env, _, _ = esr
    manifest = yaml.safe_load((root / "teams" / "esr-tiny" / "manifest.yaml").read_text())
    manifest["id"], manifest["runtime"]["devices"] = "esr-cuda-only", ["cuda"]
    (root / "teams" / "esr-cuda-only").mkdir(exist_ok=True)
    (root / "teams" / "esr-cuda-only" / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    planned = harness_cli("verify", "esr-cuda-only", "--dataset", "model", "--device", "cpu", cwd=root, env=env)
    assert planned.returncode == 2 and "missing: device" in planned.stderr, planned.stderr
    assert "runs on cuda only; asked: cpu" in planned.stdout and "model_zoo/team07_Tiny.pth in the team's code" \
        in planned.stdout
    audited = harness_cli("audit", "--teams", "esr-cuda-only", "--dataset", "model", cwd=root, env=env)  # device: cpu
    assert audited.returncode == 1 and "unsupported_device" in audited.stderr, audited.stderr
    assert "runs on cuda only, not cpu" in " ".join(audited.stderr.split()) and "--device cuda" in audited.stderr
    assert not (root / "runs" / "model" / "esr-cuda-only" / "logs").exists()  # no environment was started


def test_a_few_validation_images_are_compared_image_by_image(esr):
    root, env, images, per_image = esr
    done = harness_cli("data", "import", "div2k-lsdir-valid", "--hr", str(images / "HR"), "--lr", str(images / "LR"),
                       "--subset", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    row = verify(root, env, "esr-tiny", "--dataset", "div2k-lsdir-valid", "--device", "cpu")
    psnr = row["metrics"]["psnr_rgb"]
    assert psnr["scope"] == "3 of 200 images" and psnr["ok"], psnr
    for stem, value in per_image.items():
        assert psnr["per_image_compared"][stem]["reproduced"] == pytest.approx(value, abs=2e-3)  # float32 vs 64
    assert row["metrics"]["runtime"]["status"] == "unavailable"  # a CPU's milliseconds are never compared
    assert "CUDA events" in row["metrics"]["runtime"]["reason"]
    refused = harness_cli("data", "import", "div2k-lsdir-valid", "--hr", str(images / "HR"), cwd=root, env=env)
    assert refused.returncode == 2 and "expected image(s) missing" in refused.stderr  # without --subset
