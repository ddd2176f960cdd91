"""Verification and the report: verify, audit, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness.audit import dvc_record, plan
from harness.audit import workflow as audit_mod
from harness.catalogue import datasets, roster
from harness.catalogue.manifests import Manifest
from harness.cli import render
from harness.cli.render import err, lit, out, progress_display
from harness.cli.session import (
    CHALLENGE_HELP,
    EXIT_CHECK_FAILED,
    FROM_OUTPUTS_HELP,
    GPUS_HELP,
    Session,
    device_option,
    json_option,
    pass_session,
    unsafe_option,
)
from harness.core import settings
from harness.core.errors import HarnessError
from harness.core.files import write_json_atomic
from harness.core.settings import Settings
from harness.run import runners
from harness.verdict import rules


@click.command()
@click.argument("team_id")
@click.option("--dataset", help="Dataset to verify on (default: the test set of the team's challenge).")
@device_option("Device for inference and the learned metrics (default: params.yaml).")
@click.option("--runner", "runner_name", help=f"Runner for inference: {', '.join(runners.names())} "
                                              "(default: params.yaml).")
@click.option("--gpus", help=GPUS_HELP)
@click.option("--mode", type=click.Choice(settings.MODES), help="Evaluation mode (default: params.yaml).")
@click.option("--from-outputs", "from_outputs", is_flag=False, flag_value="", default=None, metavar="[SOURCE]",
              help=FROM_OUTPUTS_HELP)
@click.option("--rerun", is_flag=True, help="Run inference and evaluation again even if results for the "
                                            "same manifest run key exist.")
@click.option("--plan", "plan_only", is_flag=True, help="Print what the check needs and what is missing, then stop "
                                                       "(exit 2 if something blocks it).")
@json_option("Write the verification (published, reproduced, delta, tolerance, ok per metric) here.")
@unsafe_option
@pass_session
def verify(session: Session, team_id, dataset, device, runner_name, gpus, mode, from_outputs, rerun, plan_only,
           json_out, unsafe_no_sandbox):
    """Check one team's published numbers: fetch, run, score, compare. Exits 0 only if reproduced.

    First a plan: the dataset (the team's challenge test set unless --dataset), its code, each weights
    file and its source, where it runs, the metric weights, disk and time; nothing is downloaded while
    a piece that only you can provide is missing (exit 2). Earlier results are reused when the team's
    run key (the manifest minus its published numbers, plus the team folder's files) is unchanged;
    --rerun forces a fresh run.
    """
    proj = session.project
    team = roster.load(proj, team_id)
    dataset = datasets.get(dataset or plan.default_dataset(team))  # resolved once, passed on as it is
    chosen = session.settings.given(runner=runner_name, device=device, gpus=gpus, mode=mode,
                                    unsafe_no_sandbox=unsafe_no_sandbox)
    findings = plan.make(proj, team, dataset, chosen, from_outputs)
    render.plan_table(team.id, dataset.id, findings)
    blocked = plan.blocking(findings)
    if blocked:
        raise HarnessError(f"{team.id} cannot be checked on '{dataset}' yet: {len(blocked)} piece(s) missing: "
                           + ", ".join(f.check for f in blocked), hint="the plan above says how to get each one")
    if plan_only:
        return
    target, why = dvc_record.place(proj, team.id, dataset.id, chosen, from_outputs)
    if why:
        out(f"[dim]not the pipeline's run: {lit(why)}; its files go to {session.shown(target.outputs_root)}/ "
            "(the pipeline's stay as they are)[/dim]", soft_wrap=True)
    with progress_display() as progress:
        result = audit_mod.verify_team(target, team, dataset, chosen, from_outputs, rerun, progress)
    if why is None and dvc_record.has_pipeline(proj):
        _record_in_pipeline(session, team, dataset.id)
    if json_out:
        write_json_atomic(json_out, result)
    render.verification(result)
    if not rules.passed(result):
        sys.exit(EXIT_CHECK_FAILED)


def _record_in_pipeline(session: Session, team: Manifest, dataset: str) -> None:
    """The run verify made is the pipeline's run of the team: `dvc commit` its stages."""
    try:
        dvc_record.record(session.project, team, dataset)
    except HarnessError as exc:
        err(f"[yellow]warning:[/yellow] {lit(exc.message)}; {lit(exc.hint)}", soft_wrap=True)
        return
    out(f"recorded as the pipeline's run of {team.id}: `dvc repro` will not run it again", soft_wrap=True)


@click.command()
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.option("--teams", "team_list", help="Comma-separated team ids (default: params.yaml's teams).")
@click.option("--from-outputs", "from_outputs", is_flag=False, flag_value="", default=None, metavar="[SOURCE]",
              help=FROM_OUTPUTS_HELP + " A source holding every team's folder is narrowed to each team's own.")
@click.option("--mode", type=click.Choice(settings.MODES), help="Evaluation mode (default: params.yaml).")
@click.option("--rerun", is_flag=True, help="Ignore earlier results.")
@click.option("--challenge", "challenge_id", metavar="ID", help=CHALLENGE_HELP)
@click.option("--metrics", "metric_list", metavar="NAMES",
              help="Comma-separated metrics to compute besides the published ones (default: params.yaml's; with "
                   "--challenge, those its tracks report, and these beside them).")
@unsafe_option
@pass_session
def audit(session: Session, dataset, team_list, from_outputs, mode, rerun, challenge_id, metric_list,
          unsafe_no_sandbox):
    """Verify every team and write the report: the whole audit without DVC.

    A team that cannot run, or fails, is reported with its reason; the others carry on. Runs that are not
    the pipeline's (a team outside params.yaml, another dataset or device) go to checks/; with --challenge
    the report goes to report/ID/, beside the pipeline's report/. Exits 1 unless every runnable team
    reproduced.
    """
    from harness.catalogue.challenges import get
    from harness.catalogue.metrics import parse_metric_list

    proj = session.project
    team_ids, dataset = session.selection(team_list, dataset, challenge_id)
    asked = parse_metric_list(metric_list) if metric_list else []
    # a challenge's audit computes what the challenge reports, not what params.yaml lists for another one
    metrics = [*get(challenge_id).metrics, *asked] if challenge_id else asked or None
    chosen = session.settings.given(mode=mode, unsafe_no_sandbox=unsafe_no_sandbox,
                                    metrics=list(dict.fromkeys(metrics)) if metrics else None)
    with progress_display() as progress:
        results = audit_mod.audit(proj, team_ids, datasets.get(dataset), chosen, from_outputs, rerun, progress)
    _write_report(session, results, dataset, chosen,
                  proj.challenge_report_dir(challenge_id) if challenge_id else proj.report_dir)
    if not audit_mod.all_passed(results):
        sys.exit(EXIT_CHECK_FAILED)


@click.command()
@click.option("--dataset", help="Dataset (default: params.yaml).")
@click.option("--teams", "team_list", help="Comma-separated team ids (default: params.yaml).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.json and summary.csv (default: report/, or report/ID/ with "
                   "--challenge).")
@click.option("--show", "show_only", is_flag=True,
              help="Print the report already in --out instead of making a new one.")
@click.option("--check", is_flag=True, help="Exit 1 unless every runnable team reproduced.")
@click.option("--challenge", "challenge_id", metavar="ID", help=CHALLENGE_HELP)
@click.option("--quiet", is_flag=True, help="Write the report and say where, without its story (the pipeline's "
                                            "stage; `harness report --show` prints it).")
@pass_session
def report(session: Session, dataset, team_list, out_dir, show_only, check, challenge_id, quiet):
    """Verify every team from its evaluation and write the audit report; prints a table and a SUMMARY line."""
    proj = session.project
    out_dir = out_dir or (proj.challenge_report_dir(challenge_id) if challenge_id else proj.report_dir)
    if show_only:
        path = out_dir / "report.json"
        if not path.exists():
            raise HarnessError(f"no report in {session.shown(out_dir)}", hint="run `dvc repro` or `harness report`")
        built = json.loads(path.read_text())
        results = built["teams"]
        render.report_story(built, results, built["dataset"])
        if (out_dir / "index.html").exists():
            out(f"report: {session.shown(out_dir / 'index.html')}")
    else:
        team_ids, dataset = session.selection(team_list, dataset, challenge_id)
        results = audit_mod.verifications(proj, team_ids, dataset)
        _write_report(session, results, dataset, session.settings, out_dir, quiet)
    if check and not audit_mod.all_passed(results):
        sys.exit(EXIT_CHECK_FAILED)


def _write_report(session: Session, results: list[dict], dataset: str, chosen: Settings, out_dir: Path,
                  quiet: bool = False) -> None:
    """Write the report (report.md, report.json, summary.csv, index.html), print its story (or, quiet, where
    it is)."""
    built, paths = audit_mod.write_report(session.project, results, dataset, chosen, out_dir)
    if quiet:
        out(f"report: {session.shown(paths[-1])} (`harness report --show` prints it)")
        return
    for path in paths[:-1]:
        out(f"wrote {session.shown(path)}")
    render.report_story(built, results, dataset)
    out(f"report: {session.shown(paths[-1])}")


COMMANDS = [verify, audit, report]
