"""The `harness` command line: parse, call the library, render. The only place that prints.

Exit codes: 0 success; 1 a check did not pass (a manifest is invalid, a team did not reproduce);
2 the command could not do its work (bad input, missing data, a download failed).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from . import data as data_mod
from . import evaluate as evaluate_mod
from . import evaluator as evaluator_mod
from . import inference, metric_weights, outputs as outputs_mod, registry, report as report_mod, runners
from . import slurm as slurm_mod
from . import verify as verify_mod
from . import weights as weights_mod
from .errors import HarnessError, ManifestError
from .fsutil import write_json_atomic
from .manifest import MANIFEST_NAME, load as load_manifest, render_template
from .metrics import ALL_SPECS, METRICS, parse_metric_list
from .project import Project

# Wide tables when the output is a file or a pipe (CI logs, dvc repro), the terminal's width otherwise.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)

EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2


class HarnessGroup(click.Group):
    """Renders typed library errors for people; tracebacks only with --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in exc.problems:
                err_console.print(f"[red]error[/red] {problem}", markup=True, soft_wrap=True)
            sys.exit(EXIT_CHECK_FAILED)
        except HarnessError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            err_console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
            if exc.hint:
                err_console.print(f"[dim]hint:[/dim] {exc.hint}", soft_wrap=True)
            sys.exit(EXIT_ERROR)


def project(ctx) -> Project:
    return ctx.obj["project"]


def params(ctx) -> dict:
    return project(ctx).params()


def progress_bar(transfer: bool = False) -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn()] if transfer else [MofNCompleteColumn()]
    return Progress(*columns, TimeElapsedColumn(), console=err_console, transient=False)


def transfer_progress(bar: Progress, label: str):
    """A download callback; the bar's line appears only once bytes actually move."""
    tasks = []

    def update(done: int, total: int | None):
        if not tasks:
            tasks.append(bar.add_task(label, total=total))
        bar.update(tasks[0], completed=done, total=total)

    return update


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="The harness checkout to work in (default: the nearest folder upwards with teams/).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of short error messages.")
@click.version_option(__version__, prog_name="harness")
@click.pass_context
def cli(ctx, root, debug):
    """Re-run NTIRE 2025 SR x4 models, score them as the organizers did, and check published numbers.

    Settings come from params.yaml and can be overridden per command. Exit codes: 0 success,
    1 a check did not pass, 2 an error stopped the command.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["project"] = Project(root.resolve()) if root else Project.find()


# --- catalogue ---------------------------------------------------------------------------------

@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
@click.option("--runnable", "only_runnable", is_flag=True, help="Only teams that can run as published.")
@click.option("--track", type=click.Choice(["restoration", "perceptual"]),
              help="Only teams ranked in this track (restoration: Track 1 by PSNR; perceptual: Track 2 by score).")
@click.option("--challenge", type=click.Choice(["ntire2025-sr-x4", "mini"]), help="Only teams of this suite.")
@click.pass_context
def list_teams(ctx, as_json, only_runnable, track, challenge):
    """List every team: ranks, headline published numbers, status, determinism and recipe."""
    teams, problems = registry.load_all(project(ctx))
    rows = []
    for team in teams:
        if (only_runnable and not team.runnable) or (track and track not in team.data.get("tracks", [])) \
                or (challenge and team.data["challenge"] != challenge):
            continue
        dataset, published = next(iter(team.data.get("published", {}).items()), (None, {}))
        rows.append({"id": team.id, "name": team.name, "challenge": team.data["challenge"],
                     "runnable": team.runnable, "determinism": team.determinism["class"],
                     "entry": team.entry["kind"], "recipe": (team.container or {}).get("recipe"),
                     "dataset": dataset, "ranks": published.get("ranks", {}),
                     "published": published.get("values", {})})
    rows.sort(key=lambda r: (r["challenge"], r["ranks"].get("track1", 99), r["id"]))
    if as_json:
        click.echo(json.dumps({"teams": rows, "invalid": [p.as_dict() for p in problems]}, indent=2))
    else:
        table = Table(title=f"{len(rows)} team(s)")
        for column in ("id", "name", "T1", "T2", "PSNR", "score", "on", "status", "determinism", "recipe"):
            table.add_column(column, justify="right" if column in ("T1", "T2", "PSNR", "score") else "left")
        for row in rows:
            pub = row["published"]
            table.add_row(row["id"], row["name"], str(row["ranks"].get("track1", "")),
                          str(row["ranks"].get("track2", "")), _cell(pub.get("psnr"), 2),
                          _cell(pub.get("perceptual_score"), 4), row["dataset"] or "—",
                          "runnable" if row["runnable"] else "[yellow]not runnable[/yellow]", row["determinism"],
                          row["recipe"] or row["entry"])
        console.print(table)
        for problem in problems:
            err_console.print(f"[red]invalid[/red] {problem}")
    if problems:
        sys.exit(EXIT_CHECK_FAILED)


def _cell(value, digits):
    return "—" if value is None else f"{value:.{digits}f}"


@cli.command()
@click.argument("team_id")
@click.pass_context
def show(ctx, team_id):
    """Show one team's manifest in full, with its status, known defects and hashes."""
    team = registry.load(project(ctx), team_id)
    console.print(f"[bold]{team.name}[/bold] ({team.id})  manifest sha256 {team.hash[:12]}…  run key {team.run_key[:12]}…")
    status = team.data["status"]
    console.print("status: " + ("runnable" if team.runnable else "not runnable"))
    for reason in status.get("reasons", []):
        console.print(f"  reason: {reason}")
    for defect in status.get("defects", []):
        console.print(f"  known defect: {defect}")
    click.echo(team.raw.decode())


