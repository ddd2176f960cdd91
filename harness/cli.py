"""The `harness` command line: parse, call the library (harness.audit and friends), render. The only
place that prints and picks exit codes. Heavy modules are imported inside the commands that need them,
so that `harness --help` starts at once.

Exit codes: 0 success; 1 a check did not pass (a manifest is invalid, a team did not reproduce);
2 the command could not do its work (bad input, missing data, a download failed).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from . import __version__, settings
from .errors import HarnessError, ManifestError
from .project import Project

EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2


class _Consoles:
    """rich consoles, made on first use; wide tables when the output is a file or a pipe (CI, dvc)."""

    def __getattr__(self, name):
        from rich.console import Console

        width = None if sys.stdout.isatty() else 160
        self.out = Console(highlight=False, width=width)
        self.err = Console(stderr=True, highlight=False, width=width)
        return getattr(self, name)


consoles = _Consoles()


def out(*args, **kwargs) -> None:
    consoles.out.print(*args, **kwargs)


def err(*args, **kwargs) -> None:
    consoles.err.print(*args, **kwargs)


class HarnessGroup(click.Group):
    """Renders typed library errors for people; tracebacks only with --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in exc.problems:
                err(f"[red]error[/red] {problem}", markup=True, soft_wrap=True)
            sys.exit(EXIT_CHECK_FAILED)
        except HarnessError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            err(f"[red]error:[/red] {exc.message}", soft_wrap=True)
            if exc.hint:
                err(f"[dim]hint:[/dim] {exc.hint}", soft_wrap=True)
            sys.exit(EXIT_ERROR)
        except OSError as exc:  # a path that cannot be created, read or written
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = f" {exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "") if exc.filename else ""
            err(f"[red]error:[/red]{where}: {exc.strerror or exc}", soft_wrap=True)
            sys.exit(EXIT_ERROR)


def project(ctx) -> Project:
    """The checkout (found on first use, so that commands that need none work anywhere)."""
    if ctx.obj.get("project") is None:
        root = ctx.obj.get("root")
        ctx.obj["project"] = Project(root.resolve()) if root else Project.find()
    return ctx.obj["project"]


def params(ctx) -> dict:
    return project(ctx).params()


def shown(ctx, path: Path) -> str:
    from .registry import display_path

    return display_path(project(ctx), path)


@contextlib.contextmanager
def progress_display():
    """A Progress (harness.progress) drawn as rich bars on stderr: one bar per task, notes as lines,
    run records as their summaries."""
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TextColumn, TimeElapsedColumn)

    class Count(ProgressColumn):
        def render(self, task):
            unit = DownloadColumn() if task.fields.get("unit") == "bytes" else MofNCompleteColumn()
            return unit.render(task)

    bars = Progress(TextColumn("{task.description}"), BarColumn(), Count(), TimeElapsedColumn(),
                    console=consoles.err, transient=False)
    tasks = {}

    def on_step(step):
        if step.note:
            (consoles.out if step.outcome else bars.console).print(step.note, soft_wrap=True)
        elif step.record:
            print_record(step.record)
        else:
            label = step.label or step.task
            if step.task not in tasks:
                tasks[step.task] = bars.add_task(label, total=step.total, unit=step.unit)
            bars.update(tasks[step.task], description=label, completed=step.done, total=step.total)

    with bars:
        yield on_step


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="The harness checkout to work in (default: the nearest folder upwards with teams/).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of short error messages.")
@click.option("-v", "--verbose", is_flag=True, help="Show each evaluation's full table and findings.")
@click.version_option(__version__, prog_name="harness")
@click.pass_context
def cli(ctx, root, debug, verbose):
    """Re-run NTIRE 2025 SR x4 models, score them as the organizers did, and check published numbers.

    Settings come from params.yaml and can be overridden per command. Exit codes: 0 success,
    1 a check did not pass, 2 an error stopped the command.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, verbose=verbose, root=root, project=None)


CHALLENGE_HELP = ("Every team of this challenge (challenges/ID.yaml), on its test dataset unless --dataset "
                  "says otherwise; instead of --teams.")


# --- catalogue ---------------------------------------------------------------------------------

@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
@click.option("--runnable", "only_runnable", is_flag=True, help="Only teams that can run as published.")
@click.option("--track", metavar="NAME",
              help="Only teams ranked in this track, by the name their challenge gives it (restoration: Track 1 "
                   "by PSNR; perceptual: Track 2 by score).")
@click.option("--challenge", metavar="ID", help="Only teams of this challenge (a file challenges/ID.yaml).")
@click.pass_context
def list_teams(ctx, as_json, only_runnable, track, challenge):
    """List every team: ranks, headline published numbers, status, determinism and recipe.

    The rank and value columns are each track's, as its challenge defines them."""
    from rich.table import Table

    from . import challenge as challenge_mod, registry
    from .metrics import all_specs

    if challenge:
        challenge_mod.get(challenge)
    teams, problems = registry.load_all(project(ctx))
    rules = challenge_mod.catalogue()
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
    rows.sort(key=lambda r: (r["challenge"], r["ranks"].get(rules[r["challenge"]].tracks[0].id, 10**6), r["id"]))
    if as_json:
        click.echo(json.dumps({"teams": rows, "invalid": [p.as_dict() for p in problems]}, indent=2))
    else:
        for challenge_id in dict.fromkeys(r["challenge"] for r in rows):  # one table per challenge
            members = [r for r in rows if r["challenge"] == challenge_id]
            tracks = rules[challenge_id].tracks
            table = Table(title=f"{rules[challenge_id].name} ({challenge_id}): {len(members)} team(s)")
            table.add_column("id")
            table.add_column("name")
            for t in tracks:
                table.add_column(t.id.replace("track", "T"), justify="right")
                table.add_column(all_specs()[t.rank_by].title, justify="right")
            for column in ("on", "status", "determinism", "recipe"):
                table.add_column(column)
            for row in members:
                cells = [row["id"], row["name"]]
                for t in tracks:
                    cells += [str(row["ranks"].get(t.id, "")),
                              _cell(row["published"].get(t.rank_by), all_specs()[t.rank_by].precision)]
                table.add_row(*cells, row["dataset"] or "—",
                              "runnable" if row["runnable"] else "[yellow]not runnable[/yellow]",
                              row["determinism"], row["recipe"] or row["entry"])
            out(table)
        for problem in problems:
            err(f"[red]invalid[/red] {problem}")
    if problems:
        sys.exit(EXIT_CHECK_FAILED)


