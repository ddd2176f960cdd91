"""The scoring path on one NVIDIA GPU, from a fresh clone in under ten minutes (`make gpu-check`): stand-in
metric weights built, four 2K pairs scored by `harness evaluate --device cuda` and by pyiqa called the way the
organizers' eval.py calls it on the same GPU, per-image values compared (the learned metrics must be identical),
and each side's wall time printed. Without a GPU it says so and exits 1.

    python benchmarks/gpu_check.py [--images 4] [--cache .cache/stand-in-metric-weights]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEARNED = ["lpips", "dists", "musiq", "maniqa", "clipiqa"]


def gpu_or_exit() -> str:
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device is visible to torch here (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}): nothing checked", file=sys.stderr)
        raise SystemExit(1)
    return torch.cuda.get_device_name(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "stand-in-metric-weights")
    args = parser.parse_args()
    name = gpu_or_exit()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_evaluation import make_images

    from harness.core.errors import HarnessError
    from harness.fetch import stand_in_files, stand_ins

    if not stand_ins.is_stand_in(args.cache) or not stand_ins.marked_digests(args.cache):
        try:
            stand_in_files.build(args.cache, Path(tempfile.gettempdir()) / "harness-gpu-check-downloads")
        except HarnessError as exc:  # a GPU machine without a network: NIQE's parameters come from PyPI
            print(f"gpu-check: {exc.message}; the learned metrics only", file=sys.stderr)
            stand_in_files.build(args.cache, Path(tempfile.gettempdir()), niqe=False)
    metrics = LEARNED if not (args.cache / "torch/hub/pyiqa/niqe_modelparameters.mat").is_file() \
        else ["niqe", *LEARNED, "perceptual_score"]
    env = {**os.environ, "HARNESS_METRIC_WEIGHTS": str(args.cache.resolve())}
    with tempfile.TemporaryDirectory() as scratch:
        sr_dir, hr_dir = make_images(Path(scratch), args.images)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.cli", "evaluate", "--sr", str(sr_dir), "--hr", str(hr_dir),
                        "--metrics", ",".join(metrics), "--device", "cuda",
                        "--json", f"{scratch}/ours.json"], env=env, check=True)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "integration" / "organizers_way.py"),
                               str(args.cache.resolve()), str(sr_dir), str(hr_dir), ",".join(LEARNED), "cuda"],
                              env=env, check=True, capture_output=True, text=True)
        theirs_s = time.perf_counter() - start
        ours = json.loads(Path(f"{scratch}/ours.json").read_text())["per_image"]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    differing = [f"{output} {metric}: {values[metric]!r} vs {ours[output.replace('x4.png', '')][metric]!r}"
                 for output, values in theirs.items() for metric in LEARNED
                 if values[metric] != ours[output.replace("x4.png", "")][metric]]
    print(f"{name}: {args.images} pairs of 2040x1356; harness evaluate --device cuda {ours_s:.1f} s, "
          f"pyiqa as eval.py calls it {theirs_s:.1f} s (both with process start and metric creation)")
    if differing:
        print("learned metrics that differ:\n  " + "\n  ".join(differing))
        raise SystemExit(1)
    print("learned metrics identical on every image")


if __name__ == "__main__":
    main()
