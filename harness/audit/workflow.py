"""The audit workflow, one team at a time: inputs, inference, evaluation, verification, the report.

Every route goes through these functions: the CLI's commands, the pipeline's stages and the Slurm
jobs. They raise typed errors and report progress as progress.Step; the CLI parses and renders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.adapter.protocol import OVERRIDE_VARIABLE
from harness.audit import doctor, dvc_record
from harness.catalogue import audit_params, roster
from harness.catalogue import datasets as data_mod
from harness.catalogue.datasets import Dataset
from harness.catalogue.manifests import Manifest
from harness.core import locks, records
from harness.core.errors import ChecksumMismatch, DatasetError, HarnessError, WeightsUnavailable
from harness.core.files import write_bytes_atomic, write_json_atomic
from harness.core.progress import Progress, Step, note, silent
from harness.core.project import Project, team_runs_dir
from harness.core.provenance import session_info
from harness.core.records import PUBLISHED_OUTPUTS, RecordError, RunRecord, TeamEvaluation, Verification
from harness.core.settings import Settings
from harness.fetch import dataset_files, repositories
from harness.fetch import team_weights as weights_mod
from harness.report import files as report_mod
from harness.run import inference, published_outputs, runners, slurm
from harness.score import evaluation as evaluate_mod
from harness.score import where as evaluator_mod
from harness.verdict import rules


class InputsUnavailable(HarnessError):
    kind = "inputs_unavailable"


# --- inputs ------------------------------------------------------------------------------------

def prepare_inputs(proj: Project, team: Manifest, dataset: Dataset) -> None:
    """The dataset verifies and the team's weights are in place, or InputsUnavailable says why."""
    try:
        dataset_files.check_checksums(dataset, proj.data_dir)
    except HarnessError as exc:
        raise InputsUnavailable(exc.message, exc.hint) from None
    failure = proj.team_weights(team.id) / weights_mod.FAILURE
    if failure.exists():
        recorded = json.loads(failure.read_text())
        raise InputsUnavailable(f"{team.id}: weights unavailable: {recorded['message']}", recorded.get("hint"))
    missing = weights_mod.missing(team, proj.weights_dir)
    if missing:
        raise InputsUnavailable(f"{team.id}: weights missing: {', '.join(missing)}",
                                hint=f"run `harness fetch weights {team.id}`")


@dataclass
class WeightsFetch:
    """What `fetch_weights` did for a team: the files, why nothing was needed, or the recorded failure."""

    team: str
    paths: list = field(default_factory=list)
    not_needed: str | None = None
    failure: HarnessError | None = None


def fetch_team_weights(proj: Project, team: Manifest, progress: Progress | None = None) -> list[Path]:
    """The team's weights; those kept in its code repository come from its checkout (fetched first)."""
    checkout = None
    if any(w["source"]["kind"] == "code" for w in team.weights):
        checkout = fetch_code(proj, team)
    return weights_mod.fetch(team, proj.weights_dir, proj.downloads_dir, proj.root, progress, checkout)


def fetch_weights(proj: Project, team: Manifest, source: str, progress: Progress | None = None,
                  record_failure: bool = False) -> WeightsFetch:
    """The pipeline's weights stage for one team. With record_failure, a failure is written into
    weights/<team>/failure.json (inference then records it) instead of being raised."""
    folder = proj.team_weights(team.id)
    (folder / weights_mod.FAILURE).unlink(missing_ok=True)
    if not team.runnable or source == "outputs":
        write_json_atomic(folder / weights_mod.LISTING, {})
        return WeightsFetch(team.id, not_needed="not runnable" if not team.runnable else "outputs source")
    try:
        return WeightsFetch(team.id, paths=fetch_team_weights(proj, team, progress))
    except HarnessError as exc:
        if not record_failure:
            raise
        write_json_atomic(folder / weights_mod.FAILURE, {"kind": "weights_unavailable", "message": exc.message,
                                                         "hint": exc.hint})
        return WeightsFetch(team.id, failure=exc)


