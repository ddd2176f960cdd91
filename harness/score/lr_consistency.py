"""LR consistency: does an output belong to its input?

An output downscaled ×4 with the harness's MATLAB-compatible bicubic should give back its LR input.
How well it does (PSNR on Y) varies too much between images and methods for a threshold to decide
anything, so each output is compared with alternatives instead: its channels in another order, its
pixels shifted by up to two pixels, and every other input of the same size. An image is flagged when
an alternative fits its LR clearly better (by MARGIN_DB) than the output as it is.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.imaging.matlab_resize import resize_matrix
from harness.score.formulas import y_channel

SCALE = 4
MARGIN_DB = 1.0  # an alternative must beat the output as it is by this much to be a finding
MAX_SHIFT = 2  # HR pixels, in each direction
BORDER = 2  # LR pixels left out of every comparison (the shifted kernels wrap there)
SIGNATURE_SIDE = 64  # longest side of the thumbnails compared across images

CHANNEL_ORDERS = {order: "".join("RGB"[c] for c in order) for order in itertools.permutations(range(3))}


@lru_cache(maxsize=8)
def _matrices(length: int, shift: int):
    """The sparse ×1/4 bicubic matrix for one axis, sampling the input `shift` pixels further on."""
    from scipy import sparse

    dense = resize_matrix(length, math.ceil(length / SCALE), 1 / SCALE)
    return sparse.csr_matrix(np.roll(dense, shift, axis=1) if shift else dense)


def _down(channel: np.ndarray, dy: int = 0, dx: int = 0) -> np.ndarray:
    rows, cols = _matrices(channel.shape[0], dy), _matrices(channel.shape[1], dx)
    return (cols @ (rows @ channel).T).T


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    inner = (slice(BORDER, -BORDER or None),) * 2
    mse = float(np.mean((a[inner] - b[inner]) ** 2))
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def _signature(y: np.ndarray) -> np.ndarray:
    """Block means small enough to compare every output with every input of its size."""
    block = max(1, math.ceil(max(y.shape) / SIGNATURE_SIDE))
    h, w = (y.shape[0] // block) * block, (y.shape[1] // block) * block
    return y[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3)).astype(np.float32)


@dataclass
class Consistency:
    """One output against its LR: the fit as it is, and the best alternative."""

    psnr_y: float | None  # None when the sizes do not allow a ×4 comparison
    best: str | None = None  # the alternative that fits better by MARGIN_DB or more
    best_psnr_y: float | None = None
    problem: str | None = None  # a sentence, when the output does not fit its input
    signature: np.ndarray | None = None  # of the output's downscale, for the cross-image check

    def as_dict(self) -> dict:
        return {"psnr_y": _finite(self.psnr_y), "best_alternative": self.best,
                "best_alternative_psnr_y": _finite(self.best_psnr_y)}


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 4) if math.isfinite(value) else 99.0  # identical: PSNR is capped like a perfect fit


def check(output: np.ndarray, lr: np.ndarray) -> Consistency:
    """Compare one HxWx3 uint8 output with its HxWx3 uint8 LR input."""
    expected = (lr.shape[0] * SCALE, lr.shape[1] * SCALE)
    if output.shape[:2] != expected:
        ratio = output.shape[0] / lr.shape[0], output.shape[1] / lr.shape[1]
        return Consistency(None, problem=f"output is {output.shape[1]}x{output.shape[0]}, "
                           f"{ratio[1]:.3g}x{ratio[0]:.3g} its input, not x{SCALE}")
    rgb = output.astype(np.float64)
    down = np.stack([_down(rgb[:, :, c]) for c in range(3)], axis=-1)
    lr_y = y_channel(lr).astype(np.float64)
    own = _psnr(_y_of(down), lr_y)
    alternatives: dict[str, float] = {}
    for order, name in CHANNEL_ORDERS.items():
        if order != (0, 1, 2):
            alternatives[f"channels {name}"] = _psnr(_y_of(down[:, :, list(order)]), lr_y)
    y = _y_of(rgb)
    for dy, dx in itertools.product(range(-MAX_SHIFT, MAX_SHIFT + 1), repeat=2):
        if dy or dx:
            alternatives[f"shifted by dx={dx:+d}, dy={dy:+d}"] = _psnr(_down(y, dy, dx), lr_y)
    result = Consistency(own, signature=_signature(_y_of(down)))
    name, value = max(alternatives.items(), key=lambda item: item[1])
    if value >= own + MARGIN_DB:
        result.best, result.best_psnr_y = name, value
        result.problem = (f"its x{SCALE} downscale fits the LR input at {own:.2f} dB (Y), but {value:.2f} dB with "
                          + (f"its channels read as {name.split()[1]} (channels swapped?)"
                             if name.startswith("channels") else f"its content moved back (it is {name}?)"))
    return result


def _y_of(rgb: np.ndarray) -> np.ndarray:
    """Y (BT.601, 16..235) of a float RGB image on the 0..255 scale; linear, so it commutes with resizing."""
    coeffs = np.array([65.481, 128.553, 24.966]) / 255.0  # elementwise, not BLAS: the same on every CPU
    return (rgb[..., 0] * coeffs[0] + rgb[..., 1] * coeffs[1]) + rgb[..., 2] * coeffs[2] + 16.0


def lr_signature(lr: np.ndarray) -> np.ndarray:
    return _signature(y_channel(lr).astype(np.float64))


def cross_check(outputs: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> dict[str, str]:
    """Per image stem, a sentence when its output fits another input of the same size clearly better than
    its own (outputs and inputs: signature per stem)."""
    problems = {}
    for stem, signature in outputs.items():
        own = inputs.get(stem)
        if own is None or own.shape != signature.shape:
            continue
        own_fit = _signature_psnr(signature, own)
        others = {other: _signature_psnr(signature, lr) for other, lr in inputs.items()
                  if other != stem and lr.shape == signature.shape}
        if not others:
            continue
        other, fit = max(others.items(), key=lambda item: item[1])
        if fit >= own_fit + MARGIN_DB:
            problems[stem] = (f"its output fits input {other} ({fit:.2f} dB on thumbnails) better than its own "
                              f"({own_fit:.2f} dB): it does not belong to its input")
    return problems


def _signature_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))
