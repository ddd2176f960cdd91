"""Fetching and importing: fetch data|weights|code|metric-weights, data import, weights import."""

from __future__ import annotations

from pathlib import Path

import click

from harness.audit import workflow
from harness.catalogue import datasets, roster
from harness.catalogue.metrics import METRICS, parse_metric_list
from harness.cli.render import err, lit, out, progress_display
from harness.cli.session import Session, pass_session
from harness.core.errors import HarnessError
from harness.core.progress import Step, transfer, transfers
from harness.fetch import dataset_files, metric_weights
from harness.fetch import team_weights as weights_mod


@click.group()
def fetch():
    """Fetch datasets, team weights and metric weights (checksummed, resumable)."""


@fetch.command("data")
@click.argument("dataset", required=False)
@pass_session
def fetch_data(session: Session, dataset):
    """Build or download DATASET into data/ and verify its checksums (default: params.yaml)."""
    dataset = datasets.get(dataset or session.settings.dataset)
    proj = session.project
    with progress_display() as progress:
        root = dataset_files.fetch(dataset, proj.data_dir, proj.downloads_dir, proj.dataset_pins, transfers(progress))
    out(f"dataset '{dataset}' ready in {session.shown(root)} (checksums verified)")


@fetch.command("weights")
@click.argument("team_ids", nargs=-1)
@click.option("--all", "all_teams", is_flag=True, help="Fetch the weights of every team in params.yaml.")
@click.option("--record-failure", is_flag=True,
              help="Write a failure into weights/<team>/failure.json and exit 0 (for pipelines).")
@pass_session
def fetch_weights(session: Session, team_ids, all_teams, record_failure):
    """Fetch the weights files of TEAM_IDS into weights/<team>/ (nothing for non-runnable teams)."""
    proj = session.project
    if all_teams:
        team_ids = session.settings.teams
    if not team_ids:
        raise HarnessError("name at least one team, or --all")
    for team_id in team_ids:
        team = roster.load(proj, team_id)
        with progress_display() as progress:
            fetched = workflow.fetch_weights(proj, team, session.settings.source, progress, record_failure)
        if fetched.not_needed:
            out(f"{team.id}: no weights needed ({fetched.not_needed})")
        elif fetched.failure:
            err(f"[yellow]{team.id}: weights unavailable[/yellow]: {lit(fetched.failure.message)}", soft_wrap=True)
        elif not fetched.paths:
            out(f"{team.id}: no weights to fetch")
        for path in fetched.paths:
            out(f"{team.id}: {session.shown(path)}")


@fetch.command("code")
@click.argument("team_ids", nargs=-1)
@click.option("--all", "all_teams", is_flag=True, help="Every team that declares a code repository.")
@pass_session
def fetch_code(session: Session, team_ids, all_teams):
    """Clone each team's code repository at its pinned commit into .cache/code/ (reused offline).

    Each repository is fetched on its own: one that cannot be cloned fails only its teams, and every
    failure is listed at the end. Every checkout is verified before use: a missing or changed tracked
    file of a team's own code refuses that team; damage elsewhere in the repository is reported.
    HARNESS_GIT_MIRROR replaces the hosts: a folder or URL holding each repository as <mirror>/owner/name.
    Teams whose code lives in their own folder need nothing.
    """
    teams, problems = session.named_teams(team_ids, all_teams)
    for problem in problems:
        err(f"[red]invalid[/red] {lit(problem)}")
    results = workflow.fetch_all_code(session.project, teams)
    reported = set()
    for team, result in zip(teams, results, strict=True):
        if result.failure:
            continue
        if result.checkout is None:
            if not all_teams:
                out(f"{team.id}: its code is in {session.shown(team.dir)}")
            continue
        out(f"{team.id}: {lit(team.data['code']['repository'])} at {team.data['code']['commit']} in "
            f"{lit(session.shown(result.checkout))}")
        if result.damaged_elsewhere and result.checkout not in reported:
            reported.add(result.checkout)
            shown = lit(", ".join(line[2:] for line in result.damaged_elsewhere[:3]))
            err(f"[yellow]warning:[/yellow] {session.shown(result.checkout)}: {len(result.damaged_elsewhere)} "
                f"tracked file(s) outside the fetched teams' own code are missing or changed ({shown}"
                f"{', ...' if len(result.damaged_elsewhere) > 3 else ''}); a team whose code they are is refused",
                soft_wrap=True)
    failures = [(team, r.failure) for team, r in zip(teams, results, strict=True) if r.failure]
    for team, failure in failures:
        err(f"[red]{team.id}: code unavailable[/red]: {lit(failure.message)}", soft_wrap=True)
        if failure.hint:
            err(f"  hint: {lit(failure.hint)}", soft_wrap=True)
    if failures:
        raise HarnessError(f"{len(failures)} of {len(teams)} team(s) have no code checkout (listed above)")


@fetch.command("metric-weights")
@click.argument("metric_names", nargs=-1)
@click.option("--best-effort", is_flag=True,
              help="Report files that could not be fetched and exit 0; those metrics stay unavailable.")
