"""Model metrics (the Efficient SR challenges' parameters, FLOPs, activations, conv layers, runtime, GPU
memory): measured on the team's network by the adapter when it ran (harness.adapter.model_metrics), read
here from the run's model.json after its images are scored."""

from __future__ import annotations

import json
from pathlib import Path

from harness.catalogue.metrics import METRICS
from harness.core.records import Evaluation
from harness.score.backends.base import Completion, MetricBackend

MODEL_ABSENT = ("measured on the network by the adapter when the team runs (model.json beside the outputs); "
                "this folder has none")
# What the adapter measured per image, in model.json: metric -> its per-image field there
PER_IMAGE = {"runtime": "runtime_ms"}


class Model(MetricBackend):
    name = "model"
    stage = "run"

    def complete(self, evaluation: Evaluation, done: Completion) -> None:
        from harness.adapter.model_metrics import MODEL_FILE

        names = [n for n in done.computed if n in METRICS and METRICS[n].backend == self.name]
        if not names:
            return
        path = Path(done.sr_dir) / MODEL_FILE
        measured = json.loads(path.read_text()) if path.is_file() else None
        for name in names:
            if measured is None:
                evaluation.unavailable[name] = {"reason": MODEL_ABSENT, "fetch": "harness infer TEAM"}
            elif name in measured.get("unavailable", {}) or name not in measured and name not in PER_IMAGE:
                evaluation.unavailable[name] = {"reason": measured.get("unavailable", {}).get(name, MODEL_ABSENT),
                                                "fetch": ""}
            elif name in PER_IMAGE:
                values = {Path(image).stem: value for image, value in measured[PER_IMAGE[name]].items()}
                for stem, row in evaluation.per_image.items():
                    row[name] = values.get(stem)
                evaluation.mean[name] = sum(values.values()) / len(values) if values else None
            else:
                evaluation.mean[name] = measured[name]
        if measured is not None:
            evaluation.model = {"device": measured["device"], "clock": measured["clock"],
                                "probe": measured.get("probe"),
                                **{k: measured[k] for k in ("flop_counter", "flops_by_counter", "layers", "untrained")
                                   if k in measured}}


BACKEND = Model()