def fetch_code(proj: Project, team: Manifest) -> Path | None:
    """The team's code checkout at its pinned commit, verified (None for a team whose code lives in its
    folder), recorded in .cache/code/teams/<team>.json for the pipeline with the damage found elsewhere in
    the repository."""
    checkout, damaged = repositories.fetch(proj.code_cache, team) if "code" in team.data else (None, [])
    write_json_atomic(proj.code_record(team.id), {
        "team": team.id, "repository": team.data.get("code", {}).get("repository"),
        "commit": team.data.get("code", {}).get("commit"),
        "checkout": str(checkout.relative_to(proj.root)) if checkout else None, "damaged_elsewhere": damaged})
    return checkout


@dataclass
class CodeFetch:
    team: str
    checkout: Path | None = None
    failure: HarnessError | None = None
    damaged_elsewhere: list = field(default_factory=list)


def fetch_all_code(proj: Project, teams: list[Manifest]) -> list[CodeFetch]:
    """Every team's code, each repository on its own: one that cannot be cloned fails its own teams only,
    and every failure is in the list (nothing stops at the first)."""
    results: list[CodeFetch] = []
    failed_sources: dict[tuple, HarnessError] = {}
    for team in teams:
        source = (team.data.get("code", {}).get("repository"), team.data.get("code", {}).get("commit"))
        if source in failed_sources:  # the same clone would fail again: say so without retrying
            results.append(CodeFetch(team.id, failure=failed_sources[source]))
            continue
        try:
            checkout = fetch_code(proj, team)
        except HarnessError as exc:
            if getattr(exc, "whole_repository", False):
                failed_sources[source] = exc
            results.append(CodeFetch(team.id, failure=exc))
            continue
        record = json.loads(proj.code_record(team.id).read_text())
        results.append(CodeFetch(team.id, checkout, damaged_elsewhere=record["damaged_elsewhere"]))
    return results


# --- inference -----------------------------------------------------------------------------------

def infer(proj: Project, team: Manifest, dataset: Dataset, settings: Settings, progress: Progress | None = None,
          runs_root: Path | None = None) -> dict:
    """Run the team with the chosen runner into runs/ (or runs_root); the one inference path that the
    local executor and every Slurm job take. Returns the run record."""
    progress = progress or silent
    weights_mod.check_pins(team, proj.weights_dir)  # the bytes the run will read are those pinned
    refusal = doctor.device_refusal(settings, team) if team.runnable else None
    if refusal:  # asked of the machine before any environment starts: never a CPU run in its place
        record = inference.write_failed_record(team, runs_root or proj.runs_dir, dataset.id, "no_gpu", refusal.detail,
                                               refusal.fix)
        progress(Step(team.id, record=record))
        return record
    runner = runners.get(settings.runner, settings)
    if runner.selection:
        note(progress, team.id, f"{team.id}: runner {runner.selection}")
    lr_dir = dataset.lr_dir(proj.data_dir)

    def update(run, runs, done, total, name):
        progress(Step(team.id, f"{team.id} run {run}/{runs} {name}", done, total))

    place = inference.RunPlace(dataset.id, lr_dir, proj.team_weights(team.id), runs_root or proj.runs_dir, proj.root,
                               repositories.for_run(proj.code_cache, team))
    record = inference.infer_team(team, runner, place, settings.device, update)
    progress(Step(team.id, record=record))
    return record


def run_team_job(root: str, team_id: str, dataset_id: str, settings: Settings) -> dict:
    """A Slurm job's body: `infer` on the node Slurm picked, into the folder the waiting stage collects (the
    job carries names; the node resolves them once)."""
    proj = Project(Path(root))
    team = roster.load(proj, team_id)
    dataset = data_mod.get(dataset_id)
    results = proj.slurm_results(dataset.id)
    record = RunRecord.from_dict(infer(proj, team, dataset, settings, runs_root=results))
    record.slurm_job_id = slurm.job_id()
    return inference.write_record(team_runs_dir(results, dataset.id, team.id), record)


