"""PSNR/SSIM and pairing with the organizers' semantics, on small images worked out by hand."""

import math

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from harness.core.errors import EvaluationError, PairingError
from harness.imaging.pictures import write_rgb8
from harness.score import formulas as S
from harness.score.evaluation import evaluate, ground_truth_name, pair_outputs


def gray(h, w, value):
    return np.full((h, w, 3), value, np.uint8)


def luma(v):
    """Y of a grey pixel of 8-bit value v: 16 + (65.481 + 128.553 + 24.966) * v / 255 = 16 + 219 v / 255."""
    return 16 + 219 * v / 255


def test_y_channel_of_primaries():
    assert S.y_channel(np.array([[[0, 0, 0]]], np.uint8))[0, 0] == pytest.approx(16.0)
    assert S.y_channel(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0, abs=1e-4)
    assert S.y_channel(np.array([[[255, 0, 0]]], np.uint8))[0, 0] == pytest.approx(81.481, abs=1e-4)
    assert S.y_channel(gray(1, 1, 100)).dtype == np.float32  # not rounded


def test_psnr_of_a_uniform_offset():
    hr, sr = gray(16, 16, 100), gray(16, 16, 110)
    # Every pixel's Y differs by 219*10/255, so PSNR = 20 log10(255 / (2190/255)).
    expected = 20 * math.log10(255 / (2190 / 255))
    assert S.psnr_ssim(sr, hr, ["psnr"])["psnr"] == pytest.approx(expected, abs=2e-4)


def test_border_shave_and_crop_to_multiple_of_four():
    hr = gray(18, 22, 100)
    sr = hr.copy()
    sr[:4, :, :] = 0      # inside the 4-pixel shave
    sr[16:, :, :] = 255   # cut by the crop to 16 rows (then shaved)
    sr[:, 20:, :] = 255   # cut by the crop to 20 columns
    assert S.psnr_ssim(sr, hr, ["psnr"])["psnr"] == math.inf
    sr[8, 8, :] = 101     # one pixel inside the scored 8x12 region
    mse = (219 / 255) ** 2 / (8 * 12)
    assert S.psnr_ssim(sr, hr, ["psnr"])["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-3)


def test_ssim_of_constant_images_by_hand():
    a, b = luma(100), luma(120)
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # no variance: only the luminance term remains
    assert S.psnr_ssim(gray(32, 32, 120), gray(32, 32, 100), ["ssim"])["ssim"] == pytest.approx(expected, rel=1e-7)
    assert S.psnr_ssim(gray(32, 32, 50), gray(32, 32, 50), ["ssim"])["ssim"] == pytest.approx(1.0)


def test_ssim_agrees_with_an_independent_implementation():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (48, 52, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    y_sr, y_hr = S.prepare_y(sr), S.prepare_y(hr)
    reference = structural_similarity(y_sr, y_hr, data_range=255, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert S.ssim_y(y_sr, y_hr) == pytest.approx(reference, abs=1e-10)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(EvaluationError, match="too small for SSIM"):
        S.psnr_ssim(gray(16, 16, 1), gray(16, 16, 1), ["ssim"])


def test_size_mismatch_is_an_error_for_psnr():
    with pytest.raises(EvaluationError, match="sizes differ"):
        S.psnr_ssim(gray(16, 16, 1), gray(20, 16, 1), ["psnr"])


def test_ground_truth_name_removes_every_x4():
    assert ground_truth_name("0901x4.png") == "0901.png"
    assert ground_truth_name("0901x4x4.png") == "0901.png"


# --- folders ---------------------------------------------------------------------------------

def make_pair(tmp_path, images: dict[str, tuple[np.ndarray, np.ndarray]]):
    sr_dir, hr_dir = tmp_path / "sr", tmp_path / "hr"
    for stem, (sr, hr) in images.items():
        write_rgb8(sr_dir / f"{stem}x4.png", sr)
        write_rgb8(hr_dir / f"{stem}.png", hr)
    return sr_dir, hr_dir


def test_mean_of_per_image_psnr_not_psnr_of_mean(tmp_path):
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (gray(24, 24, 110), gray(24, 24, 100)),
                                          "0002": (gray(24, 24, 101), gray(24, 24, 100))})
    result = evaluate(sr_dir, hr_dir, ["psnr", "ssim"])
    p1 = 20 * math.log10(255 / (2190 / 255))
    p2 = 20 * math.log10(255 / (219 / 255))
    assert result.mean["psnr"] == pytest.approx((p1 + p2) / 2, abs=2e-4)
    assert set(result.per_image) == {"0001", "0002"}
    assert result.status == "ok" and not result.findings


def test_missing_and_extra_outputs_are_named(tmp_path):
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (gray(16, 16, 1), gray(16, 16, 1)),
                                          "0002": (gray(16, 16, 1), gray(16, 16, 1))})
    (sr_dir / "0002x4.png").rename(sr_dir / "0003x4.png")
    with pytest.raises(PairingError) as caught:
        pair_outputs(sr_dir, hr_dir)
    assert caught.value.missing == ["0002.png"] and caught.value.extra == ["0003x4.png"]
    assert "0002.png" in caught.value.message


