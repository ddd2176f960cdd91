"""One run, whoever starts it: a run `harness verify` made is recorded as the pipeline's run for that team
(`dvc commit` of its stages), so that `dvc repro` neither runs it again nor puts an older cached run back
over it. That holds when verify ran what the pipeline would run: a team of params.yaml's `teams`, on its
`dataset`, with its runner, device and source. Otherwise the pipeline keeps its own runs and says why.
"""

from __future__ import annotations

from .errors import HarnessError
from .fsutil import write_json_atomic
from .manifest import Manifest
from .project import Project

TEAM_STAGES = ("weights@{team}", "code@{team}", "infer@{team}")  # and evaluate@{team}, when its inputs are there


def differs(proj: Project, team: Manifest, dataset: str, settings: dict, options, from_outputs) -> str | None:
    """Why this verification is not the pipeline's run of the team (None: it is)."""
    if not (proj.root / "dvc.yaml").is_file() or not (proj.root / ".dvc").is_dir():
        return "this checkout has no DVC pipeline"
    if team.id not in settings["teams"]:
        return f"{team.id} is not in params.yaml's teams"
    wanted = {"dataset": settings["dataset"], "runner": settings["runner"], "device": settings["device"],
              "source": settings["source"], "executor": settings["executor"]}
    used = {"dataset": dataset, "runner": options.runner, "device": options.device,
            "source": "inference" if from_outputs is None else "outputs", "executor": "local"}
    changed = [f"{key} {used[key]} (params.yaml: {wanted[key]})" for key in wanted if used[key] != wanted[key]]
    if options.docker != settings["docker"]:
        changed.append("other docker settings")
    return "this run used " + ", ".join(changed) if changed else None


def record(proj: Project, team: Manifest, dataset: str) -> None:
    """`dvc commit` the team's stages as they are on disk now: its weights, code and runs, and its
    evaluation when the metric weights the pipeline scores with are in place (else that stage, cheap,
    runs again). The shared stages (data, metric weights, submit) are left to the pipeline."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    jobs = proj.slurm_jobs(dataset)
    if not jobs.exists():  # what the submit stage writes with the local executor: the same bytes
        write_json_atomic(jobs, {"jobs": {}})
    stages = [s.format(team=team.id) for s in TEAM_STAGES]
    if (proj.metric_cache / "checksums.json").exists():
        stages.append(f"evaluate@{team.id}")
    import logging

    quiet = logging.getLogger("dvc")
    level, quiet.level = quiet.level, logging.WARNING  # DVC's own notes ("Updating lock file") are not ours
    try:
        with Repo(str(proj.root)) as repo:
            for stage in stages:
                repo.commit(stage, force=True)
    except DvcException as exc:
        raise HarnessError(f"the pipeline could not record {team.id}'s run: {exc}",
                           hint="dvc repro will run the team again") from None
    finally:
        quiet.level = level