def runs_complete(proj: Project, team: Manifest, dataset: Dataset) -> bool:
    """The team's runs exist for its current run key and pass the output checks."""
    try:
        record = inference.load_record(proj.runs_dir, dataset.id, team.id)
    except RecordError:
        return False
    if not record or not record.ok or record.run_key != team.run_key:
        return False
    dirs = inference.run_dirs(proj.runs_dir, dataset.id, team.id)
    if len(dirs) != team.repeats:
        return False
    lr_dir = dataset.lr_dir(proj.data_dir)
    try:
        for run_dir in dirs:
            inference.check_outputs(lr_dir, run_dir, team.runtime["scale"])
    except HarnessError:
        return False
    return True


def submit_jobs(proj: Project, teams: list[Manifest], dataset: Dataset, settings: Settings) -> dict:
    """One Slurm job per runnable team whose runs are not complete and that has no job queued."""
    queued = slurm.active(proj, teams, dataset.id)
    wanted = [t for t in teams if t.runnable and t.id not in queued and not runs_complete(proj, t, dataset)]
    return slurm.submit(proj, wanted, dataset.id, settings.slurm, run_team_job,
                        lambda team: (str(proj.root), team.id, dataset.id, settings))


def infer_on_slurm(proj: Project, team: Manifest, dataset: Dataset, settings: Settings,
                   progress: Progress | None = None) -> dict:
    """The team's Slurm job: none when its runs are complete; submitted when this manifest has none yet.
    A job that ended (failed, cancelled) is not resubmitted here: `harness jobs submit` does that."""
    complete = inference.load_record(proj.runs_dir, dataset.id, team.id) if runs_complete(proj, team, dataset) else None
    if complete is not None:
        note(progress, team.id, f"{team.id}: runs complete for this manifest; no job submitted")
        return complete.as_written()
    entry = slurm.load_jobs(proj, dataset.id)["jobs"].get(team.id)
    if entry is None or entry["run_key"] != team.run_key:
        slurm.submit(proj, [team], dataset.id, settings.slurm, run_team_job,
                     lambda t: (str(proj.root), t.id, dataset.id, settings))
    shown: list[str] = []

    def on_poll(summary, state):  # one line per change, so that logs show it too
        line = (f"{team.id}: job {state.lower()}; audit jobs: {summary['queued']} queued, "
                f"{summary['running']} running, {summary['done']} done")
        if not shown or shown[-1] != line:
            shown.append(line)
            note(progress, team.id, line)

    record = slurm.wait(proj, team, dataset.id, settings.slurm, on_poll)
    note(progress, team.id, f"{team.id}: Slurm job {record['slurm_job_id']} ended {record['slurm_state']}")
    return record


def collect_outputs(proj: Project, team: Manifest, dataset: Dataset, source: str | None,
                    progress: Progress | None = None) -> dict:
    """The evaluate-only route: the team's published outputs become its run."""
    source = source or published_outputs.default_source(team, dataset.id)
    if not source:
        raise HarnessError(f"{team.id} declares no published outputs for '{dataset}'",
                           hint="pass a folder, archive, URL or gdrive:<id>")
    record = published_outputs.collect(team, dataset.id, source, proj.runs_dir, proj.downloads_dir, progress)
    (progress or silent)(Step(team.id, record=record))
    return record


def produce_runs(proj: Project, team: Manifest, dataset: Dataset, settings: Settings,
                 progress: Progress | None = None, record_failure: bool = False) -> dict:
    """The pipeline's infer stage: collect the published outputs, or run the team (here or as a Slurm
    job). With record_failure, missing inputs become a failed run record instead of an error."""
    if settings.source == "outputs":
        return collect_outputs(proj, team, dataset, settings.outputs, progress)
    try:
        if team.runnable:
            prepare_inputs(proj, team, dataset)
            weights_mod.check_pins(team, proj.weights_dir)
    except (InputsUnavailable, ChecksumMismatch) as exc:
        if not record_failure:
            raise
        record = inference.write_failed_record(team, proj.runs_dir, dataset.id, exc.kind, exc.message, exc.hint)
        (progress or silent)(Step(team.id, record=record))
        return record
    if settings.executor == "slurm" and team.runnable:
        record = infer_on_slurm(proj, team, dataset, settings, progress)
        (progress or silent)(Step(team.id, record=record))
        return record
    return infer(proj, team, dataset, settings, progress)


