"""Published versus reproduced: tolerances, bands from repeated runs, and verdicts.

Verdicts, best first: exact (bit-identical outputs and every metric within tolerance), reproduced
(every available metric within tolerance), diverged (ran, some metric outside), failed (typed),
not_runnable (known in advance).
"""

from __future__ import annotations

from . import challenge, metrics as M
from .manifest import Manifest
from .records import PUBLISHED_OUTPUTS, Verification, failure

VERDICTS = ("exact", "reproduced", "diverged", "failed", "not_runnable")
PASSING = ("exact", "reproduced")


def verify(team: Manifest, dataset: str, team_evaluation: dict | None) -> dict:
    """The team's verification row (records.Verification as a dict) from its evaluation, if any."""
    return _verify(team, dataset, team_evaluation).as_dict()


def _verify(team: Manifest, dataset: str, team_evaluation: dict | None) -> Verification:
    result = Verification.of(team, dataset)
    published = team.published(dataset)

    def fail(kind: str, message: str, hint: str | None = None) -> Verification:
        result.verdict, result.failure = "failed", failure(kind, message, hint)
        return result

    if team_evaluation:
        result.ran_with = {k: team_evaluation["inference"].get(k) for k in ("runner", "device", "image", "image_id")}
        result.scored_by = team_evaluation.get("evaluator")
    from_outputs = bool(team_evaluation) and team_evaluation["inference"].get("runner") == PUBLISHED_OUTPUTS
    result.source = "published outputs" if from_outputs else "inference"
    if not team.runnable and not from_outputs:
        result.verdict, result.failure = "not_runnable", failure("not_runnable",
                                                                 "; ".join(team.data["status"]["reasons"]))
        return result
    if published is None:
        return fail("no_published_numbers", f"{team.id} has no published numbers for '{dataset}'")
    if team_evaluation is None:
        return fail("not_evaluated", f"{team.id} has no evaluation on '{dataset}'",
                    f"run `harness verify {team.id} --dataset {dataset}`")
    inference = team_evaluation["inference"]
    if inference["status"] == "not_runnable":
        result.verdict, result.failure = "not_runnable", inference["failure"]
        return result
    if inference["status"] != "ok":
        seen = inference["failure"] or {}
        return fail(seen.get("kind", "nonzero_exit"), seen.get("message", ""), seen.get("hint"))
    runs = team_evaluation["runs"]
    result.runs = len(runs)
    result.ground_truth = team_evaluation.get("ground_truth", True)
    for run in runs:
        result.findings.extend({**f, "run": run["run"]} for f in run.get("findings", []))
    broken = [r for r in runs if r.get("status") != "ok"]
    if broken:
        first = broken[0]
        seen = first.get("failure") or {"kind": "evaluation_failed",
                                        "message": "; ".join(f"{k}: {v}" for k, v in
                                                             first.get("failed_images", {}).items())}
        return fail(seen["kind"], f"{first['run']}: {seen['message']}")
    if team.nondeterministic and len(runs) < 2:
        return fail("too_few_runs", f"{team.id} is nondeterministic but only {len(runs)} run was scored",
                    "determinism.repeats must be at least 2")

    compared = 0
    all_ok = True
    rules = challenge.get(team.data["challenge"])
    for name, value in published["values"].items():
        precision = published["precision"].get(name)
        override = published.get("tolerance", {}).get(name) or rules.tolerance_override(name)
        tolerance = M.spec(name).tolerance(value, precision, override)
        row = {"published": value, "precision": precision, "tolerance": tolerance}
        missing = [r["run"] for r in runs if name not in r["mean"]]
        if missing:
            gap = next((r["unavailable"][name] for r in runs if name in r.get("unavailable", {})),
                       {"reason": "not computed", "fetch": f"{M.FETCH_COMMAND} {name}"})
            row.update(reproduced=None, delta=None, ok=None, status="unavailable", reason=gap["reason"],
                       fetch=gap.get("fetch", f"{M.FETCH_COMMAND} {name}"))
            result.unverified.append(name)
            result.metrics[name] = row
            continue
        values = [r["mean"][name] for r in runs]
        reproduced = sum(values) / len(values)
        low, high = min(values), max(values)
        if len(values) > 1:
            ok = (low - tolerance) <= value <= (high + tolerance)
            row.update(band=[low - tolerance, high + tolerance], spread=high - low, run_values=values)
        else:
            ok = abs(reproduced - value) <= tolerance
        row.update(reproduced=reproduced, delta=reproduced - value, ok=ok, status="ok" if ok else "diverged")
        if not ok:  # the evidence: each image's value, averaged over runs
            stems = runs[0]["per_image"]
            row["per_image"] = {stem: _mean([r["per_image"][stem].get(name) for r in runs]) for stem in stems}
        compared += 1
        all_ok &= ok
        result.metrics[name] = row

    if compared == 0 and not result.ground_truth:
        return fail("no_ground_truth", f"every published metric of {team.id} on '{dataset}' needs the ground "
                    f"truth: {', '.join(result.unverified)}", f"harness data import {dataset} --hr PATH")
    if compared == 0:
        return fail("metric_unavailable", "none of the published metrics could be computed: "
                    + ", ".join(result.unverified), f"{M.FETCH_COMMAND}")
    digest = published.get("outputs_digest")
    if digest:
        result.exact_outputs = all(r.get("outputs_digest") == digest for r in runs)
    if not all_ok:
        result.verdict = "diverged"
    elif result.exact_outputs:
        result.verdict = "exact"
    else:
        result.verdict = "reproduced"
    return result


def _mean(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def passed(result: dict) -> bool:
    return result["verdict"] in PASSING