@cli.command()
@click.argument("targets", nargs=-1)
@click.pass_context
def validate(ctx, targets):
    """Check manifests against the schema and the semantic rules.

    TARGETS are team ids or paths to manifest files or team folders; none means every team.
    Exits 1 if any manifest has a problem; each problem names the file, field, value and rule.
    """
    proj = project(ctx)
    paths = []
    for target in targets or registry.team_ids(proj):
        candidate = Path(target)
        if candidate.is_dir():
            candidate = candidate / MANIFEST_NAME
        if candidate.suffix in (".yaml", ".yml") and candidate.exists():
            paths.append(candidate)
        else:
            paths.append(proj.teams_dir / target / MANIFEST_NAME)
    failed = 0
    for path in paths:
        shown = registry.display_path(proj, path)
        try:
            if not path.exists() and path.parent.parent == proj.teams_dir:
                registry.load(proj, path.parent.name)  # raises TeamNotFound with suggestions
            load_manifest(path, shown)
            console.print(f"[green]ok[/green]    {shown}")
        except ManifestError as exc:
            failed += 1
            for problem in exc.problems:
                console.print(f"[red]error[/red] {problem}", soft_wrap=True)
    console.print(f"{len(paths) - failed} valid, {failed} invalid")
    if failed:
        sys.exit(EXIT_CHECK_FAILED)


@cli.command("new-team")
@click.argument("team_id")
@click.pass_context
def new_team(ctx, team_id):
    """Scaffold teams/TEAM_ID/manifest.yaml from teams/_template/."""
    import re

    proj = project(ctx)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", team_id):
        raise HarnessError(f"'{team_id}' is not a valid team id",
                           hint="use lower-case letters, digits, '-' and '_', starting with a letter or digit")
    target = proj.teams_dir / team_id
    if target.exists():
        raise HarnessError(f"{registry.display_path(proj, target)} already exists")
    shutil.copytree(proj.template_dir, target)
    (target / MANIFEST_NAME).write_text(render_template(proj.template_dir / MANIFEST_NAME, team_id))
    console.print(f"created {registry.display_path(proj, target / MANIFEST_NAME)}; edit it, then run "
                  f"`harness validate {team_id}`")


# --- fetching ----------------------------------------------------------------------------------

@cli.group()
def fetch():
    """Fetch datasets, team weights and metric weights (checksummed, resumable)."""


@fetch.command("data")
@click.argument("dataset", required=False)
@click.pass_context
def fetch_data(ctx, dataset):
    """Build or download DATASET into data/ and verify its checksums (default: params.yaml)."""
    dataset = dataset or params(ctx)["dataset"]
    proj = project(ctx)
    with progress_bar(transfer=True) as bar:
        root = data_mod.fetch(dataset, proj.data_dir, proj.downloads_dir, proj.dataset_pins,
                              lambda name: transfer_progress(bar, name))
    console.print(f"dataset '{dataset}' ready in {registry.display_path(project(ctx), root)} (checksums verified)")


@fetch.command("weights")
@click.argument("team_ids", nargs=-1)
@click.option("--all", "all_teams", is_flag=True, help="Fetch the weights of every team in params.yaml.")
@click.option("--record-failure", is_flag=True,
              help="Write a failure into weights/<team>/failure.json and exit 0 (for pipelines).")
@click.pass_context
def fetch_weights(ctx, team_ids, all_teams, record_failure):
    """Fetch the weights files of TEAM_IDS into weights/<team>/ (nothing for non-runnable teams)."""
    proj = project(ctx)
    if all_teams:
        team_ids = params(ctx)["teams"]
    if not team_ids:
        raise HarnessError("name at least one team, or --all")
    for team_id in team_ids:
        team = registry.load(proj, team_id)
        folder = weights_mod.weights_dir(proj.weights_dir, team)
        (folder / weights_mod.FAILURE).unlink(missing_ok=True)
        if not team.runnable or params(ctx)["source"] == "outputs":
            write_json_atomic(folder / weights_mod.LISTING, {})
            console.print(f"{team.id}: no weights needed ({'not runnable' if not team.runnable else 'outputs source'})")
            continue
        try:
            _fetch_team_weights(proj, team)
        except HarnessError as exc:
            if not record_failure:
                raise
            write_json_atomic(folder / weights_mod.FAILURE, {"kind": "weights_unavailable", "message": exc.message,
                                                             "hint": exc.hint})
            err_console.print(f"[yellow]{team.id}: weights unavailable[/yellow]: {exc.message}", soft_wrap=True)


