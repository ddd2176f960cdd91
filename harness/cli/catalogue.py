"""The catalogue: list, show, validate, new-team, metrics, doctor."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
import yaml

from harness.audit import doctor as doctor_mod
from harness.audit import dvc_record
from harness.catalogue import challenges, datasets, metrics, roster
from harness.cli import render
from harness.cli.render import err, lit, out
from harness.cli.session import EXIT_CHECK_FAILED, Session, json_option, pass_session
from harness.core.errors import HarnessError, ManifestError
from harness.core.files import write_json_atomic
from harness.core.settings import InvalidSetting
from harness.fetch import repositories
from harness.report import status_page
from harness.verdict import leaderboard


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print every challenge's status as Markdown, one table each (docs/status.md is this).")
@click.option("--runnable", "only_runnable", is_flag=True, help="Only teams that can run as published.")
@click.option("--track", metavar="NAME",
              help="Only teams ranked in this track, by the name their challenge gives it (restoration: Track 1 "
                   "by PSNR; perceptual: Track 2 by score).")
@click.option("--challenge", "challenge_id", metavar="ID",
              help="Only teams of this challenge (a file challenges/ID.yaml).")
@pass_session
def list_teams(session: Session, as_json, as_markdown, only_runnable, track, challenge_id):
    """List every team: ranks, headline published numbers, status, determinism and recipe.

    The rank and value columns are each track's, as its challenge defines them."""
    if challenge_id:
        challenges.get(challenge_id)
    teams, problems = roster.load_all(session.project)
    rules = challenges.catalogue()
    if as_markdown:
        if problems:
            raise ManifestError(problems)
        click.echo(status_page.markdown(teams, rules), nl=False)
        return
    rows = []
    for team in teams:
        if (only_runnable and not team.runnable) or (track and track not in team.data.get("tracks", [])) \
                or (challenge_id and team.data["challenge"] != challenge_id):
            continue
        nothing: dict[str, Any] = {}
        entries = team.data.get("published", {})
        dataset, published = next(iter(entries.items()), (None, nothing))
        # ranks where the table gives them (a test set's), beside the values of every entry (the first wins)
        ranks: dict = next((e["ranks"] for e in entries.values() if e.get("ranks")), {})
        values = {k: v for e in reversed(list(entries.values())) for k, v in e.get("values", {}).items()}
        rows.append({"id": team.id, "name": team.name, "challenge": team.data["challenge"],
                     "runnable": team.runnable, "determinism": team.determinism["class"],
                     "entry": team.entry["kind"], "recipe": (team.container or {}).get("recipe"),
                     "dataset": dataset, "ranks": ranks or published.get("ranks", {}), "published": values})
    rows.sort(key=lambda r: (r["challenge"], r["ranks"].get(rules[r["challenge"]].tracks[0].id, 10**6), r["id"]))
    if as_json:
        click.echo(json.dumps({"teams": rows, "invalid": [p.as_dict() for p in problems]}, indent=2))
    else:
        render.catalogue_tables(rows, rules)
        for problem in render.unique(problems):
            err(f"[red]invalid[/red] {lit(problem)}")
    if problems:
        sys.exit(EXIT_CHECK_FAILED)


@click.command()
@click.argument("team_id")
@pass_session
def show(session: Session, team_id):
    """Show one team's manifest in full, with its status, known defects and hashes."""
    team = roster.load(session.project, team_id)
    out(f"[bold]{lit(team.name)}[/bold] ({team.id})  manifest sha256 {team.hash[:12]}…  run key {team.run_key[:12]}…")
    status = team.data["status"]
    out("status: " + ("runnable" if team.runnable else "not runnable"))
    for reason in status.get("reasons", []):
        out(f"  reason: {lit(reason)}")
    for defect in status.get("defects", []):
        out(f"  known defect: {lit(defect)}")
    if team.defaults:
        out(f"[dim]as resolved: the file, completed by challenges/{lit(team.data['challenge'])}.yaml's defaults[/dim]")
    click.echo(render.visible(yaml.safe_dump(team.data, sort_keys=False, width=110, allow_unicode=True)))
    own = session.project.challenge_report_dir(team.data["challenge"]) / "report.json"  # its challenge's audit
    _last_verdict(own if own.is_file() else session.project.report_dir / "report.json", team.id)


def _last_verdict(report_path, team_id: str) -> None:
    """The team's verdict in the last report, with the evidence of each model metric that did not reproduce."""
    if not report_path.is_file():
        return
    row = next((r for r in json.loads(report_path.read_text()).get("teams", []) if r.get("team") == team_id), None)
    if row is None:
        return
    out(f"last report ({report_path.name}, on {row.get('checked_on') or row.get('dataset')}): {row['verdict']}")
    for name, metric in row.get("metrics", {}).items():
        if metric.get("evidence"):
            render.counter_evidence(name, metric)



