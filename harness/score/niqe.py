"""NIQE as the organizers score it: pyiqa 0.1.13's `niqe` with its defaults (the Y of YIQ rounded to whole
levels, no crop, 96-pixel blocks at two scales, MATLAB's pristine model), here in numpy, without torch.

Each step keeps the arithmetic pyiqa uses on a CPU, because NIQE amplifies the last bit: its shape
parameter is the nearest point of a 0.001-step grid, so a feature one ulp away can move a block's value
by 1e-5. Where pyiqa computes in float32 (the Y conversion, the kernel's weights, the half-size bicubic
resize and the grid itself) this module does too, in the order torch's AVX2 kernels sum; elsewhere
float64. The values equal pyiqa's on the same CPU to about 1e-13 relative (tests/unit/score/test_niqe.py).

On other CPUs pyiqa itself varies: where torch fuses the Y conversion's multiply-adds, 0.01 % of RGB
triples round to the other whole level, and the mean NIQE of the mini suite's bicubic team moves from
9.914791 to 9.914986 (2e-5 relative; NIQE's tolerance is 1 %). This module's arithmetic is fixed, so its
value is the same on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import EvaluationError

# How far pyiqa's own NIQE of one image may fall from this module's on a CPU whose arithmetic paths differ
# (relative): the largest gap measured over this machine's paths (benchmarks/niqe_paths.py, docs/scoring.md,
# "NIQE and the machine it runs on"), with a margin.
PYIQA_AGREEMENT_REL = 2e-3
BLOCK = 96
GRID_START, GRID_STEP, GRID_SIZE = 0.2, 0.001, 9801  # pyiqa's torch.arange(0.2, 10.001, 0.001)
FLOAT32_LANES = 8  # of torch's AVX2 kernels: they fix the order of its float32 sums and of arange's values
YIQ_Y = np.array([0.299, 0.587, 0.114], dtype=np.float32)
RESIZE_TAPS = 10  # bicubic (4) widened by the factor 2 of antialiasing, plus a margin of 2


@dataclass(frozen=True)
class PristineModel:
    """The multivariate Gaussian of pristine images' features (MATLAB's niqe_modelparameters.mat)."""

    mean: np.ndarray  # (36,)
    covariance: np.ndarray  # (36, 36)

    @classmethod
    def load(cls, path: Path) -> PristineModel:
        import scipy.io

        try:
            params = scipy.io.loadmat(str(path))
            return cls(np.ravel(params["mu_prisparam"]).astype(np.float64),
                       np.asarray(params["cov_prisparam"], dtype=np.float64))
        except (OSError, ValueError, KeyError, scipy.io.matlab.MatReadError) as exc:
            raise EvaluationError(f"{path} is not NIQE's parameter file: {exc}") from None


def score(rgb: np.ndarray, model: PristineModel) -> float:
    """NIQE of an HxWx3 image: uint8, or float32 in [0, 1] (what pyiqa is given); lower is better."""
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / np.float32(255.0)
    if rgb.shape[0] < BLOCK or rgb.shape[1] < BLOCK:
        raise EvaluationError(f"NIQE needs at least {BLOCK}x{BLOCK} pixels; the image is {rgb.shape[1]}x{rgb.shape[0]}")
    luma = (rgb[..., 0] * YIQ_Y[0] + rgb[..., 1] * YIQ_Y[1]) + rgb[..., 2] * YIQ_Y[2]  # no fused multiply-add
    image = np.round(luma * np.float32(255)).astype(np.float64)
    height, width = image.shape
    image = image[: height // BLOCK * BLOCK, : width // BLOCK * BLOCK]
    sharp = _block_features(_normalized(image), BLOCK)
    half = _half_size(image / 255.0).astype(np.float64) * 255.0
    features = np.concatenate([sharp, _block_features(_normalized(half), BLOCK // 2)], axis=1)
    return _distance(features, model)


def _distance(features: np.ndarray, model: PristineModel) -> float:
    """The Mahalanobis-like distance between the image's features and the pristine model (NaN-free rows
    for the covariance, NaN-free values for each mean, as MATLAB's nanmean/nancov)."""
    missing = np.isnan(features)
    mean = np.where(missing, 0.0, features).sum(axis=0) / (~missing).sum(axis=0)
    rows = features[~missing.any(axis=1)]
    covariance = np.cov(rows, rowvar=False, ddof=1 if len(rows) > 1 else 0)  # one block: torch's correction 0
    inverse = np.linalg.pinv((model.covariance + covariance) / 2)
    diff = model.mean - mean
    return float(np.sqrt(diff @ inverse @ diff))


