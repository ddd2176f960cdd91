"""What each metric costs on this machine, one 2040x1356 pair: a fresh process per metric creates it (pyiqa from
the metric-weights cache, offline; stand-ins cost what the real weights cost) and scores the pair --repeat
times. Prints creation seconds, seconds per image (the median), CPU seconds per image and the process's peak
memory, and writes them as JSON: the numbers behind the scoring time per team in the README.

    python benchmarks/bench_metric_costs.py --cache METRIC_WEIGHTS [--metrics ...] [--threads 1] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALL = "psnr,ssim,niqe,lpips,dists,musiq,maniqa,clipiqa"
CHILD = textwrap.dedent("""
    import json, resource, statistics, sys, time
    from pathlib import Path
    name, sr_path, hr_path, cache, repeat, threads = sys.argv[1:7]
    from harness.imaging.pictures import read_rgb8
    from harness.score import backends
    from harness.score.backends.base import Picture, ProcessState
    picture = Picture(read_rgb8(Path(sr_path)), read_rgb8(Path(hr_path)))
    backend, state = backends.of(name), ProcessState(cache, "cpu")
    started = time.perf_counter()
    if backend.uses_torch:
        import torch
        torch.set_num_threads(int(threads))
        picture.sr_tensor, picture.hr_tensor
    backend.prepare(name, state)
    if backend.repaired:
        score = lambda: backend.score(name, picture, state)
    else:
        score = lambda: backend.score_together([name], picture, state)
    created = time.perf_counter() - started
    walls, cpus = [], []
    for _ in range(int(repeat)):
        start, cpu = time.perf_counter(), time.process_time()
        score()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"create_s": created, "score_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
                      "peak_bytes": peak}))
""")


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_evaluation import make_images

    from harness.score.formulas import cache_env

    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--metrics", default=ALL)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the harness's workers use 1)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = {**os.environ, **cache_env(args.cache), "HARNESS_METRIC_WEIGHTS": str(args.cache),
           "OMP_NUM_THREADS": str(args.threads)}
    costs = {}
    with tempfile.TemporaryDirectory() as scratch:
        sr_dir, hr_dir = make_images(Path(scratch), 1)
        sr, hr = sr_dir / "0000x4.png", hr_dir / "0000.png"
        for name in args.metrics.split(","):
            done = subprocess.run([sys.executable, "-c", CHILD, name, str(sr), str(hr), str(args.cache.resolve()),
                                   str(args.repeat), str(args.threads)], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{name}: {done.stderr[-2000:]}")
            costs[name] = json.loads(done.stdout.strip().splitlines()[-1])
            row = costs[name]
            print(f"{name:10} create {row['create_s']:6.1f} s  score {row['score_s']:7.1f} s  CPU {row['cpu_s']:7.1f} s"
                  f"  peak {row['peak_bytes'] / 2 ** 30:5.2f} GiB", flush=True)
    if args.json:
        args.json.write_text(json.dumps(costs, indent=1))


if __name__ == "__main__":
    main()
