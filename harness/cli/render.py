"""Everything the command line draws: consoles, progress bars, and the tables of each command."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from harness.catalogue.metrics import all_specs
from harness.core.progress import Step
from harness.core.records import PUBLISHED_OUTPUTS
from harness.report import files as report_mod
from harness.verdict.leaderboard import change_line


class _Consoles:
    """rich consoles, made on first use; wide tables when the output is a file or a pipe (CI, dvc). No
    emoji codes: ':' in a team's text stays ':'. COLUMNS, where set, is the width."""

    def __getattr__(self, name):
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
        self.out = Console(highlight=False, emoji=False, width=width)
        self.err = Console(stderr=True, highlight=False, emoji=False, width=width)
        return getattr(self, name)


consoles = _Consoles()


# Control characters (C0, DEL, C1) and the bidirectional overrides that could reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def lit(value) -> str:
    """Text from outside (a manifest, a challenge file, an image name, a team's log or exception) as it is:
    rich markup escaped, control characters shown as escapes (no colour, no link, no cleared screen)."""
    return escape(visible(value))


def visible(value) -> str:
    """Control characters shown as \\xNN / \\uNNNN, for text printed without markup."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def unique(problems) -> list:
    """Each problem once, in order (one broken challenge file is a problem of every manifest that names it)."""
    return list(dict.fromkeys(str(p) for p in problems))


def out(*args, **kwargs) -> None:
    consoles.out.print(*args, **kwargs)


def err(*args, **kwargs) -> None:
    consoles.err.print(*args, **kwargs)


PLAIN_INTERVAL_S = 10.0  # outside a terminal: at most one progress line per task in this time


@contextlib.contextmanager
def progress_display():
    """A Progress (harness.core.progress) drawn as rich bars on stderr: one bar per task, notes as lines,
    run records as their summaries. Outside a terminal (a log file, CI, a pipe), plain lines instead."""
    if not consoles.err.is_terminal:
        yield _plain_progress()
        return

    class Count(ProgressColumn):
        def render(self, task):
            unit = DownloadColumn() if task.fields.get("unit") == "bytes" else MofNCompleteColumn()
            return unit.render(task)

    bars = Progress(TextColumn("{task.description}"), BarColumn(), Count(), TimeElapsedColumn(),
                    console=consoles.err, transient=False)
    tasks = {}

    def on_step(step: Step):
        if step.note:  # notes are the library's sentences; the values in them may come from outside
            (consoles.out if step.outcome else bars.console).print(visible(step.note), soft_wrap=True, markup=False)
        elif step.record:
            print_record(step.record)
        else:
            label = lit(step.label or step.task)
            if step.task not in tasks:
                tasks[step.task] = bars.add_task(label, total=step.total, unit=step.unit)
            bars.update(tasks[step.task], description=label, completed=step.done, total=step.total)

    with bars:
        yield on_step


def _plain_progress():
    """Progress as lines, in order with the notes: one when a task starts, then at most one each
    PLAIN_INTERVAL_S, and one when it ends, with its time."""
    started, printed, ended = {}, {}, set()

    def amount(step: Step) -> str:
        done = step.done or 0
        if step.unit == "bytes":
            return f"{done / 2 ** 20:.1f}" + (f"/{step.total / 2 ** 20:.1f} MiB" if step.total else " MiB")
        return f"{done}/{step.total}" if step.total else str(done)

    def on_step(step: Step):
        if step.note:
            (consoles.out if step.outcome else consoles.err).print(visible(step.note), soft_wrap=True, markup=False)
            return
        if step.record:
            print_record(step.record)
            return
        now = time.monotonic()
        started.setdefault(step.task, now)
        finished = step.total is not None and (step.done or 0) >= step.total
        if step.task in ended or not (step.task not in printed or finished
                                      or now - printed[step.task] >= PLAIN_INTERVAL_S):
            return
        printed[step.task] = now
        line = f"{visible(step.label or step.task)}: {amount(step)}"
        if finished:
            ended.add(step.task)
            line += f" in {now - started[step.task]:.1f} s"
        consoles.err.print(line, soft_wrap=True, markup=False, highlight=False)

    return on_step


def number(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def remedy(fix: str) -> str:
    return report_mod.remedy_text(fix)


# --- catalogue -------------------------------------------------------------------------------------

def catalogue_tables(rows: list[dict], rules: dict) -> None:
    """One table per challenge: ranks and ranking values per track, status, determinism, recipe. On a screen
    too narrow for every column, the compact one: id (never cut), name (wrapped at words), ranks, status."""
    for challenge_id in dict.fromkeys(r["challenge"] for r in rows):
        members = [r for r in rows if r["challenge"] == challenge_id]
        tracks = rules[challenge_id].tracks
        table = Table(title=f"{lit(rules[challenge_id].name)} ({challenge_id}): {len(members)} team(s)")
        id_width = max(len(r["id"]) for r in members)
        names = max(len(r["name"]) for r in members)
        full = id_width + min(names, 30) + 12 * len(tracks) + 70 <= consoles.out.width
        # an id is what a user types next: never cut; the name wraps at its words
        table.add_column("id", no_wrap=True, min_width=id_width)
        longest_word = max(len(word) for r in members for word in r["name"].split() or [""])
        table.add_column("name", min_width=min(longest_word, 30), overflow="fold")
        if not full:  # the tracks whose rank columns fit beside them (3 characters of border each column)
            room = consoles.out.width - 1 - (id_width + 3) - (min(longest_word, 30) + 3) - (6 + 3)
            tracks = tracks[:max(1, room // (max(len(t.id) for t in tracks) + 3))]
        for t in tracks:
            table.add_column(t.id.replace("track", "T"), justify="right", no_wrap=True)
            if full:
                table.add_column("rank sum" if t.rank_sum else all_specs()[t.rank_by].title, justify="right")
        for column in ("on", "status", "determinism", "recipe") if full else ("status",):
            table.add_column(column, no_wrap=not full)
        for row in members:
            cells = [row["id"], lit(row["name"])]
            for t in tracks:
                cells.append(str(row["ranks"].get(t.id, "")))
                if full:
                    parts = [row["ranks"].get(part) for part in t.rank_sum]
                    cells.append((str(sum(parts)) if parts and None not in parts else "") if t.rank_sum else
                                 number(row["published"].get(t.rank_by), all_specs()[t.rank_by].precision))
            status = "runnable" if row["runnable"] else "[yellow]not runnable[/yellow]"
            extra = [row["dataset"] or "—", status, row["determinism"], row["recipe"] or row["entry"]] if full \
                else ["ok" if row["runnable"] else "[yellow]no[/yellow]"]
            table.add_row(*cells, *extra)
        out(table)
        if not full:
            out("[dim](a narrow screen: `harness list --json`, or a wider one, shows every column)[/dim]")


def metrics_table(rules) -> None:
    table = Table(title="metrics (in report order)")
    for column in ("name", "title", "kind", "better", "decimals", "tolerance", "score terms", "weight files"):
        table.add_column(column, min_width=36 if column == "score terms" else None,
                         max_width=30 if column == "weight files" else None)
    for spec in all_specs().values():
        tolerance = " + ".join(part for part in (f"{spec.tolerance_abs:g}" if spec.tolerance_abs else "",
                                                 f"{spec.tolerance_rel:g}×|v|" if spec.tolerance_rel else "") if part)
        if spec.backend == "derived":
            terms = "defined by " + ", ".join(c.id for c in rules if spec.name in c.scores)
        else:
            terms = "\n".join(sorted({f"{name}: {term_text(t, score)}" for c in rules
                                       for name, score in c.scores.items() for t in score.terms
                                       if t.metric == spec.name}))
        table.add_row(spec.name, lit(spec.title), spec.reference, "lower" if spec.lower_better else "higher",
                      str(spec.precision), tolerance or "0", terms, "\n".join(w.path for w in spec.weight_files))
    out(table)


def term_text(term, score) -> str:
    """A score term as a formula of the metric's mean v."""
    if term.exp_ratio is not None:
        return f"{term.weight:g}·exp({term.exp_ratio:g}·v / {score.baseline}'s)"
    return f"{term.offset:g} + {term.scale:g}·v" + (f" (≥ {term.floor:g})" if term.floor is not None else "")


