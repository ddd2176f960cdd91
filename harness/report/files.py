"""The audit report: report.json, report.md and summary.csv, from the verification results."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from harness.catalogue import metrics as M
from harness.core.files import write_bytes_atomic, write_json_atomic
from harness.core.provenance import harness_info
from harness.core.records import REPORT_SCHEMA
from harness.verdict import uncertainty
from harness.verdict.rules import VERDICTS


def summary_line(results: list[dict]) -> str:
    counts = Counter(r["verdict"] for r in results)
    parts = ", ".join(f"{counts.get(v, 0)} {v.replace('_', ' ')}" for v in VERDICTS)
    return f"SUMMARY: {len(results)} team(s): {parts}"


HEADLINE_TEAMS = 4  # teams named in the headline; the rest are counted


def worst_metric(result: dict) -> tuple[str, dict] | None:
    """The compared metric furthest outside its tolerance (delta / tolerance), if any is outside."""
    outside = [(n, m) for n, m in result["metrics"].items() if m.get("ok") is False and m.get("tolerance")]
    return max(outside, key=lambda item: abs(item[1]["delta"]) / item[1]["tolerance"], default=None)


def headline(results: list[dict]) -> str:
    """One sentence a reader sees first: how many teams reproduce, and each one that does not, by its
    worst metric (delta and how many tolerances that is) or its failure."""
    passing = [r for r in results if r["verdict"] in ("exact", "reproduced")]
    runnable = [r for r in results if r["verdict"] != "not_runnable"]
    absent = len(results) - len(runnable)
    tail = f" ({absent} not runnable, not counted)" if absent else ""
    if len(passing) == len(runnable):
        exact = sum(r["verdict"] == "exact" for r in passing)
        return f"All {len(runnable)} teams reproduce ({exact} bit-exact){tail}." if runnable else \
            f"No team could be run{tail}."
    named = []
    for row in (r for r in runnable if r not in passing):
        worst = worst_metric(row)
        if worst:
            name, m = worst
            delta = signed(m["delta"], shown_digits(m["precision"]))
            named.append(f"{row['team']}: {M.all_specs()[name].title} {delta}, "
                         f"{abs(m['delta']) / m['tolerance']:.0f}x its tolerance")
        else:
            named.append(f"{row['team']}: {verdict_label(row)}")
    more = f"; and {len(named) - HEADLINE_TEAMS} more" if len(named) > HEADLINE_TEAMS else ""
    return (f"{len(passing)} of {len(runnable)} teams reproduce{tail}; "
            + "; ".join(named[:HEADLINE_TEAMS]) + more + ".")


def verdict_label(result: dict) -> str:
    label = result["verdict"]
    if result["verdict"] == "failed" and result.get("failure"):
        label += f" ({result['failure']['kind']})"
    elif result.get("unverified") and result["verdict"] in ("exact", "reproduced"):
        checked = len(result["metrics"]) - len(result["unverified"])
        without = "" if result.get("ground_truth", True) else "; no ground truth"
        if result.get("checked_on") == "model":
            without = "; the model alone: its dataset is not here"
        label += f" ({checked} of {len(result['metrics'])} metrics{without})"
    return label


def remedy_text(fix: str) -> str:
    """How a gap is fixed, in words: a harness command is to be run, anything else is said as it is."""
    return f"run `{fix}`" if fix.startswith("harness ") else fix


def fmt(value, precision: int | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.{precision if precision is not None else 4}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # never -0.0000


def signed(value: float, digits: int) -> str:
    """A delta with its sign; one that rounds to zero is +0, never -0.0000."""
    text = f"{value:+.{digits}f}"
    return "+" + text[1:] if text.startswith("-") and float(text) == 0 else text


def shown_digits(precision: int | None) -> int:
    """A reproduced value shows two decimals more than its published one; a count (0 decimals) none."""
    if precision is None:
        return 4
    return 0 if precision == 0 else precision + 2


def cell(row: dict | None, marks: tuple[str, str] = ("✓", "✗"), detail: bool = False) -> str:
    """'published / reproduced mark' for one metric of one team; detail adds the spread and delta."""
    if row is None:
        return ""
    published = fmt(row["published"], row["precision"])
    if row.get("reproduced") is None:
        return f"{published} / —"
    digits = shown_digits(row["precision"])
    text = f"{published} / {fmt(row['reproduced'], digits)}"
    if detail:
        if row.get("spread") is not None:
            text += f" ±{row['spread'] / 2:.4f}"
        text += f" ({signed(row['delta'], digits)})"
    return f"{text} {marks[0] if row['ok'] else marks[1]}"


def metric_names(results: list[dict], computed_only: bool = False) -> list[str]:
    """The metrics the rows hold, in report order; computed_only: those some team has a reproduced value of
    (a first screen leaves the others to one line that says how to compute them)."""
    present = {m for r in results for m, row in r["metrics"].items()
               if not computed_only or row.get("reproduced") is not None}
    return [m for m in M.all_specs() if m in present]


def gaps_by_fix(results: list[dict]) -> list[dict]:
    """Every metric asked for or published that some team could not be scored on, grouped by the one thing that
    fixes it: [{fix, metrics, reason}], in report order."""
    groups: dict[str, dict] = {}
    fetched: list[str] = []  # every metric whose weights one `harness fetch metric-weights ...` brings
    for row in results:
        cells = [(n, m) for n, m in row["metrics"].items() if m.get("status") == "unavailable"]
        cells += list((row.get("not_computed") or {}).items())
        for name, cell in cells:
            fix = cell.get("fetch") or ""
            if fix.startswith(M.FETCH_COMMAND):  # one command fetches them all
                fetched += [w for w in fix[len(M.FETCH_COMMAND):].split() if w not in fetched]
                fix = M.FETCH_COMMAND
            group = groups.setdefault(fix, {"fix": fix, "metrics": [], "reason": cell.get("reason", "")})
            if name not in group["metrics"]:
                group["metrics"].append(name)
    order = list(M.all_specs())
    for group in groups.values():
        group["metrics"].sort(key=lambda n: order.index(n) if n in order else len(order))
    if M.FETCH_COMMAND in groups:
        groups[M.FETCH_COMMAND]["fix"] = " ".join([M.FETCH_COMMAND, *sorted(fetched, key=lambda n: order.index(n)
                                                                             if n in order else len(order))])
    return list(groups.values())


def build(results: list[dict], dataset: str, params: dict, repo_root: Path) -> dict:
    return {"schema": REPORT_SCHEMA, "dataset": dataset,
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **harness_info(repo_root), "params": params, "headline": headline(results),
            "summary": summary_line(results),
            "counts": dict(Counter(r["verdict"] for r in results)), "teams": results}


# only what acts in the middle of a line: ( ) and ! act only beside [ ], which are escaped
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~"})


def md(value) -> str:
    """Text from outside as inert Markdown: no HTML, no link, no emphasis, no table cell break, one line;
    control characters shown as escapes."""
    import re

    text = re.sub("[\x00-\x1f\x7f-\x9f]", lambda m: repr(m.group())[1:-1], str(value))
    return text.replace("&", "&amp;").translate(_MARKDOWN_SPECIAL)


def csv_cell(value):
    """A spreadsheet reads a cell starting with = + - @ (or a tab/CR) as a formula: such text starts with '.
    A number (the harness writes -1.000000 for a delta) stays a number."""
    if not isinstance(value, str) or value[:1] not in ("=", "+", "-", "@", "\t", "\r"):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def to_markdown(report: dict) -> str:
    results = report["teams"]
    names = metric_names(results)
    lines = [f"# Reproducibility audit: {md(report['dataset'])}", "",
             f"Generated {report['generated']} by harness {report['harness_version']} "
             f"(git {md(report.get('git_sha') or 'unknown')}); mode `{report['params'].get('mode')}`, "
             f"runner `{report['params'].get('runner')}`, device `{report['params'].get('device')}`.", "",
             f"**{md(report.get('headline') or headline(results))}**", "",
             "Each cell: published / reproduced (delta). ✓ within tolerance, ✗ outside, — not computed.", "",
             "| team | verdict | runs | " + " | ".join(M.all_specs()[n].title for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for r in results:
        cells = [cell(r["metrics"].get(n), detail=True) for n in names]
        lines.append(f"| {r['team']} | {md(verdict_label(r))} | {r['runs']} | " + " | ".join(cells) + " |")
    lines += ["", report["summary"], ""]
    for section in (_md_leaderboards(report), _md_uncertainty(results), _md_unpublished(results),
                    _md_failures(results), _md_bands(results), _md_placement(results), _md_not_computed(results),
                    _md_findings(results)):
        if section:
            lines += section + [""]
    return "\n".join(lines)


def _md_leaderboards(report: dict) -> list[str]:
    if not report.get("leaderboards"):
        return []
    from harness.verdict.leaderboard import change_line

    return ["## The leaderboard, reproduced", "",
            "Each track ranked again with the reproduced values; teams outside the audit, or without a "
            "reproduced value, keep their published value.", ""] + \
        [line for board in report["leaderboards"]
         for line in [f"- {md(change_line(board))}", *(f"  - {md(f)}" for f in board.get("findings", []))]]


def _md_uncertainty(results: list[dict]) -> list[str]:
    measured = [(r["team"], n, row["reproduced"], row["uncertainty"], row.get("precision")) for r in results
                for n, row in r["metrics"].items() if row.get("uncertainty")]
    measured += [(r["team"], n, row["reproduced"], row["uncertainty"], None) for r in results
                 for n, row in (r.get("unpublished") or {}).items() if row.get("uncertainty")]
    if not measured:
        return []
    lines = ["## Uncertainty of each mean", "",
             "Standard error over images, and a 95 % bootstrap interval (images resampled; "
             f"{md(uncertainty.METHOD)}). Evidence beside the verdict, which compares the mean with the "
             "tolerance.", "", "| team | metric | mean | SE | 95 % interval | images |", "|---|---|---|---|---|---|"]
    for team, name, mean, u, precision in measured:
        digits = shown_digits(precision if precision is not None else M.all_specs()[name].precision)
        interval = f"[{u['ci95'][0]:.{digits}f}, {u['ci95'][1]:.{digits}f}]" if u.get("ci95") else "—"
        se = f"{u['se']:.{digits + 1}f}" if u.get("se") is not None else "—"
        lines.append(f"| {team} | {M.all_specs()[name].title} | {mean:.{digits}f} | {se} | {interval} | {u['n']} |")
    return lines


def _md_unpublished(results: list[dict]) -> list[str]:
    unpublished = [(r["team"], n, row) for r in results for n, row in (r.get("unpublished") or {}).items()]
    if not unpublished:
        return []
    return ["## Computed, not published", "", "Nothing to compare these with; they are what the harness measured.",
            ""] + [f"- {t} {M.all_specs()[n].title}: {row['reproduced']:.{shown_digits(M.all_specs()[n].precision)}f}"
                   for t, n, row in unpublished]


def _md_failures(results: list[dict]) -> list[str]:
    failures = [r for r in results if r.get("failure")]
    if not failures:
        return []
    return ["## Failures and entries that cannot run", ""] + [
        f"- **{r['team']}** — {r['failure']['kind']}: {md(r['failure']['message'])}"
        + (f" (hint: {md(r['failure']['hint'])})" if r["failure"].get("hint") else "") for r in failures]


def _md_bands(results: list[dict]) -> list[str]:
    bands = [(r, n, row) for r in results for n, row in r["metrics"].items() if row.get("band")]
    if not bands:
        return []
    return ["## Nondeterministic entries: bands from repeated runs", ""] + [
        f"- {r['team']} {n}: runs {', '.join(fmt(v, 4) for v in row['run_values'])}; spread {row['spread']:.4f}; "
        f"band [{row['band'][0]:.4f}, {row['band'][1]:.4f}] holds the published {row['published']}: "
        f"{'yes' if row['ok'] else 'no'}" for r, n, row in bands]


def _md_placement(results: list[dict]) -> list[str]:
    placed = [r for r in results if r.get("ran_with") or r.get("scored_by")]
    if not placed:
        return []
    lines = ["## Where each team ran and was scored", "", "| team | runner | image | evaluator |", "|---|---|---|---|"]
    for r in placed:
        ran, scored = r.get("ran_with") or {}, r.get("scored_by") or {}
        evaluator = scored.get("image") or " ".join(f"{k} {v}" for k, v in scored.items() if k != "runner")
        lines.append(f"| {r['team']} | {md(ran.get('runner') or '')} {md(ran.get('device') or '')} | "
                     f"{md(ran.get('image') or '—')} | {md(scored.get('runner', ''))}: {md(evaluator or '—')} |")
    return lines


def _md_not_computed(results: list[dict]) -> list[str]:
    unavailable = sorted({(n, row.get("reason", ""), row.get("fetch", "")) for r in results
                          for n, row in [*r["metrics"].items(), *(r.get("not_computed") or {}).items()]
                          if n in (r.get("not_computed") or {}) or row.get("status") == "unavailable"})
    if not unavailable:
        return []
    return ["## Metrics not computed", ""] + [f"- {n}: {md(reason)} — {md(remedy_text(fix))}"
                                              for n, reason, fix in unavailable]


def _md_findings(results: list[dict]) -> list[str]:
    findings = [(r["team"], f) for r in results for f in r.get("findings", [])]
    if not findings:
        return []
    return ["## Findings", "", "| team | run | image | kind | message |", "|---|---|---|---|---|"] + [
        f"| {t} | {md(f.get('run', ''))} | {md(f['image'])} | {md(f['kind'])} | {md(f['message'])} |"
        for t, f in findings]


def to_csv(report: dict) -> str:
    results = report["teams"]
    names = metric_names(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["team", "verdict", "failure_kind", "runs", "exact_outputs"]
    for n in names:
        header += [f"{n}_published", f"{n}_reproduced", f"{n}_delta", f"{n}_tolerance", f"{n}_ok"]
    writer.writerow(header)
    for r in results:
        row = [r["team"], r["verdict"], (r.get("failure") or {}).get("kind", ""), r["runs"],
               "" if r.get("exact_outputs") is None else r["exact_outputs"]]
        for n in names:
            m = r["metrics"].get(n, {})
            row += [m.get("published", ""), _num(m.get("reproduced")), _num(m.get("delta")),
                    _num(m.get("tolerance")), "" if m.get("ok") is None else m["ok"]]
        writer.writerow([csv_cell(v) for v in row])
    return buffer.getvalue()


def _num(value) -> str:
    return "" if value is None else f"{value:.6f}"


def write(report: dict, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "summary.csv"]
    write_json_atomic(paths[0], report)
    write_bytes_atomic(paths[1], to_markdown(report).encode())
    write_bytes_atomic(paths[2], to_csv(report).encode())
    return paths
