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
from .settings import Settings

TEAM_STAGES = ("weights@{team}", "code@{team}", "infer@{team}")  # and evaluate@{team}, when its inputs are there


def differs(proj: Project, team: Manifest, dataset: str, params: Settings, used: Settings,
            from_outputs: str | None) -> str | None:
    """Why this verification, made with the settings `used`, is not the pipeline's run of the team, which
    params.yaml's settings (`params`) describe (None: it is)."""
    if not (proj.root / "dvc.yaml").is_file() or not (proj.root / ".dvc").is_dir():
        return "this checkout has no DVC pipeline"
    if team.id not in params.teams:
        return f"{team.id} is not in params.yaml's teams"
    wanted = {"dataset": params.dataset, "runner": params.runner, "device": params.device,
              "source": params.source, "executor": params.executor}
    made = {"dataset": dataset, "runner": used.runner, "device": used.device,
            "source": "inference" if from_outputs is None else "outputs", "executor": "local"}
    changed = [f"{key} {made[key]} (params.yaml: {wanted[key]})" for key in wanted if made[key] != wanted[key]]
    if used.docker != params.docker:
        changed.append("other docker settings")
    if changed:
        return "this run used " + ", ".join(changed)
    if used.mode != params.mode:
        return f"this run was scored in {used.mode} mode (params.yaml: {params.mode})"
    return None


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
