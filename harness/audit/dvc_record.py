"""One run, whoever starts it: a run `harness verify` made is recorded as the pipeline's run for that team
(`dvc commit` of its stages), so that `dvc repro` neither runs it again nor puts an older cached run back
over it. That holds when verify ran what the pipeline would run: a team of params.yaml's `teams`, on its
`dataset`, with its runner, device and source. Otherwise the pipeline keeps its own runs and says why.
"""

from __future__ import annotations

from harness.catalogue import audit_params
from harness.catalogue.manifests import Manifest
from harness.core.errors import HarnessError
from harness.core.files import write_json_atomic
from harness.core.project import Project
from harness.core.settings import Settings

TEAM_STAGES = ("weights@{team}", "code@{team}", "infer@{team}")  # and evaluate@{team}, when its inputs are there


PARAMS_CHECKED = ".cache/params.checked"  # the output of the pipeline's first stage: its content never changes


def mark_params_checked(proj: Project) -> None:
    """What the pipeline's first stage (`harness validate --params`) leaves once params.yaml passed."""
    marker = proj.root / PARAMS_CHECKED
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("params.yaml checked before the pipeline ran\n")


def has_pipeline(proj: Project) -> bool:
    return (proj.root / "dvc.yaml").is_file() and (proj.root / ".dvc").is_dir()


def differs(team_id: str, dataset: str, params: Settings, used: Settings, from_outputs: str | None,
            executor: str = "local") -> str | None:
    """Why a run of the team made with the settings `used` (on `executor`: verify and audit run here, the
    pipeline's infer stage on params.yaml's) is not the pipeline's run of it, which params.yaml's settings
    (`params`) describe (None: it is)."""
    if team_id not in params.teams:
        return f"{team_id} is not in params.yaml's teams"
    wanted = {"dataset": params.dataset, "runner": params.runner, "device": params.device,
              "source": params.source, "executor": params.executor}
    made = {"dataset": dataset, "runner": used.runner, "device": used.device,
            "source": "inference" if from_outputs is None else "outputs", "executor": executor}
    changed = [f"{key} {made[key]} (params.yaml: {wanted[key]})" for key in wanted if made[key] != wanted[key]]
    if used.docker != params.docker:
        changed.append("other docker settings")
    if changed:
        return "this run uses " + ", ".join(changed)
    if used.mode != params.mode:
        return f"this run is scored in {used.mode} mode (params.yaml: {params.mode})"
    if list(used.metrics) != list(params.metrics):
        return f"this run is scored on {', '.join(used.metrics)} (params.yaml: {', '.join(params.metrics)})"
    return None


def published_source(settings: Settings) -> str | None:
    """The `from_outputs` of the runs these settings make: '' (each manifest's published outputs, or
    settings.outputs) with source: outputs, None when the teams run."""
    return "" if settings.source == "outputs" else None


def place(proj: Project, team_id: str, dataset: str, used: Settings, from_outputs: str | None = None,
          executor: str = "local") -> tuple[Project, str | None]:
    """Where a command's run of the team goes, and why not in the pipeline's folders: there when it is the
    run the pipeline would make (or the checkout has no pipeline to keep), else under checks/, so that no
    command replaces a file the pipeline tracks."""
    if not has_pipeline(proj):
        return proj, None
    why = differs(team_id, dataset, audit_params.read(proj), used, from_outputs, executor)
    return (proj, None) if why is None else (proj.aside(), why)


def record(proj: Project, team: Manifest, dataset: str) -> None:
    """`dvc commit` the team's stages as they are on disk now: its weights, code and runs, and its
    evaluation when the metric weights the pipeline scores with are in place (else that stage, cheap,
    runs again). The shared stages (data, metric weights, submit) are left to the pipeline."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if not (proj.root / PARAMS_CHECKED).exists():  # a checkout whose pipeline never ran: the run's settings passed
        mark_params_checked(proj)
    jobs = proj.slurm_jobs(dataset)
    if not jobs.exists():  # what the submit stage writes with the local executor: the same bytes
        write_json_atomic(jobs, {"jobs": {}})
    stages = [s.format(team=team.id) for s in TEAM_STAGES]
    if (proj.root / ".cache" / "metric-weights" / "checksums.json").exists():  # the evaluate stage's dependency
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


EXPERIMENT_BASELINE = "DVC_EXP_BASELINE_REV"  # set by `dvc exp run` for every stage it runs


def undo_experiment(proj: Project, baseline: str, refused: set[str]) -> bool:
    """`dvc exp run -S key=value` writes its values into params.yaml before the first stage and leaves them
    there when a stage fails. When the pipeline refuses such a value, put params.yaml back as the experiment's
    baseline commit has it, if nothing but the refused keys differs (no other edit is ever lost); True when
    it was put back."""
    import git
    import yaml

    try:
        committed = git.Repo(proj.root).git.show(f"{baseline}:params.yaml")
    except git.GitCommandError:
        return False
    path = proj.root / "params.yaml"
    now, then = yaml.safe_load(path.read_text()) or {}, yaml.safe_load(committed) or {}
    changed = {key for key in set(now) | set(then) if now.get(key) != then.get(key)}
    if not changed or not changed <= refused:
        return False
    path.write_text(committed if committed.endswith("\n") else committed + "\n")
    return True