def _fetch_team_weights(proj: Project, team) -> None:
    if not team.weights:
        weights_mod.fetch(team, proj.weights_dir, proj.downloads_dir, proj.root)
        console.print(f"{team.id}: no weights to fetch")
        return
    with progress_bar(transfer=True) as bar:
        paths = weights_mod.fetch(team, proj.weights_dir, proj.downloads_dir, proj.root,
                                  transfer_progress(bar, f"{team.id} weights"))
    for path in paths:
        console.print(f"{team.id}: {registry.display_path(proj, path)}")


@fetch.command("metric-weights")
@click.argument("metric_names", nargs=-1)
@click.option("--best-effort", is_flag=True,
              help="Report files that could not be fetched and exit 0; those metrics stay unavailable.")
@click.pass_context
def fetch_metric_weights(ctx, metric_names, best_effort):
    """Fetch the weights of the learned metrics (all of them by default) into the harness's cache.

    The cache is .cache/metric-weights (or $HARNESS_METRIC_WEIGHTS); evaluation reads it with every
    hub offline. Sources: pyiqa's weight repository, torchvision, OpenAI CLIP, the timm ViT on the
    Hugging Face hub, and NIQE's MATLAB parameters from basicsr's source distribution on PyPI.
    """
    proj = project(ctx)
    names = parse_metric_list(list(metric_names)) if metric_names else \
        [n for n, s in METRICS.items() if s.weight_files]
    with progress_bar(transfer=True) as bar:
        status = metric_weights.fetch(names, proj.metric_cache, proj.downloads_dir,
                                      transfer_progress(bar, "metric weights"))
    for rel, state in status.items():
        console.print(f"{state:8} {rel}", soft_wrap=True)
    failed = [rel for rel, state in status.items() if state.startswith("failed")]
    if failed:
        message = f"{len(failed)} file(s) could not be fetched; their metrics stay unavailable"
        if not best_effort:
            raise HarnessError(message, hint="check the network, or place the files in the cache by hand")
        err_console.print(f"[yellow]warning:[/yellow] {message}")


@cli.group("data")
def data_group():
    """Datasets whose images the user supplies (the NTIRE 2025 test HR was never public)."""


@data_group.command("import")
@click.argument("dataset")
@click.option("--hr", metavar="PATH|URL", help="Folder or .zip/.tar archive of HR PNGs, or an http(s) URL of one.")
@click.option("--lr", metavar="PATH|URL", help="Folder or .zip/.tar archive of LR PNGs, or an http(s) URL of one.")
@click.pass_context
def data_import(ctx, dataset, hr, lr):
    """Import DATASET's images: checks the expected names and HR = LR x4, then records checksums.

    For ntire2025-test the LR images are public (the challenge's test input) but the HR images were
    never released: they come from the challenge organizers. Nothing changes unless every check passes.
    """
    proj = project(ctx)
    with progress_bar(transfer=True) as bar:
        root = data_mod.import_dataset(dataset, proj.data_dir, hr, lr, proj.downloads_dir,
                                       lambda name: transfer_progress(bar, name))
    console.print(f"imported into {registry.display_path(proj, root)} (checksums recorded)")


# --- running -----------------------------------------------------------------------------------

def _prepare_inputs(proj: Project, team, dataset: str):
    data_mod.verify(dataset, proj.data_dir)
    failure = weights_mod.weights_dir(proj.weights_dir, team) / weights_mod.FAILURE
    if failure.exists():
        recorded = json.loads(failure.read_text())
        raise HarnessError(f"{team.id}: weights unavailable: {recorded['message']}", hint=recorded.get("hint"))
    missing = weights_mod.missing(team, proj.weights_dir)
    if missing:
        raise HarnessError(f"{team.id}: weights missing: {', '.join(missing)}",
                           hint=f"run `harness fetch weights {team.id}`")


def _infer(proj: Project, team, dataset: str, runner_name: str, device: str, gpus: str | None = None) -> dict:
    settings = {**proj.params()["docker"], **({"gpus": gpus} if gpus else {})}
    runner = runners.get(runner_name, settings)
    if runner.selection:
        err_console.print(f"{team.id}: runner {runner.selection}", soft_wrap=True)
    lr_dir = data_mod.get(dataset).lr_dir(proj.data_dir)
    with progress_bar() as bar:
        task = bar.add_task(f"{team.id}", total=None)

        def update(run, runs, done, total, name):
            bar.update(task, description=f"{team.id} run {run}/{runs} {name}", completed=done, total=total)

        record = inference.infer_team(team, runner, lr_dir, proj.runs_dir, dataset,
                                      weights_mod.weights_dir(proj.weights_dir, team), device, proj.root, update)
    return record


