"""Running teams: infer, smoke, and the Slurm jobs (jobs, jobs submit, cancel)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from harness.audit import dvc_record, workflow
from harness.audit import smoke as smoke_mod
from harness.catalogue import challenges, datasets, roster
from harness.cli import render
from harness.cli.render import lit, out, progress_display
from harness.cli.session import (
    EXIT_CHECK_FAILED,
    GPUS_HELP,
    Session,
    device_option,
    json_option,
    pass_session,
    unsafe_option,
)
from harness.core.errors import ManifestError
from harness.core.files import write_json_atomic
from harness.run import runners, slurm


@click.command()
@click.argument("team_id")
@click.option("--dataset", help="Dataset to run on (default: params.yaml).")
@device_option("cpu, cuda or cuda:N (default: params.yaml).")
@click.option("--runner", "runner_name", help=f"How to run: {', '.join(runners.names())} (default: params.yaml).")
@click.option("--gpus", help=GPUS_HELP)
@click.option("--record-failure", is_flag=True,
              help="On failure, write the typed failure into the run record and exit 0 (for pipelines, so "
                   "one team's failure does not stop the others).")
@unsafe_option
@pass_session
def infer(session: Session, team_id, dataset, device, runner_name, gpus, record_failure, unsafe_no_sandbox):
    """Run TEAM_ID on the dataset's LR images into runs/<dataset>/<team>/run-<k>/.

    A nondeterministic team runs determinism.repeats times. Outputs carry the input names and a
    provenance.json; a run's folder appears only once it is complete and checked. With
    `source: outputs` in params.yaml, the team's published outputs are collected instead.
    """
    proj = session.project
    team = roster.load(proj, team_id)
    chosen = session.settings.given(dataset=dataset, runner=runner_name, device=device, gpus=gpus,
                                    unsafe_no_sandbox=unsafe_no_sandbox)
    target, why = dvc_record.place(proj, team.id, chosen.dataset, chosen, dvc_record.published_source(chosen),
                                 chosen.executor)
    if why:
        out(f"[dim]not the pipeline's run: {lit(why)}; it goes to {session.shown(target.runs_dir)}/[/dim]",
            soft_wrap=True)
    with progress_display() as progress:
        record = workflow.produce_runs(target, team, datasets.get(chosen.dataset), chosen, progress,
                                       record_failure)
    if record["status"] == "failed" and not record_failure:
        sys.exit(EXIT_CHECK_FAILED)


@click.command()
@click.argument("team_ids", nargs=-1)
@click.option("--all", "all_teams", is_flag=True, help="Every team of the catalogue.")
@click.option("--challenge", "challenge_id", metavar="ID", help="Every team of this challenge (challenges/ID.yaml).")
@device_option("cpu, cuda or cuda:N (default: params.yaml).")
@click.option("--runner", "runner_name", help=f"How to run: {', '.join(runners.names())} (default: params.yaml).")
@click.option("--gpus", help=GPUS_HELP)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Teams smoke-tested at once; each gets its share of the machine's memory.")
@click.option("--timeout", "timeout_s", type=click.IntRange(min=1), default=smoke_mod.DEFAULT_TIMEOUT_S,
              show_default=True, help="Seconds each team may run at most (or its runtime.timeout_s, if lower).")
@click.option("--rerun", is_flag=True, help="Run every team again, even one whose earlier result still holds.")
@json_option("Write the results here.")
@unsafe_option
@pass_session
def smoke(session: Session, team_ids, all_teams, challenge_id, device, runner_name, gpus, jobs, timeout_s, rerun,
          json_out, unsafe_no_sandbox):
    """Run each team's real code end to end on two small LR crops with stand-in weights, before any GPU
    hour is spent: ok, failed (kind), skipped (why) or not runnable.

    Stand-in weights are randomly initialised networks saved exactly as each file's loader reads them
    (weights[].network in the manifest); no real weights are needed. Team code comes from
    `harness fetch code`. Each team's result is kept in .cache/smoke/<team>/result.json as it ends; a
    rerun skips a team that passed and whose code, manifest, harness, environment, runner and device are
    unchanged. Each team runs twice (runs 1 and 2, in one process) and its outputs are compared byte for byte:
    a team declared deterministic whose runs differ, or nondeterministic whose runs never differ where its
    sources would show, is flagged. Exits 1 if any team failed or was flagged.
    """
    proj = session.project
    if challenge_id:
        challenges.get(challenge_id)
        teams, problems = roster.load_all(proj)
        teams = [t for t in teams if t.data["challenge"] == challenge_id]
    else:
        teams, problems = session.named_teams(team_ids, all_teams)
    if problems:
        raise ManifestError(problems)
    chosen = session.settings.given(runner=runner_name, device=device, gpus=gpus,
                                    unsafe_no_sandbox=unsafe_no_sandbox)
    with progress_display() as progress:
        def ended(result):  # the bars' own console, so the line lands above them
            render.err(render.smoke_line(result))

        results = smoke_mod.smoke_teams(proj, teams, chosen, progress, jobs, timeout_s, rerun, ended)
    counts = render.smoke_table(results, chosen.device, chosen.runner)
    if json_out:
        write_json_atomic(json_out, {"device": chosen.device, "runner": chosen.runner,
                                     "teams": [r.as_dict() for r in results]})
    if counts["failed"] or counts["determinism disagrees"]:
        sys.exit(EXIT_CHECK_FAILED)


@click.group("jobs", invoke_without_command=True)
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.pass_context
def jobs(ctx, dataset):
    """List the audit's Slurm jobs and their states (from sacct), one row per team."""
    session: Session = ctx.obj
    session.jobs_dataset = dataset or session.settings.dataset
    if ctx.invoked_subcommand:
        return
    proj, dataset = session.project, session.jobs_dataset
    listing = slurm.load_jobs(proj, dataset)["jobs"]
    if not listing:
        out(f"no Slurm jobs recorded for '{dataset}'")
        return
    states = slurm.sacct_states([e["job_id"] for e in listing.values()])
    table = Table(title=f"Slurm jobs for '{dataset}'")
    for column in ("team", "job", "state", "submitted", "array"):
        table.add_column(column)
    for team_id, entry in sorted(listing.items()):
        table.add_row(team_id, lit(entry["job_id"]), lit(states[entry["job_id"]]), lit(entry["submitted"]),
                      "yes" if entry.get("array") else "")
    out(table)
    summary = slurm.counts(states)
    out(f"{summary['queued']} queued, {summary['running']} running, {summary['done']} done")


