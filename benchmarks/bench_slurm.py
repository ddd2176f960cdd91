"""The scheduler's cost per job, as a ratio against a local process doing the same imports.

Submits trivial jobs through submitit (the way the slurm executor does), one at a time and as one
array, and measures submit-to-result wall time; the function itself takes ~0 s, so what is measured is
sbatch, scheduling, the job's Python start-up (the harness's imports included) and the result's return
through the shared folder. Needs a cluster (SLURM_CONF), e.g. `tests/slurm/cluster.sh start DIR`.

    python benchmarks/bench_slurm.py [--jobs 4]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import submitit


def touch() -> float:
    """What a real job does before running a team: import the harness."""
    import importlib

    importlib.import_module("harness.run.inference")
    return time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-slurm-")
    executor = submitit.AutoExecutor(folder=f"{folder}/%j", cluster="slurm")
    executor.update_parameters(timeout_min=5, cpus_per_task=1, mem_gb=1)
    start = time.perf_counter()  # the reference: a fresh local process doing the job's imports
    subprocess.run([sys.executable, "-c", "import submitit, harness.run.slurm, harness.run.inference"], check=True)
    in_process = time.perf_counter() - start

    singles = []
    for _ in range(args.jobs):
        start = time.perf_counter()
        executor.submit(touch).result()
        singles.append(time.perf_counter() - start)
    start = time.perf_counter()
    with executor.batch():
        jobs = [executor.submit(touch) for _ in range(args.jobs)]
    for job in jobs:
        job.result()
    array = time.perf_counter() - start
    print(f"local process, same imports: {in_process:.2f} s")
    print(f"one job (median of {args.jobs}): {statistics.median(singles):.2f} s  "
          f"(min {min(singles):.2f}, max {max(singles):.2f}); ratio {statistics.median(singles) / in_process:.0f}x")
    print(f"array of {args.jobs}:           {array:.2f} s  ({array / args.jobs:.2f} s per job)")


if __name__ == "__main__":
    main()
