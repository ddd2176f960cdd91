"""The learned metrics (LPIPS, DISTS, ManIQA, MUSIQ, CLIP-IQA): pyiqa's networks, loaded from the cache the
harness controls (harness.score.formulas.PyiqaMetrics), on the organizers' size-repaired pair."""

from __future__ import annotations

from pathlib import Path

from harness.score.backends.base import MetricBackend, Picture, ProcessState


class Learned(MetricBackend):
    name = "pyiqa"
    learned = True
    uses_torch = True

    def describe(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    def seconds(self, names: list[str], megapixels: float, images: int) -> float:
        from harness.catalogue import metric_costs

        return metric_costs.scoring_seconds(names, megapixels, images)

    def prepare(self, name: str, state: ProcessState) -> None:
        self._metrics(state).get(name)

    def score(self, name: str, picture: Picture, state: ProcessState) -> float:
        return self._metrics(state).score(name, picture.sr_tensor, picture.hr_tensor)

    def _metrics(self, state: ProcessState):
        metrics = state.loaded.get(self.name)
        if metrics is None:
            from harness.score.formulas import PyiqaMetrics

            metrics = state.loaded[self.name] = PyiqaMetrics(Path(state.cache), device=state.device)
        return metrics


BACKEND = Learned()
