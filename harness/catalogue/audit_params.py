"""params.yaml as an audit reads it: every value checked (harness.core.settings), and the metric names held to
the metrics the catalogue knows."""

from __future__ import annotations

from harness.catalogue.metrics import parse_metric_list
from harness.core import settings
from harness.core.errors import HarnessError
from harness.core.project import Project


def read(project: Project) -> settings.Settings:
    path = project.root / settings.PARAMS_FILE
    merged = settings.load(path)
    try:
        parse_metric_list(list(merged.metrics))
    except HarnessError as exc:
        raise settings.InvalidSetting(f"{path}: metrics: {exc.message}", hint=exc.hint) from None
    return merged