@jobs.command("submit")
@pass_session
def jobs_submit(session: Session):
    """Submit one Slurm job per team (as arrays) whose runs are not complete; with executor: local, nothing.

    The pipeline's `submit` stage runs this so that every team's job is queued at once; each
    `infer@<team>` stage then waits for its own job.
    """
    proj, config = session.project, session.settings
    dataset = session.jobs_dataset or config.dataset
    if config.executor != "slurm":
        if not proj.slurm_jobs(dataset).exists():
            write_json_atomic(proj.slurm_jobs(dataset), {"jobs": {}})
        out("executor: local; no Slurm jobs")
        return
    teams = [roster.load(proj, t) for t in config.teams]
    submitted = workflow.submit_jobs(proj, teams, datasets.get(dataset), config)
    skipped = [t.id for t in teams if t.id not in submitted]
    for team_id, entry in submitted.items():
        out(f"{team_id}: Slurm job {entry['job_id']}")
    if skipped:
        out(f"not submitted (complete or not runnable): {', '.join(skipped)}")


@click.command()
@click.argument("team_ids", nargs=-1)
@click.option("--dataset", help="Dataset (default: params.yaml).")
@pass_session
def cancel(session: Session, team_ids, dataset):
    """Cancel the audit's Slurm jobs that have not ended (all, or those of TEAM_IDS).

    A cancelled team's record says `cancelled`; the other teams are not touched.
    """
    cancelled = slurm.cancel(session.project, dataset or session.settings.dataset, list(team_ids) or None)
    out(f"cancelled {len(cancelled)} job(s)" + (f": {', '.join(cancelled)}" if cancelled else ""))


COMMANDS = [infer, smoke, jobs, cancel]
