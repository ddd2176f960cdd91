"""Published versus reproduced, one test per verdict branch, from small dicts (no images, no runs)."""

import pytest
from verdicts import evaluation, published, run, team

from harness.core.records import PUBLISHED_OUTPUTS
from harness.verdict import rules


def test_exact_needs_identical_outputs_and_every_metric_within_tolerance():
    result = rules.judge(team(published=published({"psnr": 30.0}, digest="d1")), "mini",
                           evaluation(run(psnr=30.004)))
    assert result["verdict"] == "exact" and result["exact_outputs"] is True
    assert rules.passed(result)


def test_reproduced_when_outputs_differ_but_metrics_agree():
    result = rules.judge(team(published=published({"psnr": 30.0}, digest="d0")), "mini",
                           evaluation(run(psnr=30.01)))
    assert result["verdict"] == "reproduced" and result["exact_outputs"] is False
    row = result["metrics"]["psnr"]
    assert row["tolerance"] == pytest.approx(0.01 + 0.005)  # PSNR's 0.01 dB + half of the last published digit
    assert row["delta"] == pytest.approx(0.01) and row["ok"] is True


def test_diverged_names_the_metric_and_gives_each_image():
    result = rules.judge(team(published=published({"psnr": 30.0, "ssim": 0.9}, {"psnr": 2, "ssim": 4})), "mini",
                           evaluation(run(psnr=29.5, ssim=0.9, per_image={"0001": {"psnr": 29.0, "ssim": 0.9},
                                                                           "0002": {"psnr": 30.0, "ssim": 0.9}})))
    assert result["verdict"] == "diverged" and not rules.passed(result)
    assert result["metrics"]["psnr"]["status"] == "diverged" and result["metrics"]["ssim"]["ok"] is True
    assert result["metrics"]["psnr"]["per_image"] == {"0001": 29.0, "0002": 30.0}


def test_nondeterministic_team_is_judged_by_the_band_of_its_runs():
    nondeterministic = team(determinism="nondeterministic", repeats=3, published=published({"psnr": 30.05}))
    runs = [run("run-1", psnr=30.0), run("run-2", psnr=30.02), run("run-3", psnr=30.04)]
    result = rules.judge(nondeterministic, "mini", evaluation(*runs))
    row = result["metrics"]["psnr"]
    assert result["verdict"] == "reproduced"
    assert row["spread"] == pytest.approx(0.04) and row["run_values"] == [30.0, 30.02, 30.04]
    assert row["band"] == pytest.approx([30.0 - 0.015, 30.04 + 0.015])
    outside = rules.judge(team(determinism="nondeterministic", repeats=3, published=published({"psnr": 30.1})),
                            "mini", evaluation(*runs))
    assert outside["verdict"] == "diverged"


def test_nondeterministic_team_with_one_run_fails_too_few_runs():
    result = rules.judge(team(determinism="nondeterministic", repeats=1, published=published({"psnr": 30.0})),
                           "mini", evaluation(run(psnr=30.0)))
    assert result["verdict"] == "failed" and result["failure"]["kind"] == "too_few_runs"


def test_an_unavailable_metric_is_unverified_and_said_in_the_label():
    from harness.report.files import verdict_label

    missing = {"lpips": {"reason": "weights absent", "fetch": "harness fetch metric-weights lpips"}}
    result = rules.judge(team(published=published({"psnr": 30.0, "lpips": 0.2}, {"psnr": 2, "lpips": 4})), "mini",
                           evaluation(run(psnr=30.0, unavailable=missing)))
    assert result["verdict"] == "reproduced" and result["unverified"] == ["lpips"]
    assert result["metrics"]["lpips"]["status"] == "unavailable"
    assert result["metrics"]["lpips"]["fetch"] == "harness fetch metric-weights lpips"
    assert verdict_label(result) == "reproduced (1 of 2 metrics)"


def test_no_published_metric_computable_fails_metric_unavailable():
    result = rules.judge(team(published=published({"lpips": 0.2}, {"lpips": 4})), "mini",
                           evaluation(run(unavailable={"lpips": {"reason": "absent"}})))
    assert result["verdict"] == "failed" and result["failure"]["kind"] == "metric_unavailable"