# --- evaluation and verification ------------------------------------------------------------------

def evaluate_team(proj: Project, team: Manifest, dataset: Dataset, settings: Settings, progress: Progress | None = None,
                  json_out: Path | None = None) -> dict:
    """Score every run of the team with the settings' metrics, mode, device and workers, here or in the
    evaluator image, into evaluations/ and metrics/ (the pipeline's contract); return the team evaluation."""
    if json_out is None:  # the project's evaluations feed verdicts and the report: never stand-in numbers
        from harness.fetch import stand_ins

        stand_ins.refuse_to_compare(proj.metric_cache)
    target = json_out or proj.evaluation_file(dataset.id, team.id)
    with locks.held(target, f"the evaluation of {team.id} on '{dataset}'"):
        return _evaluate_team_locked(proj, team, dataset, settings, progress or silent, target)


def _evaluate_team_locked(proj: Project, team: Manifest, dataset: Dataset, settings: Settings, progress: Progress,
                          target: Path) -> dict:
    if settings.evaluator == "docker":
        result = evaluator_mod.evaluate_team_in_image(
            proj, team, dataset, settings,
            lambda line: progress(Step(f"{team.id} evaluator", f"building evaluator: {line[:100]}")))
    else:
        record = inference.load_record(proj.runs_dir, dataset.id, team.id)
        hr_dir, lr_dir = dataset.references(proj.data_dir)
        run_dirs = inference.run_dirs(proj.runs_dir, dataset.id, team.id)

        def update(run, runs, done, total, name):
            progress(Step(f"evaluating {team.id}", f"evaluating {team.id} run {run}/{runs}", done, total))

        result = evaluate_mod.score_runs(team, dataset.id, record, run_dirs, (hr_dir, lr_dir), settings,
                                            proj.metric_cache, update)
        result["evaluator"] = evaluator_mod.local_description()
    result = records.stated(result)  # the same bytes on every CPU that computed the same values
    write_json_atomic(target, result)
    write_json_atomic(target.with_suffix(".session.json"), records.evaluation_session(session_info(proj.root)))
    write_json_atomic(proj.metrics_file(dataset.id, team.id), records.stated(evaluate_mod.mean_metrics(result)))
    write_plots(proj.plots_dir(dataset.id, team.id), records.stated(evaluate_mod.plot_rows(result)))
    return result