# --- local normalisation: a 7x7 Gaussian (sigma 7/6), its weights rounded to float32 as pyiqa's are -------

def _gaussian_window() -> np.ndarray:
    offsets = np.arange(-3, 4, dtype=np.float64)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * (7.0 / 6.0) ** 2))
    window[window < np.finfo(np.float64).eps * window.max()] = 0
    window /= window.sum()
    return window.astype(np.float32).astype(np.float64)


GAUSSIAN = _gaussian_window()


def _normalized(image: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    mean = ndimage.correlate(image, GAUSSIAN, mode="nearest")  # replicate padding
    power = ndimage.correlate(image * image, GAUSSIAN, mode="nearest")
    return (image - mean) / (np.sqrt(np.abs(power - mean * mean)) + 1)


# --- the AGGD fit: the grid of shape parameters, exactly as torch's float32 arange lays it out -----------

def _shape_grid() -> np.ndarray:
    index = np.arange(GRID_SIZE)
    # vector lanes: each vector starts at a float32 base and adds its offsets in float64
    first = (index // FLOAT32_LANES) * FLOAT32_LANES
    base = (GRID_START + GRID_STEP * first).astype(np.float32).astype(np.float64)
    grid = (base + (index - first) * GRID_STEP).astype(np.float32)
    scalar = index >= GRID_SIZE // (2 * FLOAT32_LANES) * 2 * FLOAT32_LANES  # the tail, one value at a time
    grid[scalar] = (GRID_START + GRID_STEP * index[scalar]).astype(np.float32)
    return grid.astype(np.float64)


def _ratio(shape: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return np.exp(2 * gammaln(2.0 / shape) - (gammaln(1.0 / shape) + gammaln(3.0 / shape)))


SHAPES = _shape_grid()
RATIOS = _ratio(SHAPES)
assert np.all(np.diff(RATIOS) > 0)  # increasing: the nearest grid point is one of two neighbours


def _nearest_shape(target: np.ndarray) -> np.ndarray:
    """SHAPES[argmin |RATIOS - target|] (the first on a tie), by bisection instead of a scan of the grid."""
    right = np.clip(np.searchsorted(RATIOS, target), 1, len(RATIOS) - 1)
    left = right - 1
    with np.errstate(invalid="ignore"):
        pick = np.where(np.abs(RATIOS[right] - target) < np.abs(RATIOS[left] - target), right, left)
    shapes = SHAPES[pick]
    shapes[~np.isfinite(target)] = SHAPES[0]  # every distance NaN or infinite: torch's argmin is the first
    return shapes


def _aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shape and left/right scales of an asymmetric generalised Gaussian, per row of `samples`."""
    from scipy.special import gammaln

    left, right = samples < 0, samples > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        left_std = np.sqrt(np.square(samples * left).sum(axis=1) / left.sum(axis=1).astype(np.float32))
        right_std = np.sqrt(np.square(samples * right).sum(axis=1) / right.sum(axis=1).astype(np.float32))
        gamma = left_std / right_std
        r_hat = np.abs(samples).mean(axis=1) ** 2 / np.square(samples).mean(axis=1)
        normalized = (r_hat * (gamma ** 3 + 1) * (gamma + 1)) / (gamma ** 2 + 1) ** 2
    shape = _nearest_shape(normalized)
    spread = np.sqrt(np.exp(gammaln(1 / shape) - gammaln(3 / shape)))
    return shape, left_std * spread, right_std * spread


NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical, the two diagonals (circular in a block)


def _block_features(image: np.ndarray, size: int) -> np.ndarray:
    """18 features per block (blocks in column-major order, as pyiqa's blockproc lists them)."""
    from scipy.special import gammaln

    rows, cols = image.shape[0] // size, image.shape[1] // size
    tiles = image[: rows * size, : cols * size].reshape(rows, size, cols, size).transpose(2, 0, 1, 3)
    blocks = tiles.reshape(rows * cols, size, size)
    shape, left, right = _aggd(blocks.reshape(len(blocks), -1))
    features = [shape, (left + right) / 2]
    for shift in NEIGHBOURS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        shape, left, right = _aggd(products.reshape(len(blocks), -1))
        with np.errstate(invalid="ignore"):
            mean = (right - left) * np.exp(gammaln(2 / shape) - gammaln(1 / shape))
        features.extend((shape, mean, left, right))
    return np.stack(features, axis=1)


# --- MATLAB's imresize(image, 0.5) with antialiasing, in float32 as pyiqa computes it --------------------

def _torch_sum(terms: np.ndarray) -> np.ndarray:
    """Sum over the first axis in the order torch's float32 outer reduction uses: one row after another
    for the columns in whole runs of 4 vectors, four interleaved partial sums for the columns after."""
    total = terms[0].copy()
    for row in terms[1:]:
        total += row
    columns = terms.shape[1]
    cut = columns // (4 * FLOAT32_LANES) * 4 * FLOAT32_LANES
    if cut < columns:
        rest = terms[:, cut:]
        groups = len(rest) // 4
        partial = [rest[k].copy() for k in range(4)]
        for group in range(1, groups):
            for k in range(4):
                partial[k] += rest[4 * group + k]
        for row in rest[4 * groups:]:
            partial[0] += row
        total[cut:] = ((partial[0] + partial[1]) + partial[2]) + partial[3]
    return total


def _cubic(distance: np.ndarray) -> np.ndarray:
    """Keys' cubic (a = -0.5) in float32, each operation rounded as torch rounds it."""
    d = np.abs(distance)
    d2 = d * d
    d3 = d * d2
    near = (np.float32(1.5) * d3 - np.float32(2.5) * d2 + np.float32(1)) * (d <= 1).astype(np.float32)
    far = ((np.float32(-0.5) * d3) - (np.float32(-2.5) * d2) + (np.float32(-4.0) * d) - np.float32(-2.0))
    return near + far * ((d > 1) & (d <= 2)).astype(np.float32)


def _half_size_axis(image: np.ndarray, axis: int) -> np.ndarray:
    """Half the rows (axis 0) or the columns (axis 1); the sum over the taps runs over the output in
    row-major order, as torch lays it out, since its order depends on the position."""
    length = image.shape[axis]
    size = math.ceil(length * 0.5)
    position = (np.arange(size, dtype=np.float32) + np.float32(0.5)) / np.float32(0.5) - np.float32(0.5)
    first = np.floor(position) - RESIZE_TAPS // 2 + 1
    offset = position - first
    weights = _cubic(np.stack([offset - np.float32(tap) for tap in range(RESIZE_TAPS)]) * np.float32(0.5))
    weights = weights / _torch_sum(weights)[None, :]
    first = first.astype(np.int64)
    before = int(-first.min()) if first.min() < 0 else 0
    after = max(0, int(first.max()) + RESIZE_TAPS - length)
    first = first + before
    if axis == 0:  # MATLAB's symmetric padding: the edge sample is repeated
        padded = np.concatenate([image[:before][::-1], image, image[length - after:][::-1]], axis=0)
        terms = np.stack([padded[first + tap] * weights[tap][:, None] for tap in range(RESIZE_TAPS)])
    else:
        padded = np.concatenate([image[:, :before][:, ::-1], image, image[:, length - after:][:, ::-1]], axis=1)
        terms = np.stack([padded[:, first + tap] * weights[tap][None, :] for tap in range(RESIZE_TAPS)])
    return _torch_sum(terms.reshape(RESIZE_TAPS, -1)).reshape(terms.shape[1:])


def _half_size(image: np.ndarray) -> np.ndarray:
    """Rows first, then columns, as pyiqa's imresize; float32 throughout."""
    return _half_size_axis(_half_size_axis(image.astype(np.float32), 0), 1)
