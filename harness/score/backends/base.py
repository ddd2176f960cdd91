"""What every metric backend is: how its metrics are computed, when in an evaluation, and what they cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.core.errors import EvaluationError

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.core.records import Evaluation


# Why a full-reference metric has no value without ground truth, and how to get it
NO_GROUND_TRUTH = "needs the ground truth (HR images), which this evaluation does not have"
GROUND_TRUTH_HINT = "give --hr, or import it: harness data import DATASET --hr PATH"


class Picture:
    """One output and its ground truth as a backend scores them: 8-bit RGB arrays, and the float tensors that
    torch-based metrics take, made on first use. `seen` is the output a no-reference metric scores (resized
    with the pair when the organizers' repair applied)."""

    def __init__(self, sr, hr, sr_tensor=None, hr_tensor=None, seen=None):
        self.sr, self.hr, self._sr_tensor, self._hr_tensor = sr, hr, sr_tensor, hr_tensor
        self.seen = sr if seen is None else seen

    @property
    def sr_tensor(self):
        if self._sr_tensor is None:
            from harness.score.formulas import rgb_tensor

            self._sr_tensor = rgb_tensor(self.sr)
        return self._sr_tensor

    @property
    def hr_tensor(self):
        if self._hr_tensor is None and self.hr is not None:
            from harness.score.formulas import rgb_tensor

            self._hr_tensor = rgb_tensor(self.hr)
        return self._hr_tensor


@dataclass
class ProcessState:
    """What one scoring process keeps between images: the metric-weights cache, the device, and each
    backend's loaded models (made on first use)."""

    cache: str
    device: str
    loaded: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    """What a backend that completes an evaluation after its images reads: the outputs' folder, the metrics
    asked for and those computed, and whether there was ground truth."""

    sr_dir: Any
    wanted: list[str]
    computed: list[str]
    ground_truth: bool


class MetricBackend:
    """A way of computing metrics.

    stage: "image" (scored image by image, here or in a worker process), "run" (read from what the run
    measured, after the images), "derived" (from the other metrics' means, last).
    repaired: an image backend scored on the organizers' size-repaired pair (NIQE and the learned metrics),
    not on the pair as read (PSNR/SSIM crop and shave themselves). learned: its weights are trained: numbers
    from a stand-in cache mean nothing, and every record says so. uses_torch: its workers need torch."""

    name = ""
    stage = "image"
    repaired = True
    learned = False
    uses_torch = False

    def describe(self, exc: Exception) -> str:
        """How a failure inside one metric is written in its finding."""
        return exc.message if isinstance(exc, EvaluationError) else f"{type(exc).__name__}: {exc}"

    def seconds(self, names: list[str], megapixels: float, images: int) -> float:
        """CPU seconds these metrics cost on one core of the reference machine (benchmarks/)."""
        return 0.0

    def prepare(self, name: str, state: ProcessState) -> None:
        """Load what scoring `name` needs into the process's state, before its first image."""

    def score(self, name: str, picture: Picture, state: ProcessState) -> float:
        raise NotImplementedError

    def score_together(self, names: list[str], picture: Picture, state: ProcessState) -> dict[str, float]:
        """Every name's value for one image; a backend whose metrics share work computes them at once and
        fails them together (the organizers' "a metric raised" case)."""
        raise NotImplementedError

    def complete(self, evaluation: Evaluation, done: Completion) -> None:
        """A "run" or "derived" backend's values, written into the evaluation."""