def _cell(value, digits):
    return "—" if value is None else f"{value:.{digits}f}"


@cli.command()
@click.argument("team_id")
@click.pass_context
def show(ctx, team_id):
    """Show one team's manifest in full, with its status, known defects and hashes."""
    from . import registry

    team = registry.load(project(ctx), team_id)
    out(f"[bold]{team.name}[/bold] ({team.id})  manifest sha256 {team.hash[:12]}…  run key {team.run_key[:12]}…")
    status = team.data["status"]
    out("status: " + ("runnable" if team.runnable else "not runnable"))
    for reason in status.get("reasons", []):
        out(f"  reason: {reason}")
    for defect in status.get("defects", []):
        out(f"  known defect: {defect}")
    click.echo(team.raw.decode())


@cli.command()
@click.argument("targets", nargs=-1)
@click.pass_context
def validate(ctx, targets):
    """Check manifests against the schema and the semantic rules.

    TARGETS are team ids or paths to manifest files or team folders; none means every team, the
    challenge files (challenges/*.yaml) and each challenge's published table as a whole: every track's
    ranks are 1..N and follow the track's rule.
    Exits 1 if anything has a problem; each problem names the file, field, value and rule.
    """
    from . import challenge, data, leaderboard, metrics, registry

    proj = project(ctx)

    def passed(problems, ok_line) -> bool:
        for problem in problems:
            out(f"[red]error[/red] {problem}", soft_wrap=True)
        if not problems:
            out(f"[green]ok[/green]    {ok_line}")
        return not problems

    rules, tables_ok = {}, True
    if not targets:
        try:
            rules = challenge.catalogue()
            metrics.all_specs()  # the metrics the challenges name exist
            data.all_datasets()  # and their datasets
            passed([], f"challenges/: {', '.join(rules)}")
        except ManifestError as exc:
            tables_ok = passed(exc.problems, "")
    paths = registry.manifest_paths(proj, targets)
    teams, failed = [], 0
    for path in paths:
        try:
            team, known = registry.validate(proj, path)
            teams.append(team)
            passed([], shown(ctx, path) + (" (not runnable, as the checkout confirms)" if known else ""))
            for problem in known:
                out(f"[yellow]note[/yellow]  {problem}", soft_wrap=True)
        except ManifestError as exc:
            failed += 1
            passed(exc.problems, "")
    for rules_of_one in rules.values():
        members = [t for t in teams if t.data["challenge"] == rules_of_one.id]
        if members:
            tables_ok &= passed(leaderboard.rank_problems(rules_of_one, members),
                                f"{rules_of_one.id}'s table ({len(members)} teams): "
                                + "; ".join(t.rule() for t in rules_of_one.tracks))
    out(f"{len(paths) - failed} valid, {failed} invalid")
    if failed or not tables_ok:
        sys.exit(EXIT_CHECK_FAILED)


@cli.command("new-team")
@click.argument("team_id")
@click.pass_context
def new_team(ctx, team_id):
    """Scaffold teams/TEAM_ID/manifest.yaml from teams/_template/."""
    from . import registry

    manifest = registry.new_team(project(ctx), team_id)
    out(f"created {shown(ctx, manifest)}; edit it, then run `harness validate {team_id}`")


@cli.command("metrics")
def list_metrics():
    """List the metrics the harness computes, then the challenges' scores: reference, direction, published
    decimals, tolerance, each metric's term in a score (or which challenges define the score), weights."""
    from rich.table import Table

    from .challenge import catalogue
    from .metrics import all_specs

    rules = catalogue().values()
    table = Table(title="metrics (in report order)")
    for column in ("name", "title", "kind", "better", "decimals", "tolerance", "score terms", "weight files"):
        table.add_column(column)
    for spec in all_specs().values():
        tolerance = " + ".join(part for part in (f"{spec.tolerance_abs:g}" if spec.tolerance_abs else "",
                                                 f"{spec.tolerance_rel:g}×|v|" if spec.tolerance_rel else "") if part)
        if spec.backend == "derived":
            terms = "defined by " + ", ".join(c.id for c in rules if spec.name in c.scores)
        else:
            terms = "\n".join(sorted({f"{name}: {t.offset:g} + {t.scale:g}·v"
                                       + (f" (≥ {t.floor:g})" if t.floor is not None else "")
                                       for c in rules for name, score in c.scores.items()
                                       for t in score.terms if t.metric == spec.name}))
        table.add_row(spec.name, spec.title, spec.reference, "lower" if spec.lower_better else "higher",
                      str(spec.precision), tolerance or "0", terms, "\n".join(w.path for w in spec.weight_files))
    out(table)


