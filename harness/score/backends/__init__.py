"""Metric backends: each way a metric is computed is one module here and one line in
harness.core.registries.METRIC_BACKENDS; a MetricSpec names its backend, and the evaluation asks the backend,
never the metric's name, how to compute it."""

from __future__ import annotations

import functools

from harness.catalogue.metrics import METRICS
from harness.core import registries
from harness.score.backends.base import MetricBackend


@functools.cache
def get(name: str) -> MetricBackend:
    if name not in registries.METRIC_BACKENDS:
        from harness.core.errors import HarnessError

        raise HarnessError(f"unknown metric backend '{name}'",
                           hint=f"known: {', '.join(registries.METRIC_BACKENDS)}")
    return registries.load(registries.METRIC_BACKENDS[name])


def of(metric: str) -> MetricBackend:
    """The backend that computes a metric (a score of a challenge is derived)."""
    return get(METRICS[metric].backend if metric in METRICS else "derived")


def grouped(names: list[str], stage: str) -> list[tuple[MetricBackend, list[str]]]:
    """The names computed at `stage`, by backend, in the order of the registry; each group keeps the names'
    order."""
    groups: dict[str, list[str]] = {}
    for name in names:
        backend = of(name)
        if backend.stage == stage:
            groups.setdefault(backend.name, []).append(name)
    return [(get(backend), groups[backend]) for backend in registries.METRIC_BACKENDS if backend in groups]