def doctor_table(title: str, findings) -> None:
    """Findings as a table where every cell fits the screen whole; otherwise one finding per line, never cut
    (a URL, an id, a path or a command is what a reader copies next)."""
    colours = {"ok": "green", "to fetch": "cyan", "warning": "yellow", "missing": "red", "unknown": "yellow"}
    rows = [(visible(f.check), f.status, visible(f.detail), visible(f.fix or "")) for f in findings]
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in
              enumerate(("check", "status", "detail", "how to fix"))]
    if sum(widths) + 13 <= consoles.out.width:  # 13: the borders and padding of four columns
        table = Table(title=title)
        for column in ("check", "status", "detail", "how to fix"):
            table.add_column(column, no_wrap=True)
        for (check, status, detail, fix) in rows:
            colour = colours[status]
            table.add_row(escape(check), f"[{colour}]{status}[/{colour}]", escape(detail), escape(fix))
        out(table, soft_wrap=False)
        return
    out(f"[bold]{lit(title)}[/bold]")
    for (check, status, detail, fix) in rows:
        colour = colours[status]
        out(f"[{colour}]{status:<8}[/{colour}] {escape(check)}: {escape(detail)}", soft_wrap=True)
        if fix:
            out(f"         how to fix: {escape(fix)}", soft_wrap=True)