@cli.command()
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the findings here.")
@click.pass_context
def doctor(ctx, json_out):
    """Check everything params.yaml needs before a long audit: packages, engine, GPU and NVIDIA runtime,
    dataset, each team's code and weights, metric weights, disk, Slurm. Downloads nothing.

    Exits 1 if the audit cannot run as configured; 'to fetch' items are fetched by the pipeline.
    """
    if json_out:
        _writable(json_out)
    from rich.table import Table

    from . import doctor as doctor_mod
    from .fsutil import write_json_atomic

    proj, config = project(ctx), params(ctx)
    findings = doctor_mod.examine(proj, config)
    colours = {"ok": "green", "to fetch": "cyan", "warning": "yellow", "missing": "red", "unknown": "yellow"}
    table = Table(title=f"harness doctor: dataset {config['dataset']}, runner {config['runner']}, "
                        f"device {config['device']}, executor {config['executor']}")
    for column in ("check", "status", "detail", "how to fix"):
        table.add_column(column)
    for finding in findings:
        colour = colours[finding.status]
        table.add_row(finding.check, f"[{colour}]{finding.status}[/{colour}]", finding.detail, finding.fix or "")
    out(table, soft_wrap=False)
    blocking = [f for f in findings if f.blocking]
    if json_out:
        write_json_atomic(json_out, {"can_run": not blocking, "findings": [f.as_dict() for f in findings]})
    if blocking:
        out(f"[red]the audit cannot run as configured:[/red] {len(blocking)} blocking finding(s): "
            + ", ".join(f.check for f in blocking))
        sys.exit(EXIT_CHECK_FAILED)
    out("the audit can run as configured")


def named_teams(proj: Project, team_ids, all_teams: bool) -> tuple[list, list]:
    """The teams a command names, or with --all every team of the catalogue (and the invalid ones' problems)."""
    from . import registry

    if all_teams:
        return registry.load_all(proj)
    if not team_ids:
        raise HarnessError("name at least one team, or --all")
    return [registry.load(proj, t) for t in team_ids], []


# --- fetching ----------------------------------------------------------------------------------

@cli.group()
def fetch():
    """Fetch datasets, team weights and metric weights (checksummed, resumable)."""


@fetch.command("data")
@click.argument("dataset", required=False)
@click.pass_context
def fetch_data(ctx, dataset):
    """Build or download DATASET into data/ and verify its checksums (default: params.yaml)."""
    from . import data
    from .progress import transfers

    dataset = dataset or params(ctx)["dataset"]
    proj = project(ctx)
    with progress_display() as progress:
        root = data.fetch(dataset, proj.data_dir, proj.downloads_dir, proj.dataset_pins, transfers(progress))
    out(f"dataset '{dataset}' ready in {shown(ctx, root)} (checksums verified)")


@fetch.command("weights")
@click.argument("team_ids", nargs=-1)
@click.option("--all", "all_teams", is_flag=True, help="Fetch the weights of every team in params.yaml.")
@click.option("--record-failure", is_flag=True,
              help="Write a failure into weights/<team>/failure.json and exit 0 (for pipelines).")
@click.pass_context
def fetch_weights(ctx, team_ids, all_teams, record_failure):
    """Fetch the weights files of TEAM_IDS into weights/<team>/ (nothing for non-runnable teams)."""
    from . import audit, registry

    proj = project(ctx)
    if all_teams:
        team_ids = params(ctx)["teams"]
    if not team_ids:
        raise HarnessError("name at least one team, or --all")
    for team_id in team_ids:
        team = registry.load(proj, team_id)
        with progress_display() as progress:
            fetched = audit.fetch_weights(proj, team, params(ctx)["source"], progress, record_failure)
        if fetched.not_needed:
            out(f"{team.id}: no weights needed ({fetched.not_needed})")
        elif fetched.failure:
            err(f"[yellow]{team.id}: weights unavailable[/yellow]: {fetched.failure.message}", soft_wrap=True)
        elif not fetched.paths:
            out(f"{team.id}: no weights to fetch")
        for path in fetched.paths:
            out(f"{team.id}: {shown(ctx, path)}")