def test_a_manifest_tolerance_overrides_the_registry():
    loose = published({"psnr": 30.0}, tolerance={"psnr": {"abs": 0.5}})
    assert rules.judge(team(published=loose), "mini", evaluation(run(psnr=29.6)))["verdict"] == "reproduced"
    assert rules.judge(team(published=published({"psnr": 30.0})), "mini",
                         evaluation(run(psnr=29.6)))["verdict"] == "diverged"


def test_failed_inference_carries_its_typed_failure():
    failed = {"status": "failed", "failure": {"kind": "timeout", "message": "no result", "hint": "raise it"}}
    result = rules.judge(team(published=published({"psnr": 30.0})), "mini", evaluation(inference=failed))
    assert result["verdict"] == "failed"
    assert result["failure"] == {"kind": "timeout", "message": "no result", "hint": "raise it"}


def test_a_failed_run_fails_the_team_with_the_first_failure():
    broken = {"run": "run-1", "status": "failed", "failure": {"kind": "missing_output", "message": "0002 missing"}}
    result = rules.judge(team(published=published({"psnr": 30.0})), "mini", evaluation(broken))
    assert result["failure"]["kind"] == "missing_output" and "run-1: 0002 missing" in result["failure"]["message"]


def test_not_evaluated_and_no_published_numbers():
    assert rules.judge(team(published=published({"psnr": 30.0})), "mini", None)["failure"]["kind"] == "not_evaluated"
    assert rules.judge(team(), "mini", evaluation(run(psnr=1.0)))["failure"]["kind"] == "no_published_numbers"


def test_not_runnable_unless_scored_from_published_outputs():
    closed = team(runnable=False, reasons=["no code released"], published=published({"psnr": 30.0}))
    result = rules.judge(closed, "mini", None)
    assert result["verdict"] == "not_runnable" and result["failure"]["message"] == "no code released"
    from_outputs = evaluation(run(psnr=30.0), inference={"status": "ok", "failure": None, "runner": PUBLISHED_OUTPUTS})
    scored = rules.judge(closed, "mini", from_outputs)
    assert scored["verdict"] == "reproduced" and scored["source"] == "published outputs"


def test_each_mean_carries_its_standard_error_and_a_reproducible_bootstrap_interval():
    import statistics

    import numpy as np

    values = [27.1, 28.4, 30.2, 29.0, 26.5, 31.3, 28.8]
    per_image = {f"{i:04d}": {"psnr": v, "niqe": 9.0 + i / 10} for i, v in enumerate(values)}
    result = rules.judge(team(published=published({"psnr": 28.76})), "mini",
                           evaluation(run(psnr=statistics.mean(values), niqe=9.3, per_image=per_image)))
    u = result["metrics"]["psnr"]["uncertainty"]
    assert u["n"] == 7 and u["mean"] == pytest.approx(statistics.mean(values))
    assert u["se"] == pytest.approx(statistics.stdev(values) / 7 ** 0.5)
    # recomputed here from the recipe report.md states: 2000 resamples of the images, default_rng(0), 2.5/97.5 %
    sample = np.array(values)
    means = sample[np.random.default_rng(0).integers(0, 7, size=(2000, 7))].mean(axis=1)
    assert u["ci95"] == pytest.approx(list(np.percentile(means, [2.5, 97.5])))
    assert u["ci95"][0] < u["mean"] < u["ci95"][1]
    # NIQE was computed but never published: kept, with its own uncertainty, nothing to compare
    assert result["unpublished"]["niqe"]["reproduced"] == 9.3 and result["unpublished"]["niqe"]["uncertainty"]["n"] == 7


def test_a_metric_asked_for_but_not_computed_is_said_with_its_fix():
    gap = {"lpips": {"reason": "weights absent", "fetch": "harness fetch metric-weights lpips"}}
    result = rules.judge(team(published=published({"psnr": 30.0})), "mini",
                           evaluation(run(psnr=30.0, unavailable=gap)))
    assert result["not_computed"] == gap and "lpips" not in result["metrics"]