def _infer_on_slurm(proj: Project, team, dataset: str, runner_name: str, device: str, settings: dict) -> dict:
    """The team's Slurm job: none when its runs are complete; submitted when this manifest has none yet.
    A job that ended (failed, cancelled) is not resubmitted here: `harness jobs submit` does that."""
    if slurm_mod.is_complete(proj, team, dataset):
        err_console.print(f"{team.id}: runs complete for this manifest; no job submitted")
        return inference.load_record(proj.runs_dir, dataset, team.id)
    entry = slurm_mod.load_jobs(proj, dataset)["jobs"].get(team.id)
    if entry is None or entry["run_key"] != team.run_key:
        slurm_mod.submit(proj, [team], dataset, runner_name, device, settings["docker"], settings["slurm"])
    shown = []

    def on_poll(summary, state):  # one line per change, so that logs show it too
        line = (f"{team.id}: job {state.lower()}; audit jobs: {summary['queued']} queued, "
                f"{summary['running']} running, {summary['done']} done")
        if not shown or shown[-1] != line:
            shown.append(line)
            err_console.print(line)

    record = slurm_mod.wait(proj, team, dataset, settings["slurm"], on_poll)
    err_console.print(f"{team.id}: Slurm job {record['slurm_job_id']} ended {record['slurm_state']}")
    return record


def _collect_outputs(proj: Project, team, dataset: str, source: str | None) -> dict:
    source = source or outputs_mod.default_source(team, dataset)
    if not source:
        raise HarnessError(f"{team.id} declares no published outputs for '{dataset}'",
                           hint="pass a folder, archive, URL or gdrive:<id>")
    with progress_bar(transfer=True) as bar:
        return outputs_mod.collect(team, dataset, source, proj.runs_dir, proj.downloads_dir,
                                   transfer_progress(bar, f"{team.id} outputs"))


def _print_record(record: dict) -> None:
    if record["status"] == "ok" and record["runner"] == outputs_mod.RUNNER:
        console.print(f"{record['team']}: published outputs collected from {record['source']}")
        return
    if record["status"] == "ok":
        console.print(f"{record['team']}: {len(record['runs'])} run(s) ok with the {record['runner']} runner "
                      f"on {record['device']} in {record['wall_s']:.1f} s")
        return
    failure = record["failure"]
    err_console.print(f"[red]{record['team']}: {record['status']} ({failure['kind']})[/red]: {failure['message']}",
                      soft_wrap=True)
    if failure.get("hint"):
        err_console.print(f"hint: {failure['hint']}")
    if failure.get("log_tail"):
        err_console.print("[dim]log tail:[/dim]\n" + failure["log_tail"], markup=False)


@cli.command()
@click.argument("team_id")
@click.option("--dataset", help="Dataset to run on (default: params.yaml).")
@click.option("--device", help="cpu, cuda or cuda:N (default: params.yaml).")
@click.option("--runner", "runner_name", help=f"How to run: {', '.join(runners.RUNNERS)} (default: params.yaml).")
@click.option("--gpus", help="With the docker runner and a cuda device: GPUs passed through, as docker run "
                              "--gpus takes them: all, a count, or device=ID[,ID] (default: params.yaml).")
@click.option("--record-failure", is_flag=True,
              help="On failure, write the typed failure into the run record and exit 0 (for pipelines, so "
                   "one team's failure does not stop the others).")
@click.pass_context
def infer(ctx, team_id, dataset, device, runner_name, gpus, record_failure):
    """Run TEAM_ID on the dataset's LR images into runs/<dataset>/<team>/run-<k>/.

    A nondeterministic team runs determinism.repeats times. Outputs carry the input names and a
    provenance.json; a run's folder appears only once it is complete and checked. With
    `source: outputs` in params.yaml, the team's published outputs are collected instead.
    """
    proj, settings = project(ctx), params(ctx)
    dataset = dataset or settings["dataset"]
    team = registry.load(proj, team_id)
    if settings["source"] == "outputs":
        record = _collect_outputs(proj, team, dataset, settings["outputs"])
    else:
        try:
            if team.runnable:
                _prepare_inputs(proj, team, dataset)
        except HarnessError as exc:
            if not record_failure:
                raise
            record = inference.write_failed_record(team, proj.runs_dir, dataset, "inputs_unavailable", exc.message,
                                                   exc.hint)
        else:
            runner_name, device = runner_name or settings["runner"], device or settings["device"]
            if settings["executor"] == "slurm" and team.runnable:
                record = _infer_on_slurm(proj, team, dataset, runner_name, device, settings)
            else:
                record = _infer(proj, team, dataset, runner_name, device, gpus)
    _print_record(record)
    if record["status"] == "failed" and not record_failure:
        sys.exit(EXIT_CHECK_FAILED)