@fetch.command("code")
@click.argument("team_ids", nargs=-1)
@click.option("--all", "all_teams", is_flag=True, help="Every team that declares a code repository.")
@click.pass_context
def fetch_code(ctx, team_ids, all_teams):
    """Clone each team's code repository at its pinned commit into .cache/code/ (reused offline).

    HARNESS_GIT_MIRROR replaces the hosts: a folder or URL holding each repository as <mirror>/owner/name.
    Teams whose code lives in their own folder need nothing.
    """
    from . import audit

    proj = project(ctx)
    teams, problems = named_teams(proj, team_ids, all_teams)
    for problem in problems:
        err(f"[red]invalid[/red] {problem}")
    for team in teams:
        checkout = audit.fetch_code(proj, team)
        if checkout is None:
            if not all_teams:
                out(f"{team.id}: its code is in {shown(ctx, team.dir)}")
            continue
        out(f"{team.id}: {team.data['code']['repository']} at {team.data['code']['commit']} in {shown(ctx, checkout)}")


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
    from . import metric_weights
    from .metrics import METRICS, parse_metric_list
    from .progress import transfer

    proj = project(ctx)
    names = parse_metric_list(list(metric_names)) if metric_names else \
        [n for n, s in METRICS.items() if s.weight_files]
    with progress_display() as progress:
        status = metric_weights.fetch(names, proj.metric_cache, proj.downloads_dir,
                                      transfer(progress, "metric weights"))
    failed = [rel for rel, state in status.items() if state.startswith("failed")]
    if ctx.obj.get("verbose") or not best_effort:
        for rel, state in status.items():
            out(f"{state:8} {rel}", soft_wrap=True)
    else:  # the pipeline's story: one line for what is there, one for what is not
        ready = [n for n in names if not any(w.path in failed for w in METRICS[n].weight_files)]
        out(f"metric weights ready: {', '.join(ready) or 'none'}")
    if failed:
        missing = [n for n in names if any(w.path in failed for w in METRICS[n].weight_files)]
        message = (f"{len(failed)} file(s) could not be fetched; {', '.join(missing)} stay unavailable"
                   + ("" if ctx.obj.get("verbose") or not best_effort else " (`harness -v fetch metric-weights` "
                      "lists each file and why)"))
        if not best_effort:
            raise HarnessError(message, hint="check the network, or place the files in the cache by hand")
        err(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


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
    from . import data
    from .progress import transfers

    proj = project(ctx)
    with progress_display() as progress:
        root = data.import_dataset(dataset, proj.data_dir, hr, lr, proj.downloads_dir, transfers(progress))
    out(f"imported into {shown(ctx, root)} (checksums recorded)")


@cli.group("weights")
def weights_group():
    """Team weights obtained by hand (a mirror such as Baidu Netdisk, a copy from a colleague)."""


@weights_group.command("import")
@click.argument("team_id")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.pass_context
def weights_import(ctx, team_id, path):
    """Place TEAM_ID's weights from PATH (a folder or .zip/.tar archive) into weights/<team>/.

    PATH holds what the manifest's weights[].name entries name (for a team whose weights are one
    folder, PATH may be that folder itself). Every file is pinned by sha256 in weights/<team>/sha256.json;
    a later fetch or import that brings different bytes is refused. Nothing changes unless every
    declared name is there.
    """
    from . import registry
    from . import weights as weights_mod

    proj = project(ctx)
    team = registry.load(proj, team_id)
    pins = weights_mod.import_weights(team, path, proj.weights_dir, proj.downloads_dir)
    for name, digest in sorted(pins.items()):
        out(f"{team.id}: {name}  sha256 {digest[:16]}…")
    out(f"imported {len(pins)} file(s) into {shown(ctx, proj.team_weights(team.id))} (checksums pinned)")


# --- running -----------------------------------------------------------------------------------

def print_record(record: dict) -> None:
    """A run record in one line, or its failure (on stderr) with the hint and the log tail."""
    from .records import PUBLISHED_OUTPUTS

    console = consoles.out if record["status"] == "ok" else consoles.err
    if record["status"] == "ok" and record["runner"] == PUBLISHED_OUTPUTS:
        console.print(f"{record['team']}: published outputs collected from {record['source']}")
        return
    if record["status"] == "ok":
        console.print(f"{record['team']}: {len(record['runs'])} run(s) ok with the {record['runner']} runner "
                      f"on {record['device']} in {record['wall_s']:.1f} s")
        return
    failure = record["failure"]
    console.print(f"[red]{record['team']}: {record['status']} ({failure['kind']})[/red]: {failure['message']}",
                  soft_wrap=True)
    if failure.get("hint"):
        console.print(f"hint: {failure['hint']}")
    if failure.get("log_tail"):
        console.print("[dim]log tail:[/dim]\n" + failure["log_tail"], markup=False)


GPUS_HELP = ("With the docker runner and a cuda device: GPUs passed through, as docker run --gpus takes them: "
             "all, a count, or device=ID[,ID] (default: params.yaml).")


@cli.command()
@click.argument("team_id")
@click.option("--dataset", help="Dataset to run on (default: params.yaml).")
@click.option("--device", help="cpu, cuda or cuda:N (default: params.yaml).")
@click.option("--runner", "runner_name", help=f"How to run: {', '.join(settings.RUNNERS)} (default: params.yaml).")
@click.option("--gpus", help=GPUS_HELP)
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
    from . import audit, registry

    proj, config = project(ctx), params(ctx)
    team = registry.load(proj, team_id)
    options = audit.RunOptions.from_settings(config, runner_name, device, gpus)
    with progress_display() as progress:
        record = audit.produce_runs(proj, team, dataset or config["dataset"], config, options, progress,
                                    record_failure)
    if record["status"] == "failed" and not record_failure:
        sys.exit(EXIT_CHECK_FAILED)


@cli.command()
@click.option("--sr", "sr_dir", type=click.Path(path_type=Path), help="Folder of output PNGs.")
@click.option("--hr", "hr_dir", type=click.Path(path_type=Path), help="Folder of ground-truth PNGs.")
@click.option("--lr", "lr_dir", type=click.Path(path_type=Path),
              help="Folder of the LR inputs: adds the LR-consistency check; without --hr, only the no-reference "
                   "metrics are computed.")
@click.option("--team", "team_id", help="Evaluate every run of this team instead of one --sr folder.")
@click.option("--dataset", help="With --team: the dataset (default: params.yaml).")
@click.option("--metrics", "metric_list", help="Comma-separated metric names; `harness metrics` lists them "
                                               "(default: params.yaml; psnr, ssim, niqe outside a checkout).")
@click.option("--mode", type=click.Choice(settings.MODES),
              help="faithful: the organizers' repairs, each reported; strict: such images fail (default: params.yaml).")
@click.option("--device", help="Device for the learned metrics: cpu, cuda or cuda:N (default: params.yaml).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes scoring images on a CPU (default: params.yaml's eval_workers; auto: every core).")
@click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True),
              help="Refuse images that declare more pixels than this, before decoding them "
                   "(default: params.yaml's max_image_megapixels, 50).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result here (with --team, default: evaluations/<dataset>/<team>.json).")
