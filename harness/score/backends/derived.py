"""Scores a challenge defines from other metrics (the perceptual score, the Efficient SR score): computed
from the means, last, and never from some of their terms (harness.catalogue.challenges holds the formulas)."""

from __future__ import annotations

from harness.catalogue.challenges import scores
from harness.catalogue.metrics import FETCH_COMMAND, METRICS
from harness.core.records import Evaluation
from harness.score.backends.base import GROUND_TRUTH_HINT, Completion, MetricBackend


class Derived(MetricBackend):
    name = "derived"
    stage = "derived"

    def complete(self, evaluation: Evaluation, done: Completion) -> None:
        derived = scores()
        for score in (derived[n] for n in done.wanted if n in derived):
            name = score.name
            if score.relative:
                evaluation.unavailable[name] = {"reason": f"relative to {score.baseline}: computed with its values "
                                                          "when the team is verified", "fetch": ""}
                continue
            absent = [n for n in score.components if evaluation.mean.get(n) is None]
            if not absent:
                evaluation.mean[name] = score.value({n: v for n, v in evaluation.mean.items() if v is not None})
                continue
            why = "the ground truth" if not done.ground_truth and any(
                METRICS[n].reference == "FR" for n in absent) else "weights"
            evaluation.unavailable[name] = {
                "reason": f"needs {', '.join(absent)}, which could not be computed (no {why}); "
                          "a score is never computed from some of its terms",
                "fetch": GROUND_TRUTH_HINT if why == "the ground truth" else f"{FETCH_COMMAND} {' '.join(absent)}"}


BACKEND = Derived()