@click.command()
@click.argument("targets", nargs=-1)
@click.option("--params", "params_only", is_flag=True,
              help="Check only params.yaml (every value, the teams it names) and mark it checked: the pipeline's "
                   "first stage, so that an invalid value stops it before any team's results are replaced.")
@pass_session
def validate(session: Session, targets, params_only):
    """Check manifests against the schema and the semantic rules.

    TARGETS are team ids or paths to manifest files or team folders; none means every team, the
    challenge files (challenges/*.yaml) and each challenge's published table as a whole: every track's
    ranks are 1..N and follow the track's rule.
    Exits 1 if anything has a problem; each problem names the file, field, value and rule.
    """
    proj = session.project
    if params_only:
        _check_params(session)
        return

    said: set[str] = set()  # a broken challenge file is a problem of every manifest naming it: said once

    def passed(problems, ok_line) -> bool:
        for problem in render.unique(problems):
            if problem not in said:
                said.add(problem)
                out(f"[red]error[/red] {lit(problem)}", soft_wrap=True)
        if not problems:
            out(f"[green]ok[/green]    {lit(ok_line)}")
        return not problems

    rules, tables_ok = {}, True
    if not targets:
        try:
            rules = challenges.catalogue()
            metrics.all_specs()  # the metrics the challenges name exist
            datasets.all_datasets()  # and their datasets
            passed([], f"challenges/: {', '.join(rules)}")
        except ManifestError as exc:
            tables_ok = passed(exc.problems, "")
    paths = roster.manifest_paths(proj, targets)
    teams, failed = [], 0
    for path in paths:
        try:
            team, known = repositories.validate_manifest(proj, path)
            teams.append(team)
            passed([], session.shown(path) + (" (not runnable, as the checkout confirms)" if known else ""))
            for problem in known:
                out(f"[yellow]note[/yellow]  {lit(problem)}", soft_wrap=True)
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


def _check_params(session: Session) -> None:
    """The pipeline's first stage: params.yaml's values, then what this machine cannot do of them."""
    proj = session.project
    refused = doctor_mod.machine_refusals(proj, session.settings)  # settings raise first, naming value and rule
    if refused:
        undone = os.environ.get(dvc_record.EXPERIMENT_BASELINE) and dvc_record.undo_experiment(
            proj, os.environ[dvc_record.EXPERIMENT_BASELINE], {"device", "runner"})
        raise HarnessError(f"params.yaml: {'; '.join(f.detail for f in refused)}",
                           hint="nothing was run or replaced" + ("; the experiment's values were taken back out "
                                                                 "of params.yaml" if undone else "") + "; "
                           + "; ".join(f.fix or "" for f in refused))
    dvc_record.mark_params_checked(proj)
    out(f"[green]ok[/green]    params.yaml ({len(session.settings.teams)} team(s))")


@click.command("new-team")
@click.argument("team_id")
@pass_session
def new_team(session: Session, team_id):
    """Scaffold teams/TEAM_ID/manifest.yaml from teams/_template/."""
    created = roster.new_team(session.project, team_id)
    out(f"created {session.shown(created)}; edit it, then run `harness validate {team_id}`")


@click.command("metrics")
def list_metrics():
    """List the metrics the harness computes, then the challenges' scores: reference, direction, published
    decimals, tolerance, each metric's term in a score (or which challenges define the score), weights."""
    render.metrics_table(challenges.catalogue().values())


@click.command()
@json_option("Write the findings here.")
@pass_session
def doctor(session: Session, json_out):
    """Check everything params.yaml needs before a long audit: packages, engine, GPU and NVIDIA runtime,
    dataset, each team's code and weights, metric weights, disk, Slurm. Downloads nothing.

    Exits 1 if the audit cannot run as configured; 'to fetch' items are fetched by the pipeline.
    """
    try:
        config = session.settings
    except InvalidSetting as exc:  # an invalid value blocks the audit: said as a finding, like any other
        render.doctor_table("harness doctor: params.yaml", [doctor_mod.Finding("params.yaml", "missing", exc.message,
                                                                                exc.hint)])
        out("[red]the audit cannot run as configured:[/red] params.yaml holds an invalid value")
        sys.exit(EXIT_CHECK_FAILED)
    findings = doctor_mod.examine(session.project, config)
    render.doctor_table(f"harness doctor: dataset {config.dataset}, runner {config.runner}, "
                        f"device {config.device}, executor {config.executor}", findings)
    blocking = [f for f in findings if f.blocking]
    if json_out:
        write_json_atomic(json_out, {"can_run": not blocking, "findings": [f.as_dict() for f in findings]})
    if blocking:
        out(f"[red]the audit cannot run as configured:[/red] {len(blocking)} blocking finding(s): "
            + ", ".join(f.check for f in blocking))
        sys.exit(EXIT_CHECK_FAILED)
    out("the audit can run as configured")


COMMANDS = [list_teams, show, validate, new_team, list_metrics, doctor]