@click.option("--evaluator", "evaluator_name", type=click.Choice(settings.EVALUATORS),
              help="With --team: score here, or in the evaluator image with no network (default: params.yaml).")
@click.pass_context
def evaluate(ctx, sr_dir, hr_dir, lr_dir, team_id, dataset, metric_list, mode, device, workers, max_megapixels,
             json_out, evaluator_name):
    """Score outputs against ground truth exactly as the organizers did.

    Outputs are every *.png in --sr, paired with --hr by removing 'x4' from the name. PSNR/SSIM on
    the Y channel after a crop to a multiple of 4 and a 4-pixel shave; the learned metrics through
    pyiqa from the harness's weight cache. Metrics whose weights are absent are reported as
    unavailable, never as 0. --sr/--hr works anywhere, without a checkout.

    With --lr, each output is also downscaled x4 (MATLAB bicubic) and compared with its input: an
    output that fits its input clearly better with its channels reordered, shifted by a pixel or two,
    or that fits another input better, is a finding naming the image. Without --hr (the NTIRE test
    set's ground truth is not public), the full-reference metrics and the perceptual score are
    unavailable and the rest is computed as with it.
    """
    from . import evaluate as evaluate_mod
    from .fsutil import write_json_atomic
    from .metrics import parse_metric_list

    if json_out:
        _writable(json_out)
    if team_id:
        from . import audit, registry

        if sr_dir or hr_dir or lr_dir:
            raise click.UsageError("use either --team or --sr/--hr/--lr")
        proj, config = project(ctx), params(ctx)
        device = device or config["device"]
        with progress_display() as progress:
            result = audit.evaluate_team(proj, registry.load(proj, team_id), dataset or config["dataset"],
                                         parse_metric_list(metric_list) if metric_list else config["metrics"],
                                         mode or config["mode"], device,
                                         evaluator_name or config["evaluator"], config["docker"], progress,
                                         json_out, workers or settings.evaluation_workers({**config, "device": device}),
                                         max_megapixels)
        _print_team_evaluation(result, ctx.obj.get("verbose"))
        return
    if not (sr_dir and (hr_dir or lr_dir) and json_out):
        raise click.UsageError("--sr, --json and --hr or --lr (or both) are required (or use --team)")
    config, cache = _settings_here(ctx)
    device = device or config["device"]
    names = parse_metric_list(metric_list) if metric_list else config["metrics"]
    with progress_display() as progress:
        from .progress import Step

        result = evaluate_mod.evaluate(sr_dir, hr_dir, names, mode or config["mode"], cache, device,
                                       lambda done, total, name: progress(Step("evaluating", None, done, total)),
                                       lr_dir, workers or settings.evaluation_workers({**config, "device": device}),
                                       max_megapixels or config["max_image_megapixels"])
    payload = {**result.as_dict(), "sr": str(sr_dir), "hr": str(hr_dir) if hr_dir else None,
               "lr": str(lr_dir) if lr_dir else None}
    write_json_atomic(json_out, payload)
    _print_evaluation(payload)
    if result.status != "ok":
        sys.exit(EXIT_CHECK_FAILED)


def _writable(path: Path) -> None:
    """Refuse a result path that cannot be written before the work, not after it."""
    import os

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.filename}: {exc.strerror}") from None
    if not os.access(Path(path).parent, os.W_OK) or Path(path).is_dir():
        raise HarnessError(f"cannot write {path}: " + ("it is a folder" if Path(path).is_dir() else
                                                      f"{Path(path).parent} is not writable"))


def _settings_here(ctx) -> tuple[dict, Path]:
    """params.yaml and the metric cache of the checkout, or the defaults outside one."""
    import os

    try:
        proj = project(ctx)
    except HarnessError:
        cache = Path(os.environ.get("HARNESS_METRIC_WEIGHTS", Path.cwd() / ".cache" / "metric-weights"))
        return settings.load(Path.cwd() / settings.PARAMS_FILE), cache
    return proj.params(), proj.metric_cache


def _print_evaluation(payload: dict) -> None:
    from rich.table import Table

    from .metrics import all_specs

    table = Table(title=f"{payload['n_images']} image(s), {payload['mode']} mode")
    for column, justify in (("metric", "left"), ("mean", "right"), ("note", "left")):
        table.add_column(column, justify=justify)
    for name in payload["metrics"]:
        if name in payload["mean"]:
            table.add_row(name, f"{payload['mean'][name]:.{all_specs()[name].precision + 2}f}", "")
        elif name in payload["unavailable"]:
            gap = payload["unavailable"][name]
            table.add_row(name, "unavailable", f"{gap['reason']}; {_report_remedy(gap['fetch'])}")
    fit = payload.get("lr_consistency")
    if fit and fit["mean_psnr_y"] is not None:
        table.add_row("LR consistency", f"{fit['mean_psnr_y']:.2f}",
                      "PSNR (Y, dB) of each output downscaled x4 against its input; a check, not a published metric")
    out(table)
    for finding in payload["findings"]:
        out(f"[yellow]{finding['kind']}[/yellow] {finding['image']}: {finding['message']}")
    for image, message in payload["failed_images"].items():
        err(f"[red]failed[/red] {image}: {message}")