def write_plots(folder: Path, rows: list[dict]) -> None:
    """One CSV per metric, image and value, replacing what an earlier evaluation left."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [k for k in (rows[0] if rows else {}) if k != "image"]
    for stale in folder.glob("*.csv"):
        if stale.stem not in names:
            stale.unlink()
    for name in names:
        write_bytes_atomic(folder / f"{name}.csv", _csv([{"image": r["image"], name: r[name]} for r in rows]).encode())


def _csv(rows: list[dict]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["image"]
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def load_evaluation(proj: Project, dataset: str, team_id: str) -> TeamEvaluation | None:
    """The team's evaluation on the dataset, or None when it has none; RecordError when another version of
    the harness wrote it."""
    path = proj.evaluation_file(dataset, team_id)
    if not path.exists():
        return None
    return TeamEvaluation.from_dict(json.loads(path.read_text()), roster.display_path(proj, path))


def reusable_evaluation(proj: Project, team: Manifest, dataset: str, settings: Settings,
                        wanted: list[str]) -> TeamEvaluation | None:
    """An earlier evaluation that answers the same question: the same run key and mode, inference that
    succeeded by running the team (not from published outputs), every wanted metric scored, and a run
    whose identity (records.ran_on) is the one asked for: the device kind it executed on, the runner, a
    sandbox unless the user opted out. A run whose identity is unknown is never taken for a check."""
    try:
        previous = load_evaluation(proj, dataset, team.id)
    except RecordError:
        return None  # another harness version wrote it: not the same question
    if previous is None:
        return None
    inference_state = previous.inference or {}
    same = (previous.run_key == team.run_key and previous.mode == settings.mode
            and inference_state.get("status") == "ok" and inference_state.get("runner") != PUBLISHED_OUTPUTS
            and set(wanted) <= set(previous.metrics))
    return previous if same and records.identity_mismatch(inference_state, settings) is None else None


def verify_team(proj: Project, team: Manifest, dataset: Dataset, settings: Settings, from_outputs: str | None = None,
                rerun: bool = False, progress: Progress | None = None) -> dict:
    """Produce (or reuse), score and check one team's outputs; return its verification row.

    from_outputs: None to run the team; '' for the published outputs the manifest declares; else a source.
    A team that published values of its model alone (published.model) and whose dataset is not here is
    checked on those (the model check: the network on the mini photographs), the dataset's values said to
    need it."""
    from harness.fetch import stand_ins

    stand_ins.refuse_to_compare(proj.metric_cache)
    published = rules.published_values(team, dataset.id)
    wanted = list(published["values"]) if published else list(settings.metrics)
    names = list(dict.fromkeys(list(settings.metrics) + wanted))
    if from_outputs is None and not rerun:
        previous = reusable_evaluation(proj, team, dataset.id, settings, wanted)
        if previous is not None:
            shown = roster.display_path(proj, proj.evaluation_file(dataset.id, team.id))
            note(progress, team.id, f"{team.id}: reusing {shown} (same run key, same device and runner)",
                 outcome=True)
            return rules.judge(team, dataset.id, previous, baseline_of(proj, team, dataset.id))
    if from_outputs is not None:
        dataset_files.check_checksums(dataset, proj.data_dir)
        collect_outputs(proj, team, dataset, from_outputs or None, progress)
    elif not team.runnable:
        return rules.judge(team, dataset.id, None)
    else:
        try:
            dataset_files.fetch(dataset, proj.data_dir, proj.downloads_dir, proj.dataset_pins)
        except DatasetError as absent:
            if published is None:  # nothing to compare with: the verdict says so
                return rules.judge(team, dataset.id, None)
            if dataset.id == data_mod.MODEL or not team.published(data_mod.MODEL):
                raise
            note(progress, team.id, f"{team.id}: '{dataset}' is not here ({absent.message}); checking its model alone")
            row = verify_team(proj, team, data_mod.get(data_mod.MODEL), settings, None, rerun, progress)
            return rules.without_dataset(team, dataset.id, row, absent)
        if not (team.entry.get("code_root") == "code" and os.environ.get(OVERRIDE_VARIABLE)):
            fetch_code(proj, team)  # also records where the code is, as the pipeline's code stage does
        _weights_or_architecture(proj, team, dataset, progress)
        infer(proj, team, dataset, settings, progress)
    evaluation = TeamEvaluation.from_dict(evaluate_team(proj, team, dataset, settings.given(metrics=names), progress))
    return rules.judge(team, dataset.id, evaluation, baseline_of(proj, team, dataset.id))


def _weights_or_architecture(proj: Project, team: Manifest, dataset: Dataset, progress: Progress | None) -> None:
    """The team's weights; where they are absent and only its model is checked, a select-model network is
    counted on its architecture alone (parameters, FLOPs, activations and convolutions need no trained
    values), and the run says so."""
    from harness.adapter.model_metrics import ARCHITECTURE_ONLY

    marker = proj.team_weights(team.id) / ARCHITECTURE_ONLY
    try:
        fetch_team_weights(proj, team, progress)
    except WeightsUnavailable as absent:
        if dataset.id != data_mod.MODEL or team.entry["kind"] != "select-model":
            raise
        write_json_atomic(marker, {"reason": absent.message})
        note(progress, team.id, f"{team.id}: {absent.message}; its model is counted on the architecture alone")
        return
    marker.unlink(missing_ok=True)


def baseline_of(proj: Project, team: Manifest, dataset: str) -> tuple[Manifest, TeamEvaluation | None] | None:
    """The challenge's baseline team and its evaluation on the dataset, when the challenge names one."""
    from harness.catalogue.challenges import get

    baseline = get(team.data["challenge"]).baseline
    if not baseline or baseline not in roster.team_ids(proj):
        return None
    try:
        evaluation = load_evaluation(proj, dataset, baseline)
    except RecordError:
        evaluation = None  # not this harness's: the ratio to it says why it is missing
    return roster.load(proj, baseline), evaluation


