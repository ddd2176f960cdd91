"""Built-in full-reference metrics: PSNR and SSIM on Y, PSNR on RGB, the harness's own code exactly as the
organizers computed them (harness.score.formulas). They crop and shave the pair as read themselves, share
the Y conversion, and fail together."""

from __future__ import annotations

from harness.score import formulas
from harness.score.backends.base import MetricBackend, Picture, ProcessState

# CPU seconds per megapixel of output on one core of the reference machine (benchmarks/bench_evaluation.py)
SECONDS_PER_MEGAPIXEL = 0.27


class FullReference(MetricBackend):
    name = "builtin-fr"
    repaired = False

    def seconds(self, names: list[str], megapixels: float, images: int) -> float:
        return SECONDS_PER_MEGAPIXEL * megapixels if names else 0.0

    def score_together(self, names: list[str], picture: Picture, state: ProcessState) -> dict[str, float]:
        return formulas.psnr_ssim(picture.sr, picture.hr, names)


BACKEND = FullReference()
