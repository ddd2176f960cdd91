"""The report writers, from small verification rows (no runs, no images)."""

import csv
import io
import json

from harness.report import files


def row(team, verdict, metrics=None, failure=None, **extra) -> dict:
    return {"team": team, "name": team.title(), "dataset": "mini", "verdict": verdict, "failure": failure,
            "determinism": "deterministic", "runs": 1, "metrics": metrics or {}, "unverified": [],
            "findings": [], "exact_outputs": None, **extra}


PSNR_OK = {"published": 30.0, "precision": 2, "tolerance": 0.015, "reproduced": 30.004, "delta": 0.004, "ok": True,
           "status": "ok"}
PSNR_OFF = {**PSNR_OK, "reproduced": 29.0, "delta": -1.0, "ok": False, "status": "diverged"}
SCORE_OK = {"published": 4.1, "precision": 4, "tolerance": 0.0055, "reproduced": 4.1, "delta": 0.0, "ok": True,
            "status": "ok"}
BAND = {**PSNR_OK, "band": [29.9, 30.1], "spread": 0.04, "run_values": [30.0, 30.04]}
RESULTS = [
    row("a", "exact", {"psnr": PSNR_OK, "perceptual_score": SCORE_OK}, exact_outputs=True),
    row("b", "diverged", {"psnr": PSNR_OFF}),
    row("c", "failed", failure={"kind": "timeout", "message": "no result after 5 s", "hint": "raise it"}),
    row("d", "not_runnable", failure={"kind": "not_runnable", "message": "no code"}),
    row("e", "reproduced", {"psnr": BAND}, findings=[{"kind": "resized", "image": "0001", "message": "m",
                                                      "run": "run-1"}]),
]


def built() -> dict:
    return {"schema": "harness.report/1", "dataset": "mini", "generated": "2026-01-01T00:00:00+00:00",
            "harness_version": "0.0", "git_sha": None, "params": {"mode": "faithful", "runner": "local",
                                                                  "device": "cpu"},
            "summary": files.summary_line(RESULTS), "teams": RESULTS}


def test_summary_counts_every_verdict_in_order():
    assert files.summary_line(RESULTS) == \
        "SUMMARY: 5 team(s): 1 exact, 1 reproduced, 1 diverged, 1 failed, 1 not runnable"


def test_metric_columns_follow_the_registry_order():
    assert files.metric_names(RESULTS) == ["psnr", "perceptual_score"]


def test_markdown_has_the_table_failures_bands_and_findings():
    text = files.to_markdown(built())
    assert "| team | verdict | runs | PSNR (dB, Y) | Perceptual score |" in text
    assert "| b | diverged | 1 | 30.00 / 29.0000 (-1.0000) ✗ |" in text
    assert "- **c** — timeout: no result after 5 s (hint: raise it)" in text
    assert "e psnr: runs 30.0000, 30.0400; spread 0.0400" in text
    assert "| e | run-1 | 0001 | resized | m |" in text
    assert text.rstrip().splitlines()[-1].startswith("| e |")


def test_csv_has_one_row_per_team_with_each_metric():
    rows = list(csv.DictReader(io.StringIO(files.to_csv(built()))))
    assert [r["team"] for r in rows] == ["a", "b", "c", "d", "e"]
    assert rows[1]["psnr_ok"] == "False" and rows[1]["psnr_delta"] == "-1.000000"
    assert rows[2]["failure_kind"] == "timeout" and rows[2]["psnr_published"] == ""
    assert rows[0]["exact_outputs"] == "True"


def test_write_puts_three_files(tmp_path):
    paths = files.write(built(), tmp_path)
    assert [p.name for p in paths] == ["report.json", "report.md", "summary.csv"]
    assert json.loads(paths[0].read_text())["summary"].startswith("SUMMARY: 5 team(s)")


def test_a_value_or_delta_that_rounds_to_zero_is_never_minus_zero():
    from harness.report.files import fmt, signed

    assert fmt(-0.00001, 4) == "0.0000" and fmt(-1e-9, 0) == "0" and fmt(-2.5, 1) == "-2.5"
    assert signed(-0.00001, 4) == "+0.0000" and signed(-0.5, 2) == "-0.50" and signed(0.25, 2) == "+0.25"


def test_the_gaps_are_one_line_per_fix_with_one_command():
    from harness.report.files import gaps_by_fix

    def unavailable(name):
        return {"status": "unavailable", "reason": "weights absent", "fetch": f"harness fetch metric-weights {name}"}

    rows = [{"team": t, "metrics": {"psnr": {"status": "ok", "reproduced": 28.0}, "lpips": unavailable("lpips"),
                                     "dists": unavailable("dists")},
             "not_computed": {"perceptual_score": {"reason": "needs lpips",
                                                   "fetch": "harness fetch metric-weights lpips dists"}}}
            for t in ("a", "b")]
    [gap] = gaps_by_fix(rows)
    assert gap["metrics"] == ["lpips", "dists", "perceptual_score"]
    assert gap["fix"] == "harness fetch metric-weights lpips dists"