def _print_team_evaluation(result: dict, verbose: bool = False) -> None:
    """One line per run (the pipeline's story); with --verbose, each run's table and findings."""
    from .metrics import all_specs

    inference_state = result["inference"]
    if inference_state["status"] != "ok":
        failure = inference_state["failure"] or {}
        out(f"{result['team']}: inference {inference_state['status']} ({failure.get('kind')}): nothing to score")
        return
    for run in result["runs"]:
        if run.get("status") != "ok":
            out(f"[red]{result['team']} {run['run']}: {run.get('failure') or run.get('failed_images')}[/red]")
            continue
        if verbose:
            out(f"[bold]{result['team']} {run['run']}[/bold]")
            _print_evaluation(run)
            continue
        means = ", ".join(f"{n} {run['mean'][n]:.{all_specs()[n].precision + 2}f}" for n in run["metrics"]
                          if n in run["mean"])
        extra = [f"{len(run['findings'])} finding(s)"] if run["findings"] else []  # the report names gaps once
        out(f"{result['team']} {run['run']}: {means}" + (f" ({'; '.join(extra)}; --verbose shows them)"
                                                          if extra else ""), soft_wrap=True)


@cli.command()
@click.argument("team_ids", nargs=-1)
@click.option("--all", "all_teams", is_flag=True, help="Every team of the catalogue.")
@click.option("--device", help="cpu, cuda or cuda:N (default: params.yaml).")
@click.option("--runner", "runner_name", help=f"How to run: {', '.join(settings.RUNNERS)} (default: params.yaml).")
@click.option("--gpus", help=GPUS_HELP)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the results here.")
@click.pass_context
def smoke(ctx, team_ids, all_teams, device, runner_name, gpus, json_out):
    """Run each team's real code end to end on two small LR crops with stand-in weights, before any GPU
    hour is spent: ok, failed (kind), skipped (why) or not runnable.

    Stand-in weights are randomly initialised networks saved exactly as each file's loader reads them
    (weights[].network in the manifest); no real weights are needed. Team code comes from
    `harness fetch code`. Exits 1 if any team failed.
    """
    if json_out:
        _writable(json_out)
    from rich.table import Table

    from . import audit
    from .fsutil import write_json_atomic

    proj, config = project(ctx), params(ctx)
    teams, problems = named_teams(proj, team_ids, all_teams)
    if problems:
        raise ManifestError(problems)
    options = audit.RunOptions.from_settings(config, runner_name, device, gpus)
    results = []
    with progress_display() as progress:
        for team in teams:
            results.append(audit.smoke_team(proj, team, options, progress))
    table = Table(title=f"smoke test on {options.device} with the {options.runner} runner")
    for column in ("team", "result", "s", "why"):
        table.add_column(column, justify="right" if column == "s" else "left")
    colours = {"ok": "green", "failed": "red", "skipped": "yellow", "not_runnable": "yellow"}
    for result in results:
        label = result.status.replace("_", " ") + (f" ({result.kind})" if result.kind else "")
        table.add_row(result.team, f"[{colours[result.status]}]{label}[/{colours[result.status]}]",
                      "" if result.seconds is None else f"{result.seconds:.1f}", result.reason or "")
    out(table)
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "skipped", "not_runnable")}
    out(f"SMOKE: {len(results)} team(s): " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items()))
    if json_out:
        write_json_atomic(json_out, {"device": options.device, "runner": options.runner,
                                     "teams": [r.as_dict() for r in results]})
    if counts["failed"]:
        sys.exit(EXIT_CHECK_FAILED)


# --- Slurm jobs --------------------------------------------------------------------------------

@cli.group("jobs", invoke_without_command=True)
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.pass_context
def jobs(ctx, dataset):
    """List the audit's Slurm jobs and their states (from sacct), one row per team."""
    from rich.table import Table

    from . import slurm

    ctx.obj["jobs_dataset"] = dataset or params(ctx)["dataset"]
    if ctx.invoked_subcommand:
        return
    proj, dataset = project(ctx), ctx.obj["jobs_dataset"]
    listing = slurm.load_jobs(proj, dataset)["jobs"]
    if not listing:
        out(f"no Slurm jobs recorded for '{dataset}'")
        return
    states = slurm.sacct_states([e["job_id"] for e in listing.values()])
    table = Table(title=f"Slurm jobs for '{dataset}'")
    for column in ("team", "job", "state", "submitted", "array"):
        table.add_column(column)
    for team_id, entry in sorted(listing.items()):
        table.add_row(team_id, entry["job_id"], states[entry["job_id"]], entry["submitted"],
                      "yes" if entry.get("array") else "")
    out(table)
    summary = slurm.counts(states)
    out(f"{summary['queued']} queued, {summary['running']} running, {summary['done']} done")


@jobs.command("submit")
@click.pass_context
def jobs_submit(ctx):
    """Submit one Slurm job per team (as arrays) whose runs are not complete; with executor: local, nothing.

    The pipeline's `submit` stage runs this so that every team's job is queued at once; each
    `infer@<team>` stage then waits for its own job.
    """
    from . import audit, registry
    from .fsutil import write_json_atomic

    proj, config = project(ctx), params(ctx)
    dataset = ctx.obj["jobs_dataset"]
    if config["executor"] != "slurm":
        if not proj.slurm_jobs(dataset).exists():
            write_json_atomic(proj.slurm_jobs(dataset), {"jobs": {}})
        out("executor: local; no Slurm jobs")
        return
    teams = [registry.load(proj, t) for t in config["teams"]]
    submitted = audit.submit_jobs(proj, teams, dataset, audit.RunOptions.from_settings(config))
    skipped = [t.id for t in teams if t.id not in submitted]
    for team_id, entry in submitted.items():
        out(f"{team_id}: Slurm job {entry['job_id']}")
    if skipped:
        out(f"not submitted (complete or not runnable): {', '.join(skipped)}")


