"""Where a team's outputs are scored: in this Python environment, or in the evaluator image.

The image runs `harness evaluate-team` with no network, a read-only root file system, the team's
runs, the ground truth, the LR inputs and the metric-weights cache mounted read-only, and only the three
result folders (evaluations, metrics, plots) writable. Every evaluation records which evaluator scored it.
"""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.adapter.protocol import log_tail
from harness.catalogue.datasets import Dataset
from harness.core.errors import EvaluationError
from harness.core.project import Project
from harness.core.settings import Settings
from harness.run import docker_images
from harness.run.lockdown import CONTAINER_ENV, device_requests, limits_for, locked_down

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

PROJECT = "/project"
CACHE = "/cache/metric-weights"
EVALUATION_TIMEOUT_S = 6 * 3600


def local_description() -> dict:
    import torch

    from harness.score.evaluation import pyiqa_version

    return {"runner": "local", "python": platform.python_version(), "torch": torch.__version__,
            "pyiqa": pyiqa_version()}


def evaluate_team_in_image(proj: Project, team: Manifest, dataset: Dataset, settings: Settings, on_line=None) -> dict:
    """Run the team's evaluation in the evaluator image, scored as the settings say; return the evaluation
    it wrote."""
    from docker.types import Mount

    client = docker_images.engine()
    docker = settings.docker
    recipe = docker_images.evaluator_recipe(proj.root, docker.base_image)
    logs = proj.evaluator_logs()
    try:
        image = docker_images.ensure_image(client, recipe, proj.root, logs / "build.log", docker.build_network, on_line)
    except docker_images.ImageError as exc:
        raise EvaluationError(f"evaluator image: {exc.message}", exc.hint) from None
    runs = proj.team_runs(dataset.id, team.id)
    hr_dir, lr_dir = dataset.references(proj.data_dir)
    with tempfile.TemporaryDirectory(prefix="harness-eval-") as scratch:
        written = {name: Path(scratch) / name for name in ("evaluations", "metrics", "plots")}  # the only writable
        for folder in written.values():
            folder.mkdir()
            folder.chmod(0o777)
        mounts = [Mount(f"{PROJECT}/teams/{team.id}", str(team.dir.resolve()), type="bind", read_only=True)]
        mounts += [Mount(f"{PROJECT}/{name}", str(folder), type="bind") for name, folder in written.items()]
        if runs.is_dir():
            mounts.append(Mount(f"{PROJECT}/runs/{dataset}/{team.id}", str(runs.resolve()), type="bind",
                                read_only=True))
        for reference in (hr_dir, lr_dir):
            if reference is not None:
                mounts.append(Mount(f"{PROJECT}/{reference.relative_to(proj.root)}", str(reference.resolve()),
                                    type="bind", read_only=True))
        if proj.metric_cache.is_dir():
            mounts.append(Mount(CACHE, str(proj.metric_cache.resolve()), type="bind", read_only=True))
        limits = limits_for(team, docker, client.info().get("NCPU"))
        workers = max(1, min(settings.workers, int(limits["cpus"])))
        command = ["--root", PROJECT, "evaluate-team", team.id, "--dataset", dataset.id,
                   "--metrics", ",".join(settings.metrics), "--mode", settings.mode, "--device", settings.device,
                   "--workers", str(workers), "--max-megapixels", str(settings.max_image_megapixels)]
        container = client.containers.create(
            image["id"], command=command, mounts=mounts, **locked_down(limits),
            device_requests=device_requests(docker.gpus, settings.device),
            environment={**CONTAINER_ENV, "COLUMNS": "160"},
            labels={f"{docker_images.LABEL}.evaluator": team.id})
        log_path = logs / f"{dataset}-{team.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            container.start()
            code = container.wait(timeout=EVALUATION_TIMEOUT_S)["StatusCode"]
            log_path.write_bytes(container.logs())
        finally:
            container.remove(force=True)
        produced = Project(Path(scratch)).evaluation_file(dataset.id, team.id)
        if code != 0 or not produced.exists():
            raise EvaluationError(f"{team.id}: the evaluator image exited with code {code} without an evaluation",
                                  hint=f"log: {log_path}\n{log_tail(log_path)}")
        result = json.loads(produced.read_text())
    result["evaluator"] = {"runner": "docker", "image": recipe.tag, "image_id": image["id"],
                           "repo_digests": image["repo_digests"], "network": "none",
                           "environment": {k: v for k, v in (result.get("evaluator") or {}).items() if k != "runner"}}
    return result
