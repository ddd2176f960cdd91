"""The audit report: report.json, report.md and summary.csv, from the verification results."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from . import metrics as M
from .fsutil import write_bytes_atomic, write_json_atomic
from .provenance import harness_info
from .verify import VERDICTS

def summary_line(results: list[dict]) -> str:
    counts = Counter(r["verdict"] for r in results)
    parts = ", ".join(f"{counts.get(v, 0)} {v.replace('_', ' ')}" for v in VERDICTS)
    return f"SUMMARY: {len(results)} team(s): {parts}"


def verdict_label(result: dict) -> str:
    label = result["verdict"]
    if result["verdict"] == "failed" and result.get("failure"):
        label += f" ({result['failure']['kind']})"
    elif result.get("unverified") and result["verdict"] in ("exact", "reproduced"):
        checked = len(result["metrics"]) - len(result["unverified"])
        without = "" if result.get("ground_truth", True) else "; no ground truth"
        label += f" ({checked} of {len(result['metrics'])} metrics{without})"
    return label


def remedy_text(fix: str) -> str:
    """How a gap is fixed, in words: a harness command is to be run, anything else is said as it is."""
    return f"run `{fix}`" if fix.startswith("harness ") else fix


def fmt(value, precision: int | None) -> str:
    if value is None:
        return "—"
    digits = precision if precision is not None else 4
    return f"{value:.{digits}f}"


def cell(row: dict | None, marks: tuple[str, str] = ("✓", "✗"), detail: bool = False) -> str:
    """'published / reproduced mark' for one metric of one team; detail adds the spread and delta."""
    if row is None:
        return ""
    published = fmt(row["published"], row["precision"])
    if row.get("reproduced") is None:
        return f"{published} / —"
    text = f"{published} / {fmt(row['reproduced'], (row['precision'] or 2) + 2)}"
    if detail:
        if row.get("spread") is not None:
            text += f" ±{row['spread'] / 2:.4f}"
        text += f" ({row['delta']:+.{(row['precision'] or 2) + 2}f})"
    return f"{text} {marks[0] if row['ok'] else marks[1]}"


def metric_names(results: list[dict]) -> list[str]:
    present = {m for r in results for m in r["metrics"]}
    return [m for m in M.all_specs() if m in present]


def build(results: list[dict], dataset: str, params: dict, repo_root: Path) -> dict:
    return {"schema": "harness.report/1", "dataset": dataset,
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **harness_info(repo_root), "params": params, "summary": summary_line(results),
            "counts": dict(Counter(r["verdict"] for r in results)), "teams": results}


def to_markdown(report: dict) -> str:
    results = report["teams"]
    names = metric_names(results)
    lines = [f"# Reproducibility audit: {report['dataset']}", "",
             f"Generated {report['generated']} by harness {report['harness_version']} "
             f"(git {report.get('git_sha') or 'unknown'}); mode `{report['params'].get('mode')}`, "
             f"runner `{report['params'].get('runner')}`, device `{report['params'].get('device')}`.", "",
             "Each cell: published / reproduced (delta). ✓ within tolerance, ✗ outside, — not computed.", "",
             "| team | verdict | runs | " + " | ".join(M.all_specs()[n].title for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for r in results:
        cells = [cell(r["metrics"].get(n), detail=True) for n in names]
        lines.append(f"| {r['team']} | {verdict_label(r)} | {r['runs']} | " + " | ".join(cells) + " |")
    lines += ["", report["summary"], ""]
    if report.get("leaderboards"):
        from .leaderboard import change_line

        lines += ["## The leaderboard, reproduced", "",
                  "Each track ranked again with the reproduced values; teams outside the audit, or without a "
                  "reproduced value, keep their published value.", ""]
        lines += [f"- {change_line(board)}" for board in report["leaderboards"]]
        lines.append("")
    failures = [r for r in results if r.get("failure")]
    if failures:
        lines += ["## Failures and entries that cannot run", ""]
        for r in failures:
            f = r["failure"]
            lines.append(f"- **{r['team']}** — {f['kind']}: {f['message']}"
                         + (f" (hint: {f['hint']})" if f.get("hint") else ""))
        lines.append("")
    bands = [(r, n, row) for r in results for n, row in r["metrics"].items() if row.get("band")]
    if bands:
        lines += ["## Nondeterministic entries: bands from repeated runs", ""]
        for r, n, row in bands:
            lines.append(f"- {r['team']} {n}: runs {', '.join(fmt(v, 4) for v in row['run_values'])}; "
                         f"spread {row['spread']:.4f}; band [{row['band'][0]:.4f}, {row['band'][1]:.4f}] "
                         f"holds the published {row['published']}: {'yes' if row['ok'] else 'no'}")
        lines.append("")
    placed = [r for r in results if r.get("ran_with") or r.get("scored_by")]
    if placed:
        lines += ["## Where each team ran and was scored", "", "| team | runner | image | evaluator |",
                  "|---|---|---|---|"]
        for r in placed:
            ran, scored = r.get("ran_with") or {}, r.get("scored_by") or {}
            evaluator = scored.get("image") or " ".join(f"{k} {v}" for k, v in scored.items() if k != "runner")
            lines.append(f"| {r['team']} | {ran.get('runner') or ''} {ran.get('device') or ''} | "
                         f"{ran.get('image') or '—'} | {scored.get('runner', '')}: {evaluator or '—'} |")
        lines.append("")
    unavailable = sorted({(n, row.get("reason", ""), row.get("fetch", "")) for r in results
                          for n, row in r["metrics"].items() if row.get("status") == "unavailable"})
    if unavailable:
        lines += ["## Metrics not computed", ""]
        lines += [f"- {n}: {reason} — {remedy_text(fix)}" for n, reason, fix in unavailable]
        lines.append("")
    findings = [(r["team"], f) for r in results for f in r.get("findings", [])]
    if findings:
        lines += ["## Findings", "", "| team | run | image | kind | message |", "|---|---|---|---|---|"]
        lines += [f"| {t} | {f.get('run', '')} | {f['image']} | {f['kind']} | {f['message']} |"
                  for t, f in findings]
        lines.append("")
    return "\n".join(lines)


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
        writer.writerow(row)
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