@pass_session
def fetch_metric_weights(session: Session, metric_names, best_effort):
    """Fetch the weights of the learned metrics (all of them by default) into the harness's cache.

    The cache is the checkout's .cache/metric-weights, or outside a checkout the user's cache
    (~/.cache/harness/metric-weights on Linux); $HARNESS_METRIC_WEIGHTS replaces either. Evaluation reads
    it with every hub offline. Sources: pyiqa's weight repository, torchvision, OpenAI CLIP, the timm ViT
    on the Hugging Face hub, and NIQE's MATLAB parameters from basicsr's source distribution on PyPI.
    """
    _, cache, downloads = session.here
    names = parse_metric_list(list(metric_names)) if metric_names else \
        [n for n, s in METRICS.items() if s.weight_files]
    with progress_display() as progress:
        status = metric_weights.fetch(names, cache, downloads, transfer(progress, "metric weights"))
    failed = [rel for rel, state in status.items() if state.startswith("failed")]
    if session.verbose or not best_effort:
        for rel, state in status.items():
            out(f"{rel}: {lit(state)}", soft_wrap=True)
    else:  # the pipeline's story: one line for what is there, one for what is not
        ready = [n for n in names if not any(w.path in failed for w in METRICS[n].weight_files)]
        out(f"metric weights ready: {', '.join(ready) or 'none'}")
    if not failed:
        out(f"metric weights in {cache}")
    if failed:
        missing = [n for n in names if any(w.path in failed for w in METRICS[n].weight_files)]
        message = (f"{len(failed)} file(s) could not be fetched; {', '.join(missing)} stay unavailable"
                   + ("" if session.verbose or not best_effort else " (`harness -v fetch metric-weights` "
                      "lists each file and why)"))
        if not best_effort:
            raise HarnessError(message, hint="each file's line above says why and what to do; without a network, "
                               "place the files in the cache by hand")
        err(f"[yellow]warning:[/yellow] {lit(message)}", soft_wrap=True)


@fetch.command("stand-in-metric-weights")
@click.argument("folder", type=click.Path(path_type=Path))
@pass_session
def fetch_stand_in_metric_weights(session: Session, folder):
    """Build stand-in weights for every learned metric into FOLDER (about 2 GiB, under a minute): the real
    files' names, keys, shapes, dtypes and formats with seeded random values, the same bytes every time;
    NIQE's real parameters beside them (from PyPI).

    For benchmarks and `harness evaluate` into a scratch path only (HARNESS_METRIC_WEIGHTS=FOLDER): what
    they score says "stand-in" everywhere and measures nothing; verify and audit refuse such a cache.
    FOLDER must be empty or an earlier stand-in build: a folder that may hold real weights is refused.
    """
    from harness.fetch import stand_in_files, stand_ins

    _, _, downloads = session.here
    with progress_display() as progress:
        digests = stand_in_files.build(folder, downloads, lambda rel: progress(Step("stand-in weights", rel)))
    for rel, digest in digests.items():
        out(f"{rel}: sha256 {digest[:16]}…", soft_wrap=True)
    out(f"stand-in metric weights in {folder} (marked {stand_ins.MARKER}); use them with "
        f"HARNESS_METRIC_WEIGHTS={folder} harness evaluate ...")


@click.group("data")
def data_group():
    """Datasets whose images the user supplies (the NTIRE 2025 test HR was never public)."""


@data_group.command("import")
@click.argument("dataset")
@click.option("--hr", metavar="PATH|URL", help="Folder or .zip/.tar archive of HR PNGs, or an http(s) URL of one.")
@click.option("--lr", metavar="PATH|URL", help="Folder or .zip/.tar archive of LR PNGs, or an http(s) URL of one.")
@click.option("--subset", is_flag=True, help="Some of the dataset's images are enough (declared names, the same in "
                                             "HR and LR): published per-image values are compared image by image.")
@pass_session
def data_import(session: Session, dataset, hr, lr, subset):
    """Import DATASET's images: checks the expected names and HR = LR x4, then records checksums.

    For ntire2025-test the LR images are public (the challenge's test input) but the HR images were
    never released: they come from the challenge organizers. Nothing changes unless every check passes.
    """
    proj = session.project
    with progress_display() as progress:
        root = dataset_files.import_dataset(datasets.get(dataset), proj.data_dir, hr, lr, proj.downloads_dir,
                                            transfers(progress), subset)
    out(f"imported into {session.shown(root)} (checksums recorded)")


@click.group("weights")
def weights_group():
    """Team weights obtained by hand (a mirror such as Baidu Netdisk, a copy from a colleague)."""


@weights_group.command("import")
@click.argument("team_id")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@pass_session
def weights_import(session: Session, team_id, path):
    """Place TEAM_ID's weights from PATH (a folder or .zip/.tar archive) into weights/<team>/.

    PATH holds what the manifest's weights[].name entries name (for a team whose weights are one
    folder, PATH may be that folder itself). Every file is pinned by sha256 in weights/<team>/sha256.json;
    a later fetch or import that brings different bytes is refused. Nothing changes unless every
    declared name is there.
    """
    proj = session.project
    team = roster.load(proj, team_id)
    pins = weights_mod.import_weights(team, path, proj.weights_dir, proj.downloads_dir)
    for name, digest in sorted(pins.items()):
        out(f"{team.id}: {lit(name)}  sha256 {digest[:16]}…")
    out(f"imported {len(pins)} file(s) into {session.shown(proj.team_weights(team.id))} (checksums pinned)")


COMMANDS = [fetch, data_group, weights_group]
