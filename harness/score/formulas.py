"""How the metrics are computed: PSNR and SSIM here, vectorised, exactly as the organizers did (see
README, "Scoring"); NIQE in harness.score.niqe, as pyiqa computes it; the learned metrics through pyiqa with
its default settings, loading weights only from the harness's metric-weights cache with every hub in
offline mode.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from harness.catalogue.metrics import FETCH_COMMAND, METRICS
from harness.core.errors import EvaluationError, MetricUnavailable
from harness.core.registries import load

# --- PSNR / SSIM on the Y channel, the organizers' way -------------------------------------------

CROP_MULTIPLE = 4
SHAVE = 4


Y_COEFFICIENTS = np.array([65.481, 128.553, 24.966], dtype=np.float32)


def y_channel(rgb8: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 16..235 scale, float32, not rounded. Three products and two sums in a fixed order,
    each rounded once: a matrix product (the organizers' np.dot) goes through BLAS, whose kernels differ by
    CPU in the last bit; this is within an ulp of it and the same on every CPU."""
    rgb = rgb8.astype(np.float32) / np.float32(255.0)
    r, g, b = (rgb[..., c] * Y_COEFFICIENTS[c] for c in range(3))
    return (r + g) + b + np.float32(16.0)


def prepare_y(rgb8: np.ndarray) -> np.ndarray:
    h, w = rgb8.shape[:2]
    cropped = rgb8[: h - h % CROP_MULTIPLE, : w - w % CROP_MULTIPLE]
    shaved = cropped[SHAVE:-SHAVE, SHAVE:-SHAVE]
    return y_channel(shaved).astype(np.float64)


def psnr_y(y1: np.ndarray, y2: np.ndarray) -> float:
    mse = float(np.mean((y1 - y2) ** 2))
    if mse == 0:
        return math.inf
    return 20 * math.log10(255.0 / math.sqrt(mse))


SSIM_WINDOW = 11