@cli.command()
@click.option("--sr", "sr_dir", type=click.Path(path_type=Path), help="Folder of output PNGs.")
@click.option("--hr", "hr_dir", type=click.Path(path_type=Path), help="Folder of ground-truth PNGs.")
@click.option("--team", "team_id", help="Evaluate every run of this team instead of one --sr folder.")
@click.option("--dataset", help="With --team: the dataset (default: params.yaml).")
@click.option("--metrics", "metric_list", help=f"Comma-separated, from: {', '.join(ALL_SPECS)} "
                                               "(default: params.yaml).")
@click.option("--mode", type=click.Choice(evaluate_mod.MODES),
              help="faithful: the organizers' repairs, each reported; strict: such images fail (default: params.yaml).")
@click.option("--device", help="Device for the learned metrics (default: cpu).", default="cpu")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result here (with --team, default: evaluations/<dataset>/<team>.json).")
@click.option("--evaluator", "evaluator_name", type=click.Choice(("local", "docker")),
              help="With --team: score here, or in the evaluator image with no network (default: params.yaml).")
@click.pass_context
def evaluate(ctx, sr_dir, hr_dir, team_id, dataset, metric_list, mode, device, json_out, evaluator_name):
    """Score outputs against ground truth exactly as the organizers did.

    Outputs are every *.png in --sr, paired with --hr by removing 'x4' from the name. PSNR/SSIM on
    the Y channel after a crop to a multiple of 4 and a 4-pixel shave; the learned metrics through
    pyiqa from the harness's weight cache. Metrics whose weights are absent are reported as
    unavailable, never as 0.
    """
    proj, settings = project(ctx), params(ctx)
    names = parse_metric_list(metric_list) if metric_list else settings["metrics"]
    mode = mode or settings["mode"]
    if team_id:
        if sr_dir or hr_dir:
            raise click.UsageError("use either --team or --sr/--hr")
        dataset = dataset or settings["dataset"]
        result = _evaluate_team(proj, registry.load(proj, team_id), dataset, names, mode, device, json_out,
                                evaluator_name or settings["evaluator"])
        _print_team_evaluation(result)
        return
    if not (sr_dir and hr_dir and json_out):
        raise click.UsageError("--sr, --hr and --json are required (or use --team)")
    with progress_bar() as bar:
        task = bar.add_task("evaluating", total=None)
        result = evaluate_mod.evaluate(sr_dir, hr_dir, names, mode, proj.metric_cache, device,
                                       lambda done, total, name: bar.update(task, completed=done, total=total))
    payload = {**result.as_dict(), "sr": str(sr_dir), "hr": str(hr_dir)}
    write_json_atomic(json_out, payload)
    _print_evaluation(payload)
    if result.status != "ok":
        sys.exit(EXIT_CHECK_FAILED)


def _evaluate_team(proj: Project, team, dataset: str, names, mode, device, json_out=None,
                   evaluator: str = "local") -> dict:
    if evaluator == "docker":
        with err_console.status(f"evaluating {team.id} in the evaluator image") as status:
            result = evaluator_mod.evaluate_team_in_image(proj, team, dataset, names, mode, proj.params()["docker"],
                                                          lambda line: status.update(f"building evaluator: {line[:100]}"))
    else:
        record = inference.load_record(proj.runs_dir, dataset, team.id)
        hr_dir = data_mod.ground_truth(dataset, proj.data_dir)
        run_dirs = inference.run_dirs(proj.runs_dir, dataset, team.id)
        with progress_bar() as bar:
            task = bar.add_task(f"evaluating {team.id}", total=None)

            def update(run, runs, done, total, name):
                bar.update(task, description=f"evaluating {team.id} run {run}/{runs}", completed=done, total=total)

            result = evaluate_mod.evaluate_team(team, record, run_dirs, hr_dir, names, mode, proj.metric_cache,
                                                device, update)
        result["dataset"] = dataset
        result["evaluator"] = evaluator_mod.local_description()
    write_json_atomic(json_out or evaluate_mod.evaluation_path(proj.evaluations_dir, dataset, team.id), result)
    write_json_atomic(proj.metrics_dir / dataset / f"{team.id}.json", evaluate_mod.mean_metrics(result))
    return result


def _print_evaluation(payload: dict) -> None:
    table = Table(title=f"{payload['n_images']} image(s), {payload['mode']} mode")
    for column, justify in (("metric", "left"), ("mean", "right"), ("note", "left")):
        table.add_column(column, justify=justify)
    for name in payload["metrics"]:
        if name in payload["mean"]:
            table.add_row(name, f"{payload['mean'][name]:.{ALL_SPECS[name].precision + 2}f}", "")
        elif name in payload["unavailable"]:
            gap = payload["unavailable"][name]
            table.add_row(name, "unavailable", f"{gap['reason']}; fetch with `{gap['fetch']}`")
    console.print(table)
    for finding in payload["findings"]:
        console.print(f"[yellow]{finding['kind']}[/yellow] {finding['image']}: {finding['message']}")
    for image, message in payload["failed_images"].items():
        err_console.print(f"[red]failed[/red] {image}: {message}")


