"""What each learned metric costs on a CPU, as measured (benchmarks/bench_metric_costs.py, one 2040x1356 pair,
one thread): seconds to create it, seconds per image (a part that grows with the pixels, a part that does not:
ManIQA scores 20 fixed 224-pixel crops whatever the size), and the peak memory of a process scoring it. The
scorer plans its workers from them (harness.score.per_image.plan_workers): no more workers than the memory holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

REFERENCE_MEGAPIXELS = 2040 * 1356 / 1e6


@dataclass(frozen=True)
class MetricCost:
    create_s: float
    per_megapixel_s: float  # CPU seconds per megapixel of output
    per_image_s: float  # CPU seconds per image, whatever its size
    memory_gib: float  # peak resident memory of a process scoring one 2K image with this metric alone


# Measured on the 2-core AMD EPYC (AVX2) machine, one torch thread, the machine shared (benchmarks/
# bench_metric_costs.py; create includes importing torch and pyiqa and checking the files' digests and keys).
COSTS = {
    "lpips": MetricCost(5.2, 1.0, 0.0, 1.42),
    "dists": MetricCost(5.9, 20.4, 0.0, 3.58),
    "musiq": MetricCost(6.5, 6.5, 0.0, 1.60),
    "maniqa": MetricCost(7.2, 0.0, 85.8, 3.48),
    "clipiqa": MetricCost(8.0, 5.6, 0.0, 1.90),
}
BASE_PROCESS_GIB = 0.43  # a worker process before any learned metric (measured: PSNR, NIQE alone)


def scoring_seconds(names: list[str], megapixels: float, images: int) -> float:
    """CPU seconds the learned metrics `names` take on `images` images of `megapixels` in all."""
    return sum(COSTS[n].per_megapixel_s * megapixels + COSTS[n].per_image_s * images for n in names if n in COSTS)


def worker_gib(names: list[str], largest_megapixels: float) -> float:
    """Peak memory of a worker scoring with every metric in `names`: each metric's network stays loaded,
    the largest image's activations of one metric at a time."""
    networks = sum(COSTS[n].memory_gib * 0.25 for n in names if n in COSTS)  # the weights' share, roughly
    scale = max(largest_megapixels / REFERENCE_MEGAPIXELS, 1.0)
    activations = max((COSTS[n].memory_gib * scale for n in names if n in COSTS), default=0.0)
    return BASE_PROCESS_GIB + networks + activations


def available_gib() -> float:
    """Memory this machine can give now (Linux: MemAvailable), else its total."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30


def workers_that_fit(names: list[str], largest_megapixels: float) -> int:
    """How many workers scoring `names` fit in the memory available now (at least one)."""
    return max(1, int(available_gib() // worker_gib(names, largest_megapixels)))
