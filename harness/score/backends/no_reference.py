"""Built-in no-reference metrics, scored on the output alone (after the organizers' size repair, as pyiqa
was given it): NIQE as the organizers scored it (harness.score.niqe). A new one is a function of the
output and the process's state, and its line in FUNCTIONS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.catalogue.metrics import FETCH_COMMAND, METRICS
from harness.core.errors import EvaluationError, MetricUnavailable
from harness.score.backends.base import MetricBackend, Picture, ProcessState


@dataclass(frozen=True)
class NoReferenceMetric:
    """score(output, state): the output is HxWx3, 8-bit RGB as read or float in [0, 1] once repaired.
    seconds_per_megapixel: its cost on one core of the reference machine (benchmarks/bench_evaluation.py)."""

    score: Callable[..., float]
    seconds_per_megapixel: float


def niqe(image, state: ProcessState) -> float:
    from harness.score import niqe as niqe_model

    model = state.loaded.get("niqe")
    if model is None:
        try:
            model = state.loaded["niqe"] = niqe_model.PristineModel.load(
                Path(state.cache) / METRICS["niqe"].weight_files[0].path)
        except EvaluationError as exc:
            raise MetricUnavailable("niqe", exc.message, hint=f"re-fetch with `{FETCH_COMMAND} niqe`") from None
    return niqe_model.score(image, model)


FUNCTIONS: dict[str, NoReferenceMetric] = {
    "niqe": NoReferenceMetric(niqe, 0.32),
}


class NoReference(MetricBackend):
    name = "builtin-nr"

    def seconds(self, names: list[str], megapixels: float, images: int) -> float:
        return megapixels * sum(FUNCTIONS[name].seconds_per_megapixel for name in names)

    def score(self, name: str, picture: Picture, state: ProcessState) -> float:
        return FUNCTIONS[name].score(picture.seen, state)


BACKEND = NoReference()