def _print_team_evaluation(result: dict) -> None:
    inference_state = result["inference"]
    if inference_state["status"] != "ok":
        failure = inference_state["failure"] or {}
        console.print(f"{result['team']}: inference {inference_state['status']} "
                      f"({failure.get('kind')}): nothing to score")
        return
    for run in result["runs"]:
        if run.get("status") == "ok":
            console.print(f"[bold]{result['team']} {run['run']}[/bold]")
            _print_evaluation(run)
        else:
            console.print(f"[red]{result['team']} {run['run']}: {run.get('failure')}[/red]")


# --- Slurm jobs --------------------------------------------------------------------------------

@cli.group("jobs", invoke_without_command=True)
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.pass_context
def jobs(ctx, dataset):
    """List the audit's Slurm jobs and their states (from sacct), one row per team."""
    ctx.obj["jobs_dataset"] = dataset or params(ctx)["dataset"]
    if ctx.invoked_subcommand:
        return
    proj, dataset = project(ctx), ctx.obj["jobs_dataset"]
    listing = slurm_mod.load_jobs(proj, dataset)["jobs"]
    if not listing:
        console.print(f"no Slurm jobs recorded for '{dataset}'")
        return
    states = slurm_mod.sacct_states([e["job_id"] for e in listing.values()])
    table = Table(title=f"Slurm jobs for '{dataset}'")
    for column in ("team", "job", "state", "submitted", "array"):
        table.add_column(column)
    for team_id, entry in sorted(listing.items()):
        table.add_row(team_id, entry["job_id"], states[entry["job_id"]], entry["submitted"],
                      "yes" if entry.get("array") else "")
    console.print(table)
    summary = slurm_mod.counts(states)
    console.print(f"{summary['queued']} queued, {summary['running']} running, {summary['done']} done")


@jobs.command("submit")
@click.pass_context
def jobs_submit(ctx):
    """Submit one Slurm job per team (as arrays) whose runs are not complete; with executor: local, nothing.

    The pipeline's `submit` stage runs this so that every team's job is queued at once; each
    `infer@<team>` stage then waits for its own job.
    """
    proj, settings = project(ctx), params(ctx)
    dataset = ctx.obj["jobs_dataset"]
    path = slurm_mod.jobs_path(proj, dataset)
    if settings["executor"] != "slurm":
        if not path.exists():
            write_json_atomic(path, {"jobs": {}})
        console.print("executor: local; no Slurm jobs")
        return
    teams = [registry.load(proj, t) for t in settings["teams"]]
    submitted = slurm_mod.submit(proj, teams, dataset, settings["runner"], settings["device"], settings["docker"],
                                 settings["slurm"])
    skipped = [t.id for t in teams if t.id not in submitted]
    for team_id, entry in submitted.items():
        console.print(f"{team_id}: Slurm job {entry['job_id']}")
    if skipped:
        console.print(f"not submitted (complete or not runnable): {', '.join(skipped)}")


@cli.command()
@click.argument("team_ids", nargs=-1)
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.pass_context
def cancel(ctx, team_ids, dataset):
    """Cancel the audit's Slurm jobs that have not ended (all, or those of TEAM_IDS).

    A cancelled team's record says `cancelled`; the other teams are not touched.
    """
    proj = project(ctx)
    cancelled = slurm_mod.cancel(proj, dataset or params(ctx)["dataset"], list(team_ids) or None)
    console.print(f"cancelled {len(cancelled)} job(s)" + (f": {', '.join(cancelled)}" if cancelled else ""))


# --- verification and report -------------------------------------------------------------------

FROM_OUTPUTS_HELP = ("Score the team's published output images instead of running it: a folder, a .zip/.tar "
                     "archive, an http(s) URL or gdrive:<id>; alone, the source the manifest declares.")


@cli.command()
@click.argument("team_id")
@click.option("--dataset", help="Dataset to verify on (default: params.yaml).")
@click.option("--device", help="Device for inference (default: params.yaml).")
@click.option("--runner", "runner_name", help="Runner for inference: auto, local or docker (default: params.yaml).")
@click.option("--gpus", help="With the docker runner and a cuda device: GPUs passed through, as docker run "
                              "--gpus takes them: all, a count, or device=ID[,ID] (default: params.yaml).")
@click.option("--mode", type=click.Choice(evaluate_mod.MODES), help="Evaluation mode (default: params.yaml).")
@click.option("--from-outputs", "from_outputs", is_flag=False, flag_value="", default=None, metavar="[SOURCE]",
              help=FROM_OUTPUTS_HELP)
@click.option("--rerun", is_flag=True, help="Run inference and evaluation again even if results for the "
                                            "same manifest run key exist.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the verification (published, reproduced, delta, tolerance, ok per metric) here.")
