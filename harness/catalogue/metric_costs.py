"""What each learned metric costs on a CPU, as measured (benchmarks/bench_metric_costs.py, one 2040x1356 pair,
one thread): seconds to create it, seconds per image (a part that grows with the pixels, a part that does not:
ManIQA scores 20 fixed 224-pixel crops whatever the size), and the peak memory of a process scoring it. The
plan's scoring time comes from them (harness.audit.plan, harness.score.per_image.scoring_cpu_seconds).
"""

from __future__ import annotations

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
    "maniqa": MetricCost(6.7, 0.0, 74.9, 3.82),  # with its ViT cut after block 9 (score/maniqa_lean), machine idle
    "clipiqa": MetricCost(8.0, 5.6, 0.0, 1.90),
}


def scoring_seconds(names: list[str], megapixels: float, images: int) -> float:
    """CPU seconds the learned metrics `names` take on `images` images of `megapixels` in all."""
    return sum(COSTS[n].per_megapixel_s * megapixels + COSTS[n].per_image_s * images for n in names if n in COSTS)