def test_sixteen_bit_and_rgba_outputs_are_read_as_8_bit_rgb(tmp_path):
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (hr, hr), "0002": (hr, hr)})
    bgr = hr[:, :, ::-1]
    cv2.imwrite(str(sr_dir / "0001x4.png"), bgr.astype(np.uint16) * 257)  # 16-bit, same 8-bit values
    cv2.imwrite(str(sr_dir / "0002x4.png"), np.dstack([bgr, np.full(hr.shape[:2], 9, np.uint8)]))  # RGBA
    result = evaluate(sr_dir, hr_dir, ["psnr"])
    assert result.per_image["0001"]["psnr"] == math.inf
    assert result.per_image["0002"]["psnr"] == math.inf
    kinds = {(f["image"], f["kind"]) for f in result.findings}
    assert kinds == {(s, k) for s in ("0001", "0002") for k in ("converted_input", "identical_output")}
    assert "16-bit" in result.findings[0]["message"]


def test_unreadable_output_faithful_counts_zero_strict_fails(tmp_path):
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (gray(16, 16, 110), gray(16, 16, 100)),
                                          "0002": (gray(16, 16, 110), gray(16, 16, 100))})
    (sr_dir / "0002x4.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    faithful = evaluate(sr_dir, hr_dir, ["psnr"], mode="faithful")
    p1 = 20 * math.log10(255 / (2190 / 255))
    assert faithful.per_image["0002"]["psnr"] is None
    assert faithful.mean["psnr"] == pytest.approx(p1 / 2, abs=2e-4)  # the organizers' 0
    assert [f["kind"] for f in faithful.findings] == ["unreadable_output"]
    strict = evaluate(sr_dir, hr_dir, ["psnr"], mode="strict")
    assert strict.status == "failed" and "0002" in strict.failed_images and strict.mean == {}


def test_unknown_metric_and_mode_are_refused(tmp_path):
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (gray(16, 16, 1), gray(16, 16, 1))})
    with pytest.raises(EvaluationError, match="unknown metric 'psrn'") as caught:
        evaluate(sr_dir, hr_dir, ["psrn"])
    assert caught.value.hint == "did you mean 'psnr'?"
    with pytest.raises(EvaluationError, match="unknown mode"):
        evaluate(sr_dir, hr_dir, ["psnr"], mode="lenient")


def test_learned_metrics_without_weights_are_unavailable_never_zero(tmp_path):
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (gray(16, 16, 1), gray(16, 16, 1))})
    result = evaluate(sr_dir, hr_dir, ["psnr", "lpips", "perceptual_score"], metric_cache=tmp_path / "empty")
    assert "lpips" not in result.mean and "perceptual_score" not in result.mean
    assert "LPIPS_v0.1_alex-df73285e.pth" in result.unavailable["lpips"]["reason"]
    assert result.unavailable["lpips"]["fetch"] == "harness fetch metric-weights lpips"
    assert "lpips" in result.unavailable["perceptual_score"]["reason"]
    assert "lpips" not in result.per_image["0001"] and result.status == "ok"


# --- NIQE through pyiqa, from the harness's cache ----------------------------------------------

def test_niqe_runs_offline_from_the_cache(tmp_path, niqe_cache, mini_data):
    hr_dir = mini_data / "mini" / "HR"
    result = evaluate(hr_dir, hr_dir, ["psnr", "niqe"], metric_cache=niqe_cache)
    assert result.mean["psnr"] == math.inf
    assert 2 < result.mean["niqe"] < 20 and not result.unavailable


def test_size_mismatch_faithful_resizes_strict_fails(tmp_path, niqe_cache, mini_data):
    from harness.imaging.pictures import read_rgb8

    hr = read_rgb8(mini_data / "mini" / "HR" / "0001.png")
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (hr[:300, :312], hr)})
    faithful = evaluate(sr_dir, hr_dir, ["psnr", "niqe"], metric_cache=niqe_cache)
    kinds = [f["kind"] for f in faithful.findings]
    assert "resized" in kinds and "metric_error" in kinds  # NIQE after a resize; PSNR cannot pair sizes
    assert faithful.per_image["0001"]["niqe"] is not None and faithful.per_image["0001"]["psnr"] is None
    strict = evaluate(sr_dir, hr_dir, ["psnr", "niqe"], metric_cache=niqe_cache, mode="strict")
    assert strict.status == "failed" and "0001" in strict.failed_images