def _gaussian_1d(size: int = SSIM_WINDOW, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(image: np.ndarray, g: np.ndarray) -> np.ndarray:
    """2-D correlation with the separable kernel g⊗g (double precision), keeping the 'valid' part."""
    import cv2

    pad = g.size // 2
    return cv2.sepFilter2D(image, cv2.CV_64F, g, g)[pad:-pad, pad:-pad]


def ssim_y(y1: np.ndarray, y2: np.ndarray) -> float:
    if min(y1.shape) < SSIM_WINDOW:
        raise EvaluationError(f"image too small for SSIM: {y1.shape[1]}x{y1.shape[0]} after the crop and shave, "
                              f"the window needs {SSIM_WINDOW}x{SSIM_WINDOW}")
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    g = _gaussian_1d()
    mu1 = _filter_valid(y1, g)
    mu2 = _filter_valid(y2, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(y1 * y1, g) - mu1_sq
    s2 = _filter_valid(y2 * y2, g) - mu2_sq
    s12 = _filter_valid(y1 * y2, g) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def psnr_rgb(sr: np.ndarray, hr: np.ndarray) -> float:
    """The Efficient SR challenges' PSNR: the ground truth cropped to a multiple of 4 (its top-left kept),
    then both images without a 4-pixel border, on RGB in float64 over all three channels."""
    h, w = hr.shape[:2]
    hr = hr[: h - h % CROP_MULTIPLE, : w - w % CROP_MULTIPLE]
    if sr.shape != hr.shape:
        raise EvaluationError(f"sizes differ: output {sr.shape[1]}x{sr.shape[0]}, ground truth cropped to a multiple "
                              f"of {CROP_MULTIPLE} {hr.shape[1]}x{hr.shape[0]}")
    inner = (slice(SHAVE, -SHAVE), slice(SHAVE, -SHAVE))
    difference = sr[inner].astype(np.float64) - hr[inner].astype(np.float64)
    if difference.size == 0:
        raise EvaluationError(f"image too small: {sr.shape[1]}x{sr.shape[0]} leaves no pixel after the "
                              f"{SHAVE}-pixel border")
    mse = float(np.mean(difference * difference))
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def psnr_ssim(sr: np.ndarray, hr: np.ndarray, wanted: list[str]) -> dict[str, float]:
    if wanted == ["psnr_rgb"]:
        return {"psnr_rgb": psnr_rgb(sr, hr)}
    y_sr, y_hr = prepare_y(sr), prepare_y(hr)
    if y_sr.shape != y_hr.shape:
        raise EvaluationError(
            f"sizes differ after the crop to a multiple of 4: output {sr.shape[1]}x{sr.shape[0]}, "
            f"ground truth {hr.shape[1]}x{hr.shape[0]}")
    if y_sr.size == 0:
        raise EvaluationError(f"image too small: {sr.shape[1]}x{sr.shape[0]} leaves no pixel after the crop to a "
                              f"multiple of {CROP_MULTIPLE} and the {SHAVE}-pixel shave")
    out = {}
    if "psnr" in wanted:
        out["psnr"] = psnr_y(y_sr, y_hr)
    if "ssim" in wanted:
        out["ssim"] = ssim_y(y_sr, y_hr)
    if "psnr_rgb" in wanted:
        out["psnr_rgb"] = psnr_rgb(sr, hr)
    return out


# --- pyiqa metrics, from a cache the harness controls --------------------------------------------

# metric -> "module:function" computing pyiqa's value from its network, bit for bit, in less memory or time
LEAN = {"dists": "harness.score.dists_lean:score", "maniqa": "harness.score.maniqa_lean:score"}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def cache_env(cache_dir: Path) -> dict[str, str]:
    cache_dir = Path(cache_dir).resolve()
    return {"TORCH_HOME": str(cache_dir / "torch"), "HF_HOME": str(cache_dir / "huggingface"),
            **OFFLINE_ENV}


def weights_unavailable(name: str, cache_dir: Path) -> str | None:
    """Why a metric's weight files cannot be used from the cache (absent, or changed since pinned), or None."""
    missing = missing_weight_files(name, cache_dir)
    if missing:
        return f"weights absent from {shown_path(cache_dir)}: {', '.join(missing)}"
    from harness.fetch import metric_pins

    try:
        metric_pins.check_digests(name, cache_dir)
    except MetricUnavailable as exc:
        return exc.message
    return changed_weight_files(name, cache_dir)


def shown_path(path: Path) -> str:
    """A path as a record keeps it: relative to the working folder (the checkout, for the pipeline's stages)
    when inside it, so that an evaluation is the same bytes wherever the checkout lies; else absolute."""
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(resolved)


def missing_weight_files(name: str, cache_dir: Path) -> list[str]:
    return [w.path for w in METRICS[name].weight_files if not (Path(cache_dir) / w.path).exists()]


def changed_weight_files(name: str, cache_dir: Path) -> str | None:
    """A weight file whose bytes differ from its pin in the cache's checksums.json (checked at every
    evaluation, not only when fetched): the metric is then unavailable, saying which file and both digests."""
    import json

    from harness.core.files import sha256_file

    listing = Path(cache_dir) / "checksums.json"
    try:
        pinned = json.loads(listing.read_text()) if listing.exists() else {}
    except (ValueError, UnicodeDecodeError):
        return f"{shown_path(listing)} is not a pin file (not JSON): delete it and run `{FETCH_COMMAND} {name}`"
    for weight in METRICS[name].weight_files:
        path = Path(cache_dir) / weight.path
        if path.is_file() and weight.path in pinned:
            digest = sha256_file(path)
            if digest != pinned[weight.path]:
                return (f"{weight.path} changed since it was pinned: sha256 {digest}, pinned {pinned[weight.path]}; "
                        f"delete it and run `{FETCH_COMMAND} {name}`")
    return None


class PyiqaMetrics:
    """Creates pyiqa metrics on demand, each from the cache only; remembers what is unavailable."""

    def __init__(self, cache_dir: Path, device: str = "cpu"):
        self.cache_dir = Path(cache_dir).resolve()
        self.device = device
        self._metrics: dict[str, object] = {}
        self._configured = False

    def _configure(self) -> None:
        if self._configured:
            return
        env = cache_env(self.cache_dir)
        if "pyiqa" in sys.modules and os.environ.get("TORCH_HOME") != env["TORCH_HOME"]:
            raise EvaluationError(
                "pyiqa was imported before the metric cache was configured",
                hint="evaluate in a fresh process, or set TORCH_HOME to the cache before importing pyiqa")
        os.environ.update(env)
        self._configured = True

    def get(self, name: str):
        if name in self._metrics:
            return self._metrics[name]
        reason = weights_unavailable(name, self.cache_dir)
        if reason:
            raise MetricUnavailable(name, f"{name}: {reason}", hint=f"run `{FETCH_COMMAND} {name}`")
        from harness.fetch import metric_pins, stand_ins

        self._configure()  # first: the key check may import pyiqa, which reads TORCH_HOME once
        metric_pins.check(name, self.cache_dir)  # bytes and tensors, before pyiqa loads a file
        import pyiqa  # imported late: pyiqa reads TORCH_HOME once, at import

        stand_ins.allow_stand_in_clip(self.cache_dir)  # a marked cache only
        try:
            metric = pyiqa.create_metric(name, device=self.device, as_loss=False)
        except Exception as exc:  # a corrupt or foreign weight file, most often
            files = ", ".join(w.path for w in METRICS[name].weight_files)
            if "state_dict" in str(exc):  # a strict loader met other keys: the file is not the network's
                from harness.fetch.metric_keys import WrongWeightFile

                said = str(exc) if len(str(exc)) <= 600 else f"{str(exc)[:600]} …"  # every key: thousands
                raise WrongWeightFile(name, files, f"pyiqa could not load it: {said}",
                                      hint=f"delete it and run `{FETCH_COMMAND} {name}`") from exc
            raise MetricUnavailable(name, f"{name}: pyiqa could not create the metric from {files}: {exc}",
                                    hint=f"re-fetch with `{FETCH_COMMAND} {name}`") from exc
        self._metrics[name] = metric
        return metric

    def score(self, name: str, sr, hr) -> float:
        """`sr` and `hr` are 1x3xHxW float tensors in [0, 1]; `hr` is ignored by NR metrics."""
        import torch

        metric = self.get(name)
        with torch.no_grad():
            if name in LEAN:  # pyiqa's value, in less memory or time
                reference = hr.to(self.device) if METRICS[name].reference == "FR" else None
                value = load(LEAN[name])(metric.net, sr.to(self.device), reference)
            elif METRICS[name].reference == "FR":
                value = metric(sr.to(self.device), hr.to(self.device))
            else:
                value = metric(sr.to(self.device))
        return float(value.item())


def rgb_tensor(rgb8: np.ndarray):
    """HxWx3 uint8 -> 1x3xHxW float32 tensor in [0, 1], as pyiqa expects."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb8)).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def resize_bilinear(tensor, height: int, width: int):
    """The organizers' repair for a size mismatch: bilinear resize to the smaller size."""
    import torch.nn.functional as F

    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