def plan_table(team_id: str, dataset: str, findings) -> None:
    """What checking a team needs: the doctor's table, for one team on one dataset."""
    doctor_table(f"plan: {team_id} on '{dataset}'", findings)


# --- running ---------------------------------------------------------------------------------------

def print_record(record: dict) -> None:
    """A run record in one line, or its failure (on stderr) with the hint and the log tail."""
    console = consoles.out if record["status"] == "ok" else consoles.err
    if record["status"] == "ok" and record["runner"] == PUBLISHED_OUTPUTS:
        console.print(f"{record['team']}: published outputs collected from {lit(record['source'])}")
        return
    if record["status"] == "ok":
        took = f" in {record['wall_s']:.1f} s" if record.get("wall_s") is not None else ""  # (kept in session.json)
        console.print(f"{record['team']}: {len(record['runs'])} run(s) ok with the {record['runner']} runner "
                      f"on {record['device']}{took}")
        return
    failure = record["failure"]
    console.print(f"[red]{record['team']}: {record['status']} ({failure['kind']})[/red]: {lit(failure['message'])}",
                  soft_wrap=True)
    if failure.get("hint"):
        console.print(f"hint: {lit(failure['hint'])}")
    if failure.get("log_tail"):
        console.print("[dim]log tail:[/dim]")
        console.print(visible(failure["log_tail"]), markup=False)


SMOKE_COLOURS = {"ok": "green", "failed": "red", "skipped": "yellow", "not_runnable": "yellow"}


def smoke_label(result) -> str:
    return (result.status.replace("_", " ") + (f" ({result.kind})" if result.kind else "")
            + (" (earlier result)" if result.cached else ""))


def smoke_line(result) -> str:
    """One team's smoke result as it ends."""
    colour = SMOKE_COLOURS[result.status]
    seconds = "" if result.seconds is None else f" in {result.seconds:.1f} s"
    return f"{result.team}: [{colour}]{smoke_label(result)}[/{colour}]{seconds}" + (
        f": {lit(result.reason)}" if result.reason and result.status == "failed" else "")


def smoke_table(results, device: str, runner: str) -> dict[str, int]:
    """The smoke test's table and SMOKE line; returns the counts per result (and of determinism disagreements)."""
    table = Table(title=f"smoke test on {device} with the {runner} runner")
    for column in ("team", "result", "s", "2 runs", "why"):
        table.add_column(column, justify="right" if column == "s" else "left", no_wrap=column == "team")
    for result in results:
        colour = SMOKE_COLOURS[result.status]
        runs = {True: "identical", False: "differ", None: ""}[result.identical]
        why = result.determinism or result.reason or ""
        table.add_row(result.team, f"[{colour}]{smoke_label(result)}[/{colour}]",
                      "" if result.seconds is None else f"{result.seconds:.1f}",
                      f"[red]{runs}[/red]" if result.determinism else runs, lit(why))
    out(table)
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "skipped", "not_runnable")}
    counts["determinism disagrees"] = sum(bool(r.determinism) for r in results)
    out(f"SMOKE: {len(results)} team(s): " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items()))
    return counts


