"""Metric backends: every metric names a registered backend, and a built-in no-reference metric is scored by
its own function (never as NIQE)."""

import numpy as np
import pytest

from harness.catalogue import metrics as M
from harness.core import registries
from harness.imaging.pictures import read_rgb8
from harness.score import backends
from harness.score.backends import no_reference
from harness.score.evaluation import evaluate


def test_every_metric_names_a_registered_backend_of_its_kind():
    for name, spec in M.all_specs().items():
        assert spec.backend in registries.METRIC_BACKENDS, name
        backend = backends.of(name)
        assert backend.name == spec.backend
        if backend.stage == "image":
            assert spec.reference in ("FR", "NR"), name
        if spec.backend == "builtin-nr":
            assert name in no_reference.FUNCTIONS, f"{name}: a built-in no-reference metric needs its function"


@pytest.fixture
def brightness(monkeypatch):
    """A built-in no-reference metric added the way CONTRIBUTING says: a MetricSpec and its function."""
    def mean_brightness(image, state):
        return float(np.asarray(image, dtype=np.float64).mean() * (255.0 if image.dtype != np.uint8 else 1.0))

    monkeypatch.setitem(M.METRICS, "brightness", M.MetricSpec("brightness", "Mean brightness", "NR", False, 2,
                                                              tolerance_abs=0.01, backend="builtin-nr"))
    monkeypatch.setitem(no_reference.FUNCTIONS, "brightness", no_reference.NoReferenceMetric(mean_brightness, 0.01))
    M.all_specs.cache_clear()
    yield
    M.all_specs.cache_clear()


def test_a_builtin_no_reference_metric_is_scored_by_its_own_function(brightness, mini_data, niqe_cache):
    hr_dir = mini_data / "mini" / "HR"
    result = evaluate(hr_dir, hr_dir, ["niqe", "brightness"], metric_cache=niqe_cache)
    assert result.status == "ok"
    expected = {p.stem: float(read_rgb8(p).astype(np.float64).mean()) for p in sorted(hr_dir.glob("*.png"))}
    assert {stem: row["brightness"] for stem, row in result.per_image.items()} == pytest.approx(expected)
    assert all(row["brightness"] != row["niqe"] for row in result.per_image.values())
    assert result.mean["brightness"] == pytest.approx(sum(expected.values()) / len(expected))