@click.pass_context
def verify(ctx, team_id, dataset, device, runner_name, gpus, mode, from_outputs, rerun, json_out):
    """Check one team's published numbers: fetch, run, score, compare. Exits 0 only if reproduced.

    Earlier results are reused when the team's run key (the manifest minus its published numbers,
    plus the team folder's files) is unchanged; --rerun forces a fresh run.
    """
    proj, settings = project(ctx), params(ctx)
    dataset = dataset or settings["dataset"]
    team = registry.load(proj, team_id)
    result = _verify_team(proj, team, dataset, settings, mode or settings["mode"], from_outputs,
                          runner_name or settings["runner"], device or settings["device"], rerun, gpus)
    if json_out:
        write_json_atomic(json_out, result)
    _print_verification(result)
    if not verify_mod.passed(result):
        sys.exit(EXIT_CHECK_FAILED)


def _verify_team(proj: Project, team, dataset: str, settings: dict, mode: str, from_outputs: str | None,
                 runner_name: str, device: str, rerun: bool, gpus: str | None = None) -> dict:
    """Produce (or reuse), score and check one team's outputs."""
    evaluation_file = evaluate_mod.evaluation_path(proj.evaluations_dir, dataset, team.id)
    published = team.published(dataset)
    wanted = list(published["values"]) if published else settings["metrics"]
    names = list(dict.fromkeys(settings["metrics"] + wanted))
    previous = json.loads(evaluation_file.read_text()) if evaluation_file.exists() else None
    reusable = (from_outputs is None and previous is not None and not rerun
                and previous.get("run_key") == team.run_key and previous.get("mode") == mode
                and previous["inference"]["status"] == "ok"
                and previous["inference"].get("runner") != outputs_mod.RUNNER
                and set(wanted) <= set(previous.get("metrics", [])))
    if reusable:
        console.print(f"{team.id}: reusing {registry.display_path(proj, evaluation_file)} (same run key)")
        return verify_mod.verify(team, dataset, previous)
    if from_outputs is not None:
        data_mod.verify(dataset, proj.data_dir)
        record = _collect_outputs(proj, team, dataset, from_outputs or None)
    elif not team.runnable:
        return verify_mod.verify(team, dataset, None)
    else:
        data_mod.fetch(dataset, proj.data_dir, proj.downloads_dir, proj.dataset_pins)
        _fetch_team_weights(proj, team)
        record = _infer(proj, team, dataset, runner_name, device, gpus)
    _print_record(record)
    return verify_mod.verify(team, dataset, _evaluate_team(proj, team, dataset, names, mode, "cpu",
                                                           evaluator=settings["evaluator"]))


@cli.command()
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.option("--teams", "team_list", help="Comma-separated team ids (default: params.yaml's teams).")
@click.option("--from-outputs", "from_outputs", is_flag=False, flag_value="", default=None, metavar="[SOURCE]",
              help=FROM_OUTPUTS_HELP + " A source holding every team's folder is narrowed to each team's own.")
@click.option("--mode", type=click.Choice(evaluate_mod.MODES), help="Evaluation mode (default: params.yaml).")
@click.option("--rerun", is_flag=True, help="Ignore earlier results.")
@click.pass_context
def audit(ctx, dataset, team_list, from_outputs, mode, rerun):
    """Verify every team and write the report: the whole audit without DVC.

    A team that cannot run, or fails, is reported with its reason; the others carry on.
    Exits 1 unless every runnable team reproduced.
    """
    proj, settings = project(ctx), params(ctx)
    dataset = dataset or settings["dataset"]
    team_ids = [t.strip() for t in team_list.split(",")] if team_list else settings["teams"]
    results = []
    for team_id in team_ids:
        team = registry.load(proj, team_id)
        try:
            results.append(_verify_team(proj, team, dataset, settings, mode or settings["mode"], from_outputs,
                                        settings["runner"], settings["device"], rerun))
        except HarnessError as exc:  # one team's trouble is its own row, not the end of the audit
            results.append({"team": team.id, "name": team.name, "dataset": dataset, "verdict": "failed",
                            "failure": {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint},
                            "determinism": team.determinism["class"], "runs": 0, "metrics": {},
                            "unverified": [], "findings": [], "exact_outputs": None})
    _write_report(proj, results, dataset, {**settings, "mode": mode or settings["mode"]}, proj.report_dir)
    if any(not verify_mod.passed(r) and r["verdict"] != "not_runnable" for r in results):
        sys.exit(EXIT_CHECK_FAILED)