# --- evaluation ------------------------------------------------------------------------------------

def evaluation(payload: dict) -> None:
    stand_in = " [bold red]STAND-IN WEIGHTS: these numbers measure nothing[/bold red]" if payload.get("stand_in") \
        else ""
    table = Table(title=f"{payload['n_images']} image(s), {payload['mode']} mode{stand_in}")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("note")
    for name in payload["metrics"]:
        if name in payload["mean"]:
            table.add_row(name, f"{payload['mean'][name]:.{all_specs()[name].precision + 2}f}", "")
        elif name in payload["unavailable"]:
            gap = payload["unavailable"][name]
            table.add_row(name, "unavailable", lit(f"{gap['reason']}; {remedy(gap['fetch'])}"))
    fit = payload.get("lr_consistency")
    if fit and fit["mean_psnr_y"] is not None:
        table.add_row("LR consistency", f"{fit['mean_psnr_y']:.2f}",
                      "PSNR (Y, dB) of each output downscaled x4 against its input; a check, not a published metric")
    out(table)
    for finding in payload["findings"]:
        out(f"[yellow]{finding['kind']}[/yellow] {lit(finding['image'])}: {lit(finding['message'])}")
    for image, message in payload["failed_images"].items():
        err(f"[red]failed[/red] {lit(image)}: {lit(message)}")


def team_evaluation(result: dict, verbose: bool = False) -> None:
    """One line per run (the pipeline's story); with --verbose, each run's table and findings."""
    inference_state = result["inference"]
    if inference_state["status"] != "ok":
        failure = inference_state["failure"] or {}
        out(f"{result['team']}: inference {inference_state['status']} ({failure.get('kind')}): nothing to score")
        return
    for run in result["runs"]:
        if run.get("status") != "ok":
            out(f"[red]{result['team']} {run['run']}: {lit(run.get('failure') or run.get('failed_images'))}[/red]")
            continue
        if verbose:
            out(f"[bold]{result['team']} {run['run']}[/bold]")
            evaluation(run)
            continue
        means = ", ".join(f"{n} {run['mean'][n]:.{all_specs()[n].precision + 2}f}" for n in run["metrics"]
                          if n in run["mean"])
        extra = [f"{len(run['findings'])} finding(s)"] if run["findings"] else []  # the report names gaps once
        extra += ["STAND-IN weights: the numbers measure nothing"] if run.get("stand_in") else []
        out(f"{result['team']} {run['run']}: {means}" + (f" ({'; '.join(extra)}; --verbose shows them)"
                                                          if extra else ""), soft_wrap=True)


# --- verification and report -----------------------------------------------------------------------

def verification(result: dict) -> None:
    table = Table(title=f"{result['team']} on {lit(result['dataset'])}: {lit(report_mod.verdict_label(result))}")
    for column in ("metric", "published", "reproduced", "delta", "tolerance", "verdict"):
        table.add_column(column, justify="right" if column not in ("metric", "verdict") else "left")
    for name, row in result["metrics"].items():
        digits = (row["precision"] if row["precision"] is not None else 4) + 2
        if row["reproduced"] is None:
            table.add_row(name, report_mod.fmt(row["published"], row["precision"]), "—", "—",
                          "—" if row["tolerance"] is None else f"{row['tolerance']:.4f}",
                          lit(f"unavailable: {remedy(row['fetch']) or row.get('reason', '')}"))
            continue
        reproduced = report_mod.fmt(row["reproduced"], digits)
        if row.get("spread") is not None:
            reproduced += f" (runs {report_mod.fmt(min(row['run_values']), digits)}…"
            reproduced += f"{report_mod.fmt(max(row['run_values']), digits)})"
        table.add_row(name, report_mod.fmt(row["published"], row["precision"]), reproduced,
                      report_mod.signed(row["delta"], digits), f"{row['tolerance']:.{digits}f}",
                      "[green]ok[/green]" if row["ok"] else "[red]diverged[/red]")
    out(table)
    if result.get("failure"):
        failure = result["failure"]
        out(f"[red]{result['verdict']} ({failure['kind']})[/red]: {lit(failure['message'])}", soft_wrap=True)
        if failure.get("hint"):
            out(f"hint: {lit(failure['hint'])}")
    if result.get("exact_outputs") is not None:
        out("outputs bit-identical to the reference: " + ("yes" if result["exact_outputs"] else "no"))
    for name, row in result["metrics"].items():
        if row.get("per_image"):
            spec = all_specs()[name]
            ranked = sorted(((v, k) for k, v in row["per_image"].items() if v is not None),
                            reverse=spec.lower_better)
            worst = ", ".join(f"{lit(stem)} {value:.{spec.precision + 2}f}" for value, stem in ranked[:5])
            out(f"[red]{name}[/red] per image, worst first: {worst}")
    for finding in result.get("findings", []):
        out(f"[yellow]{finding['kind']}[/yellow] {finding.get('run', '')} {lit(finding['image'])}: "
            f"{lit(finding['message'])}")