@cli.command()
@click.argument("team_ids", nargs=-1)
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.pass_context
def cancel(ctx, team_ids, dataset):
    """Cancel the audit's Slurm jobs that have not ended (all, or those of TEAM_IDS).

    A cancelled team's record says `cancelled`; the other teams are not touched.
    """
    from . import slurm

    cancelled = slurm.cancel(project(ctx), dataset or params(ctx)["dataset"], list(team_ids) or None)
    out(f"cancelled {len(cancelled)} job(s)" + (f": {', '.join(cancelled)}" if cancelled else ""))


# --- verification and report -------------------------------------------------------------------

FROM_OUTPUTS_HELP = ("Score the team's published output images instead of running it: a folder, a .zip/.tar "
                     "archive, an http(s) URL or gdrive:<id>; alone, the source the manifest declares.")


@cli.command()
@click.argument("team_id")
@click.option("--dataset", help="Dataset to verify on (default: params.yaml).")
@click.option("--device", help="Device for inference and the learned metrics (default: params.yaml).")
@click.option("--runner", "runner_name", help=f"Runner for inference: {', '.join(settings.RUNNERS)} "
                                              "(default: params.yaml).")
@click.option("--gpus", help=GPUS_HELP)
@click.option("--mode", type=click.Choice(settings.MODES), help="Evaluation mode (default: params.yaml).")
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
    if json_out:
        _writable(json_out)
    from . import audit, registry
    from . import verify as verify_mod
    from .fsutil import write_json_atomic

    proj, config = project(ctx), params(ctx)
    team = registry.load(proj, team_id)
    options = audit.RunOptions.from_settings(config, runner_name, device, gpus)
    with progress_display() as progress:
        result = audit.verify_team(proj, team, dataset or config["dataset"], config, options, mode or config["mode"],
                                   from_outputs, rerun, progress)
    if json_out:
        write_json_atomic(json_out, result)
    _print_verification(result)
    if not verify_mod.passed(result):
        sys.exit(EXIT_CHECK_FAILED)


@cli.command()
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.option("--teams", "team_list", help="Comma-separated team ids (default: params.yaml's teams).")
@click.option("--from-outputs", "from_outputs", is_flag=False, flag_value="", default=None, metavar="[SOURCE]",
              help=FROM_OUTPUTS_HELP + " A source holding every team's folder is narrowed to each team's own.")
@click.option("--mode", type=click.Choice(settings.MODES), help="Evaluation mode (default: params.yaml).")
@click.option("--rerun", is_flag=True, help="Ignore earlier results.")
@click.option("--challenge", "challenge_id", metavar="ID", help=CHALLENGE_HELP)
@click.pass_context
def audit(ctx, dataset, team_list, from_outputs, mode, rerun, challenge_id):
    """Verify every team and write the report: the whole audit without DVC.

    A team that cannot run, or fails, is reported with its reason; the others carry on.
    Exits 1 unless every runnable team reproduced.
    """
    from . import audit as audit_mod

    proj, config = project(ctx), params(ctx)
    team_ids, dataset = _selection(ctx, team_list, dataset, challenge_id)
    mode = mode or config["mode"]
    with progress_display() as progress:
        results = audit_mod.audit(proj, team_ids, dataset, config, audit_mod.RunOptions.from_settings(config), mode,
                                  from_outputs, rerun, progress)
    _write_report(ctx, results, dataset, {**config, "mode": mode}, proj.report_dir)
    if not audit_mod.all_passed(results):
        sys.exit(EXIT_CHECK_FAILED)


def _selection(ctx, team_list: str | None, dataset: str | None, challenge_id: str | None) -> tuple[list[str], str]:
    """The teams and dataset a command works on: --teams, or a challenge's teams, else params.yaml's."""
    config = params(ctx)
    if challenge_id and team_list:
        raise click.UsageError("give --teams or --challenge, not both")
    if challenge_id:
        from . import challenge, registry

        rules = challenge.get(challenge_id)
        team_ids = [t for t in registry.team_ids(project(ctx))
                    if registry.load(project(ctx), t).data["challenge"] == challenge_id]
        return team_ids, dataset or rules.test_dataset
    team_ids = [t.strip() for t in team_list.split(",")] if team_list else config["teams"]
    return team_ids, dataset or config["dataset"]


