"""Speed and memory of the scoring and resizing kernels, as ratios against reference runs in this process.

References: SSIM as a direct 2-D Gaussian filter (the organizers' formulation), PSNR/SSIM pipelines on a
DIV2K-sized image pair, and MATLAB bicubic as a per-output-row contribution loop. Ratios > 1 mean the
harness is faster or lighter. No thresholds: the numbers are for people to read.
"""

from __future__ import annotations

import time
import tracemalloc

import cv2
import numpy as np

from harness.imaging.matlab_resize import KERNEL_WIDTH, cubic, imresize
from harness.score import formulas as S

DIV2K_SIZE = (2040, 1356)  # a typical DIV2K HR image (height, width)


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def peak_memory(fn):
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def reference_ssim(y1, y2):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(k, k.transpose())

    def f(img):
        return cv2.filter2D(img, -1, window)[5:-5, 5:-5]

    mu1, mu2 = f(y1), f(y2)
    s1, s2, s12 = f(y1 ** 2) - mu1 ** 2, f(y2 ** 2) - mu2 ** 2, f(y1 * y2) - mu1 * mu2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))).mean())


def reference_imresize(image, scale):
    """MATLAB's algorithm written plainly: one output row/column at a time."""
    def resize_axis(data, axis):
        n_in = data.shape[axis]
        n_out = int(np.ceil(n_in * scale))
        width = KERNEL_WIDTH / scale if scale < 1 else KERNEL_WIDTH
        data = np.moveaxis(data, axis, 0)
        out = np.empty((n_out,) + data.shape[1:])
        for x in range(1, n_out + 1):
            u = x / scale + 0.5 * (1 - 1 / scale)
            left = int(np.floor(u - width / 2))
            idx = np.arange(left, left + int(np.ceil(width)) + 2)
            w = scale * cubic(scale * (u - idx)) if scale < 1 else cubic(u - idx)
            w = w / w.sum()
            src = np.where(idx < 1, 1 - idx, np.where(idx > n_in, 2 * n_in + 1 - idx, idx))
            out[x - 1] = np.tensordot(w, data[src - 1], axes=1)
        return np.moveaxis(out, 0, axis)

    data = image.astype(np.float64)
    return np.floor(np.clip(resize_axis(resize_axis(data, 0), 1), 0, 255) + 0.5).astype(np.uint8)


def main():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, DIV2K_SIZE + (3,), dtype=np.uint8)
    sr = np.clip(hr.astype(np.int16) + rng.integers(-8, 9, hr.shape), 0, 255).astype(np.uint8)
    y_sr, y_hr = S.prepare_y(sr), S.prepare_y(hr)

    rows = []
    ours, value = timed(lambda: S.ssim_y(y_sr, y_hr))
    ref, ref_value = timed(lambda: reference_ssim(y_sr, y_hr))
    assert abs(value - ref_value) < 1e-12
    rows.append(("SSIM on Y, 2040x1356", ref, ours, peak_memory(lambda: reference_ssim(y_sr, y_hr)),
                 peak_memory(lambda: S.ssim_y(y_sr, y_hr))))

    ours, _ = timed(lambda: S.psnr_ssim(sr, hr, ["psnr", "ssim"]))
    ref, _ = timed(lambda: (S.psnr_y(y_sr, y_hr), reference_ssim(S.prepare_y(sr), S.prepare_y(hr))))
    rows.append(("PSNR+SSIM per image pair", ref, ours, None, None))

    small = hr[:512, :512]
    ours, fast = timed(lambda: imresize(small, 0.25))
    ref, slow = timed(lambda: reference_imresize(small, 0.25), repeat=1)
    assert np.array_equal(fast, slow)
    rows.append(("bicubic 1/4, 512x512", ref, ours, peak_memory(lambda: reference_imresize(small, 0.25)),
                 peak_memory(lambda: imresize(small, 0.25))))
    ours, _ = timed(lambda: imresize(hr, 0.25), repeat=1)
    rows.append(("bicubic 1/4, 2040x1356 (harness only)", None, ours, None, None))

    print(f"{'kernel':40} {'reference s':>12} {'harness s':>10} {'speed ratio':>12} {'memory ratio':>13}")
    for name, ref_t, our_t, ref_m, our_m in rows:
        speed = f"{ref_t / our_t:.2f}x" if ref_t else "—"
        memory = f"{ref_m / our_m:.2f}x" if ref_m and our_m else "—"
        print(f"{name:40} {ref_t or float('nan'):12.4f} {our_t:10.4f} {speed:>12} {memory:>13}")


if __name__ == "__main__":
    main()