def leaderboards(built: dict) -> None:
    for board in built.get("leaderboards", []):
        out(f"leaderboard {lit(change_line(board))}", soft_wrap=True)
        for finding in board.get("findings", []):  # the organizers' list against their own bar
            out(f"  [yellow]ranking[/yellow] {lit(finding)}", soft_wrap=True)


def not_computed(results: list[dict]) -> None:
    """Metrics some team could not be scored on, one line per fix, with the one command that fixes it."""
    for gap in report_mod.gaps_by_fix(results):
        titles = ", ".join(all_specs()[n].title if n in all_specs() else n for n in gap["metrics"])
        fix = f"; {lit(remedy(gap['fix']))}" if gap["fix"] else f" ({lit(gap['reason'])})"
        out(f"[yellow]not computed here[/yellow] (never counted as 0): {lit(titles)}{fix}", soft_wrap=True)


def report_table(results: list[dict], dataset: str) -> None:
    names = report_mod.metric_names(results, computed_only=True)
    table = Table(title=f"Audit on '{lit(dataset)}': published / reproduced")
    table.add_column("team")
    table.add_column("verdict")
    for name in names:
        table.add_column(all_specs()[name].title, justify="right")
    colours = {"exact": "green", "reproduced": "green", "diverged": "red", "failed": "red",
               "not_runnable": "yellow"}
    for result in results:
        cells = [report_mod.cell(result["metrics"].get(name), ("[green]✓[/green]", "[red]✗[/red]")) for name in names]
        colour = colours[result["verdict"]]
        table.add_row(result["team"], f"[{colour}]{lit(report_mod.verdict_label(result))}[/{colour}]", *cells)
    out(table)


def report_story(built: dict, results: list[dict], dataset: str) -> None:
    """What a report says on the console: the leaderboards, the table of what was computed, the gaps in one
    line per fix, the headline, the SUMMARY line."""
    leaderboards(built)
    report_table(results, dataset)
    not_computed(results)
    if built.get("git_sha", "") and built["git_sha"].endswith("+dirty"):
        out(f"[yellow]note[/yellow]: the checkout had uncommitted changes (git {lit(built['git_sha'])})")
    out(lit(built.get("headline") or report_mod.headline(results)), soft_wrap=True)
    out(built["summary"])


def counter_evidence(metric: str, row: dict, limit: int = 12) -> None:
    """Where two FLOPs counters part, for a value that did not reproduce: the reason, then the layers where
    they differ most (layer, type, output shape, FLOPs by each counter)."""
    evidence = row.get("evidence") or {}
    out(f"  [red]{metric}[/red]: {lit(row.get('reason', ''))}", soft_wrap=True)
    layers = sorted(evidence.get("layers", []), key=lambda r: -abs((r.get("fvcore") or 0) - r["model_summary"]))
    table = Table(title=f"{metric}: the {min(limit, len(layers))} layers where the counters differ most "
                        f"(of {len(layers)}; all in report.json)")
    for column in ("layer", "type", "output", "model_summary", "fvcore"):
        table.add_column(column, justify="right" if column in ("model_summary", "fvcore") else "left")
    for layer in layers[:limit]:
        table.add_row(lit(layer["layer"]), layer["type"], "×".join(map(str, layer.get("output") or [])),
                      f"{layer['model_summary']:,}", "—" if layer.get("fvcore") is None else f"{layer['fvcore']:,}")
    out(table)