def audit(proj: Project, team_ids: list[str], dataset: Dataset, settings: Settings, from_outputs: str | None = None,
          rerun: bool = False, progress: Progress | None = None) -> list[dict]:
    """Verify every team; a team that cannot run, or fails, is its own row and the others carry on. A
    challenge's baseline goes first: the others' runtimes are ratios to its own. Each team's files go where
    harness.audit.dvc_record.place says: the pipeline's folders only for the pipeline's own run."""
    from harness.catalogue.challenges import catalogue

    baselines = {c.baseline for c in catalogue().values() if c.baseline}
    ordered = sorted(team_ids, key=lambda t: t not in baselines)
    rows = {}
    for team_id in ordered:
        team = roster.load(proj, team_id)
        target, _ = dvc_record.place(proj, team_id, dataset.id, settings, from_outputs)
        try:
            rows[team_id] = verify_team(target, team, dataset, settings, from_outputs, rerun, progress)
        except HarnessError as exc:
            rows[team_id] = Verification.failed_row(team, dataset.id, exc)
    return [rows[t] for t in team_ids]


def verifications(proj: Project, team_ids: list[str], dataset: str) -> list[dict]:
    """Each team verified from the evaluation already on disk (the pipeline's report stage); where the
    dataset is not here, from the check of its model alone, as verify_team does."""
    results = []
    params = audit_params.read(proj) if dvc_record.has_pipeline(proj) else None
    for team_id in team_ids:
        team = roster.load(proj, team_id)
        target, _ = dvc_record.place(proj, team_id, dataset, params, dvc_record.published_source(params),
                                   params.executor) if params else (proj, None)
        try:
            results.append(_verified_from_disk(target, team, dataset))
        except RecordError as exc:
            results.append(Verification.failed_row(team, dataset, exc))
    return results


def _verified_from_disk(proj: Project, team: Manifest, dataset: str) -> dict:
    evaluation = load_evaluation(proj, dataset, team.id)
    if evaluation is None and team.published(data_mod.MODEL):
        model = load_evaluation(proj, data_mod.MODEL, team.id)
        if model is not None:
            try:
                dataset_files.check_checksums(data_mod.get(dataset), proj.data_dir)
            except DatasetError as absent:
                row = rules.judge(team, data_mod.MODEL, model)
                return rules.without_dataset(team, dataset, row, absent)
    return rules.judge(team, dataset, evaluation, baseline_of(proj, team, dataset))


def write_report(proj: Project, results: list[dict], dataset: str, settings: Settings,
                 out_dir: Path | None = None) -> tuple[dict, list[Path]]:
    """report.json (with each team's evidence and the leaderboards), report.md, summary.csv and the page
    index.html; returns the report and the files written."""
    from harness.report import evidence, page

    built = evidence.enrich(report_mod.build(results, dataset, settings.as_params(), proj.root), proj)
    written = report_mod.write(built, out_dir or proj.report_dir)
    return built, written + [page.write(built, proj, out_dir or proj.report_dir)]


def all_passed(results: list[dict]) -> bool:
    """Every team reproduced, or is known in advance not to run."""
    return all(rules.passed(r) or r["verdict"] == "not_runnable" for r in results)