def _print_verification(result: dict) -> None:
    from rich.table import Table

    from . import report as report_mod
    from .metrics import all_specs

    table = Table(title=f"{result['team']} on {result['dataset']}: {report_mod.verdict_label(result)}")
    for column in ("metric", "published", "reproduced", "delta", "tolerance", "verdict"):
        table.add_column(column, justify="right" if column not in ("metric", "verdict") else "left")
    for name, row in result["metrics"].items():
        digits = (row["precision"] if row["precision"] is not None else 4) + 2
        if row["reproduced"] is None:
            table.add_row(name, report_mod.fmt(row["published"], row["precision"]), "—", "—",
                          f"{row['tolerance']:.4f}", f"unavailable: {_report_remedy(row['fetch'])}")
            continue
        reproduced = report_mod.fmt(row["reproduced"], digits)
        if row.get("spread") is not None:
            reproduced += f" (runs {report_mod.fmt(min(row['run_values']), digits)}…"
            reproduced += f"{report_mod.fmt(max(row['run_values']), digits)})"
        table.add_row(name, report_mod.fmt(row["published"], row["precision"]), reproduced,
                      f"{row['delta']:+.{digits}f}", f"{row['tolerance']:.{digits}f}",
                      "[green]ok[/green]" if row["ok"] else "[red]diverged[/red]")
    out(table)
    if result.get("failure"):
        failure = result["failure"]
        out(f"[red]{result['verdict']} ({failure['kind']})[/red]: {failure['message']}", soft_wrap=True)
        if failure.get("hint"):
            out(f"hint: {failure['hint']}")
    if result.get("exact_outputs") is not None:
        out("outputs bit-identical to the reference: " + ("yes" if result["exact_outputs"] else "no"))
    for name, row in result["metrics"].items():
        if row.get("per_image"):
            spec = all_specs()[name]
            ranked = sorted(((v, k) for k, v in row["per_image"].items() if v is not None),
                            reverse=spec.lower_better)
            worst = ", ".join(f"{stem} {value:.{spec.precision + 2}f}" for value, stem in ranked[:5])
            out(f"[red]{name}[/red] per image, worst first: {worst}")
    for finding in result.get("findings", []):
        out(f"[yellow]{finding['kind']}[/yellow] {finding.get('run', '')} {finding['image']}: {finding['message']}")


@cli.command()
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.option("--teams", "team_list", help="Comma-separated team ids (default: params.yaml).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.json and summary.csv (default: report/).")
@click.option("--show", is_flag=True, help="Print the report already in --out instead of making a new one.")
@click.option("--check", is_flag=True, help="Exit 1 unless every runnable team reproduced.")
@click.option("--challenge", "challenge_id", metavar="ID", help=CHALLENGE_HELP)
@click.pass_context
def report(ctx, dataset, team_list, out_dir, show, check, challenge_id):
    """Verify every team from its evaluation and write the audit report; prints a table and a SUMMARY line."""
    from . import audit as audit_mod

    proj, config = project(ctx), params(ctx)
    out_dir = out_dir or proj.report_dir
    if show:
        path = out_dir / "report.json"
        if not path.exists():
            raise HarnessError(f"no report in {shown(ctx, out_dir)}", hint="run `dvc repro` or `harness report`")
        built = json.loads(path.read_text())
        results = built["teams"]
        _print_not_computed(results)
        _print_leaderboards(built)
        _print_report_table(results, built["dataset"])
        out(built["summary"])
        if (out_dir / "index.html").exists():
            out(f"report: {shown(ctx, out_dir / 'index.html')}")
    else:
        team_ids, dataset = _selection(ctx, team_list, dataset, challenge_id)
        results = audit_mod.verifications(proj, team_ids, dataset)
        _write_report(ctx, results, dataset, config, out_dir)
    if check and not audit_mod.all_passed(results):
        sys.exit(EXIT_CHECK_FAILED)


def _write_report(ctx, results: list[dict], dataset: str, config: dict, out_dir: Path) -> None:
    """Write the report (report.md, report.json, summary.csv), print its table and SUMMARY line."""
    from . import audit as audit_mod

    built, paths = audit_mod.write_report(project(ctx), results, dataset, config, out_dir)
    for path in paths[:-1]:
        out(f"wrote {shown(ctx, path)}")
    _print_not_computed(results)
    _print_leaderboards(built)
    _print_report_table(results, dataset)
    out(built["summary"])
    out(f"report: {shown(ctx, paths[-1])}")


def _print_leaderboards(built: dict) -> None:
    from .leaderboard import change_line

    for board in built.get("leaderboards", []):
        out(f"leaderboard {change_line(board)}", soft_wrap=True)


def _print_not_computed(results: list[dict]) -> None:
    """Metrics no team could be scored on, said once, with the one command that fixes each cause."""
    gaps: dict[str, set] = {}
    for row in results:
        for name, cell in row["metrics"].items():
            if cell.get("status") == "unavailable":
                gaps.setdefault(_report_remedy(cell.get("fetch") or ""), set()).add(name)
    for remedy, names in gaps.items():
        from .metrics import all_specs

        ordered = [n for n in all_specs() if n in names]
        out(f"[yellow]not computed[/yellow]: {', '.join(ordered)}; {remedy}", soft_wrap=True)


def _report_remedy(fix: str) -> str:
    from .report import remedy_text

    return remedy_text(fix)


def _print_report_table(results: list[dict], dataset: str) -> None:
    from rich.table import Table

    from . import report as report_mod
    from .metrics import all_specs

    names = report_mod.metric_names(results)
    table = Table(title=f"Audit on '{dataset}': published / reproduced")
    table.add_column("team")
    table.add_column("verdict")
    for name in names:
        table.add_column(all_specs()[name].title, justify="right")
    colours = {"exact": "green", "reproduced": "green", "diverged": "red", "failed": "red",
               "not_runnable": "yellow"}
    for result in results:
        cells = [report_mod.cell(result["metrics"].get(name), ("[green]✓[/green]", "[red]✗[/red]")) for name in names]
        colour = colours[result["verdict"]]
        table.add_row(result["team"], f"[{colour}]{report_mod.verdict_label(result)}[/{colour}]", *cells)
    out(table)


def main():
    import signal

    def stop(signum, frame):  # SIGTERM unwinds like Ctrl-C: children are stopped, staging is removed
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    cli(obj={})


if __name__ == "__main__":
    main()