def test_a_metric_that_raises_counts_zero_in_faithful_mode(tmp_path, niqe_cache):
    # NIQE needs at least 96 pixels per side: on 40x40 images pyiqa raises, a real metric failure.
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (small, small)})
    faithful = evaluate(sr_dir, hr_dir, ["niqe"], metric_cache=niqe_cache)
    assert faithful.mean["niqe"] == 0.0
    assert faithful.findings[0]["kind"] == "metric_error" and "counted as 0" in faithful.findings[0]["message"]
    strict = evaluate(sr_dir, hr_dir, ["niqe"], metric_cache=niqe_cache, mode="strict")
    assert strict.status == "failed"


def test_the_niqe_of_a_resized_output_is_pyiqas_after_the_organizers_repair(tmp_path, niqe_cache, mini_data):
    """Faithful mode gives NIQE the bilinearly resized output, as the organizers gave it to pyiqa."""
    import os
    import subprocess
    import sys

    from harness.imaging.pictures import read_rgb8

    hr = read_rgb8(mini_data / "mini" / "HR" / "0001.png")
    sr_dir, hr_dir = make_pair(tmp_path, {"0001": (hr[:300, :312], hr[:296, :320])})
    ours = evaluate(sr_dir, hr_dir, ["niqe"], metric_cache=niqe_cache).per_image["0001"]["niqe"]
    child = ("import pathlib, torch, pyiqa; from harness.score import formulas; "
             "from harness.imaging.pictures import read_rgb8; "
             f"image = read_rgb8(pathlib.Path('{sr_dir}/0001x4.png')); "
             "t = formulas.resize_bilinear(formulas.rgb_tensor(image), 296, 312); "
             "print(float(pyiqa.create_metric('niqe', device='cpu')(t)))")
    env = {**os.environ, **S.cache_env(niqe_cache), "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    theirs = float(subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True,
                                  check=True).stdout.split()[-1])
    assert abs(ours - theirs) <= 1e-9 * theirs


def test_workers_start_only_where_the_scoring_outweighs_their_start(tmp_path):
    """Planned in a child process, as in `harness evaluate`: one that has not imported torch."""
    import json
    import subprocess
    import sys

    from harness.imaging.pictures import encode_png

    def folder(count, height, width):
        path = tmp_path / f"{height}x{width}"
        path.mkdir()
        for index in range(count):
            (path / f"{index:04d}x4.png").write_bytes(encode_png(np.zeros((height, width, 3), np.uint8)))
        return str(path)

    child = """import json, sys
from pathlib import Path
from harness.score.evaluation import ImagePair
from harness.score.per_image import ImageJob, plan_workers
plans = {}
for key, (groups, folder) in json.loads(sys.argv[1]).items():
    pairs = [ImagePair(p.stem, p, p, None) for p in sorted(Path(folder).glob("*.png"))]
    job = ImageJob(tuple((backend, tuple(names)) for backend, names in groups), "faithful", ".", "cpu")
    plans[key] = plan_workers(job, pairs, 2)
print(json.dumps(plans))"""
    builtin = [["builtin-fr", ["psnr", "ssim"]], ["builtin-nr", ["niqe"]]]
    cases = {"small": (builtin, folder(4, 320, 320)),
             "large": (builtin, folder(4, 1356, 2040)),
             "one": (builtin, folder(1, 1356, 1356)),
             # minutes of ManIQA a pool would halve: still one process, with torch's threads (eval.py's bits)
             "learned": ([["builtin-fr", ["psnr"]], ["pyiqa", ["maniqa"]]], folder(2, 1356, 2000))}
    done = subprocess.run([sys.executable, "-c", child, json.dumps(cases)], capture_output=True, text=True, check=True)
    plans = json.loads(done.stdout)
    assert plans["small"][0] == 1 and "would save" in plans["small"][1]
    assert "4 images, 0.4 megapixels" in plans["small"][1]
    assert plans["large"][0] == 2 and "2 worker processes save about" in plans["large"][1]
    assert plans["one"] == [1, "one image: scored in this process"]
    assert plans["learned"][0] == 1 and plans["learned"][1].startswith(
        "learned metrics on a CPU: scored in this process with torch's ")
    assert "would change their last bits" in plans["learned"][1]
