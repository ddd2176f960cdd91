"""MATLAB-compatible bicubic resize (imresize with 'bicubic', antialiasing on).

The algorithm follows MATLAB's documented behaviour: a cubic kernel with a = -0.5 and width 4, the
kernel stretched by 1/scale when shrinking (antialiasing), sample positions
u = x/scale + 0.5*(1 - 1/scale) in 1-based coordinates, symmetric (mirror) padding at the borders,
weights normalised per output sample, each dimension resized separately in double precision
(the dimension with the smaller scale first), and uint8 results rounded half away from zero.
"""

from __future__ import annotations

import numpy as np

KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_matrix(in_length: int, out_length: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Dense (out_length, in_length) matrix W so that resizing a signal s is W @ s."""
    if antialias and scale < 1:
        width = KERNEL_WIDTH / scale

        def kernel(d):
            return scale * cubic(scale * d)
    else:
        width = KERNEL_WIDTH
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(np.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Mirror padding: positions 1..n, then n..1, repeated (MATLAB's 'symmetric' border).
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    source = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), taps)
    np.add.at(matrix, (rows, source.ravel()), weights.ravel())
    return matrix


def imresize(image: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC image by `scale`, as MATLAB's imresize(image, scale, 'bicubic').

    uint8 input gives uint8 output (rounded, saturated); float input gives float64 output.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    is_uint8 = image.dtype == np.uint8
    data = image.astype(np.float64)
    squeeze = data.ndim == 2
    if squeeze:
        data = data[:, :, None]
    height, width = data.shape[:2]
    out_h, out_w = int(np.ceil(height * scale)), int(np.ceil(width * scale))
    rows = resize_matrix(height, out_h, scale, antialias)
    cols = resize_matrix(width, out_w, scale, antialias)
    # Both scales are equal here, so MATLAB's order is height first; keep double in between.
    data = np.einsum("oh,hwc->owc", rows, data, optimize=True)
    data = np.einsum("pw,owc->opc", cols, data, optimize=True)
    if squeeze:
        data = data[:, :, 0]
    if is_uint8:
        return np.floor(np.clip(data, 0, 255) + 0.5).astype(np.uint8)
    return data