def _print_verification(result: dict) -> None:
    table = Table(title=f"{result['team']} on {result['dataset']}: {report_mod.verdict_label(result)}")
    for column in ("metric", "published", "reproduced", "delta", "tolerance", "verdict"):
        table.add_column(column, justify="right" if column not in ("metric", "verdict") else "left")
    for name, row in result["metrics"].items():
        digits = (row["precision"] if row["precision"] is not None else 4) + 2
        if row["reproduced"] is None:
            table.add_row(name, report_mod.fmt(row["published"], row["precision"]), "—", "—",
                          f"{row['tolerance']:.4f}", f"unavailable: `{row['fetch']}`")
            continue
        reproduced = report_mod.fmt(row["reproduced"], digits)
        if row.get("spread") is not None:
            reproduced += f" (runs {report_mod.fmt(min(row['run_values']), digits)}…"
            reproduced += f"{report_mod.fmt(max(row['run_values']), digits)})"
        table.add_row(name, report_mod.fmt(row["published"], row["precision"]), reproduced,
                      f"{row['delta']:+.{digits}f}", f"{row['tolerance']:.{digits}f}",
                      "[green]ok[/green]" if row["ok"] else "[red]diverged[/red]")
    console.print(table)
    if result.get("failure"):
        failure = result["failure"]
        console.print(f"[red]{result['verdict']} ({failure['kind']})[/red]: {failure['message']}", soft_wrap=True)
        if failure.get("hint"):
            console.print(f"hint: {failure['hint']}")
    if result.get("exact_outputs") is not None:
        console.print("outputs bit-identical to the reference: " + ("yes" if result["exact_outputs"] else "no"))
    for name, row in result["metrics"].items():
        if row.get("per_image"):
            spec = ALL_SPECS[name]
            ranked = sorted(((v, k) for k, v in row["per_image"].items() if v is not None),
                            reverse=spec.lower_better)
            worst = ", ".join(f"{stem} {value:.{spec.precision + 2}f}" for value, stem in ranked[:5])
            console.print(f"[red]{name}[/red] per image, worst first: {worst}")
    for finding in result.get("findings", []):
        console.print(f"[yellow]{finding['kind']}[/yellow] {finding.get('run', '')} {finding['image']}: "
                      f"{finding['message']}")


@cli.command()
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.option("--teams", "team_list", help="Comma-separated team ids (default: params.yaml).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.json and summary.csv (default: report/).")
@click.option("--show", is_flag=True, help="Print the report already in --out instead of making a new one.")
@click.option("--check", is_flag=True, help="Exit 1 unless every runnable team reproduced.")
@click.pass_context
def report(ctx, dataset, team_list, out_dir, show, check):
    """Verify every team from its evaluation and write the audit report; prints a table and a SUMMARY line."""
    proj, settings = project(ctx), params(ctx)
    out_dir = out_dir or proj.report_dir
    if show:
        path = out_dir / "report.json"
        if not path.exists():
            raise HarnessError(f"no report in {registry.display_path(proj, out_dir)}",
                               hint="run `dvc repro` or `harness report`")
        built = json.loads(path.read_text())
        results = built["teams"]
        _print_report_table(results, built["dataset"])
    else:
        dataset = dataset or settings["dataset"]
        team_ids = [t.strip() for t in team_list.split(",")] if team_list else settings["teams"]
        results = []
        for team_id in team_ids:
            team = registry.load(proj, team_id)
            path = evaluate_mod.evaluation_path(proj.evaluations_dir, dataset, team.id)
            evaluation = json.loads(path.read_text()) if path.exists() else None
            results.append(verify_mod.verify(team, dataset, evaluation))
        _write_report(proj, results, dataset, settings, out_dir)
        return _exit_on_check(check, results)
    console.print(built["summary"])
    _exit_on_check(check, results)


def _exit_on_check(check: bool, results: list[dict]) -> None:
    if check and any(r["verdict"] not in ("exact", "reproduced", "not_runnable") for r in results):
        sys.exit(EXIT_CHECK_FAILED)


def _write_report(proj: Project, results: list[dict], dataset: str, settings: dict, out_dir: Path) -> None:
    """Build, print and write the report (report.md, report.json, summary.csv) with its SUMMARY line."""
    built = report_mod.build(results, dataset, settings, proj.root)
    _print_report_table(results, dataset)
    for path in report_mod.write(built, out_dir):
        console.print(f"wrote {registry.display_path(proj, path)}")
    console.print(built["summary"])


def _print_report_table(results: list[dict], dataset: str) -> None:
    names = report_mod.metric_names(results)
    table = Table(title=f"Audit on '{dataset}': published / reproduced")
    table.add_column("team")
    table.add_column("verdict")
    for name in names:
        table.add_column(ALL_SPECS[name].title, justify="right")
    colours = {"exact": "green", "reproduced": "green", "diverged": "red", "failed": "red",
               "not_runnable": "yellow"}
    for result in results:
        cells = [report_mod.cell(result["metrics"].get(name), ("[green]✓[/green]", "[red]✗[/red]")) for name in names]
        colour = colours[result["verdict"]]
        table.add_row(result["team"], f"[{colour}]{report_mod.verdict_label(result)}[/{colour}]", *cells)
    console.print(table)


def main():
    cli(obj={})


if __name__ == "__main__":
    main()
