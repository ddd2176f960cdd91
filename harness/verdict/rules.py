"""Published versus reproduced: tolerances, bands from repeated runs, and verdicts.

Verdicts, best first: exact (bit-identical outputs and every metric within tolerance), reproduced
(every available metric within tolerance), diverged (ran, some metric outside), failed (typed),
not_runnable (known in advance).
"""

from __future__ import annotations

from harness.adapter.flop_counters import count_evidence, evidence_of
from harness.catalogue import challenges, datasets
from harness.catalogue import metrics as M
from harness.catalogue.datasets import MODEL
from harness.catalogue.manifests import Manifest
from harness.core.records import PUBLISHED_OUTPUTS, TeamEvaluation, Verification, failure
from harness.verdict import uncertainty

VERDICTS = ("exact", "reproduced", "diverged", "failed", "not_runnable")
PASSING = ("exact", "reproduced")


def judge(team: Manifest, dataset: str, team_evaluation: TeamEvaluation | None,
           baseline: tuple[Manifest, TeamEvaluation | None] | None = None) -> dict:
    """The team's verification row (records.Verification as a dict) from its evaluation, if any.
    `baseline`: the challenge's baseline team and its evaluation in the same audit (a runtime is compared as
    a ratio to it)."""
    return _verify(team, dataset, team_evaluation, baseline).as_dict()


def published_values(team: Manifest, dataset: str) -> dict | None:
    """What the team published for the dataset, with what it published for the model alone (parameters,
    FLOPs, ...: published.model) beside it; the dataset's own value wins a name both give."""
    own, model = team.published(dataset), team.published(MODEL) if dataset != MODEL else None
    if own is None and model is None:
        return None
    merged: dict[str, dict] = {"values": {}, "precision": {}, "tolerance": {}}
    for part in (model, own):
        for key in merged:
            merged[key].update((part or {}).get(key, {}))
    return {**(model or {}), **(own or {}), **merged}


def _verify(team: Manifest, dataset: str, team_evaluation: TeamEvaluation | None,
            baseline: tuple[Manifest, TeamEvaluation | None] | None) -> Verification:
    result = Verification.of(team, dataset)
    published = published_values(team, dataset)
    stopped = _before_comparing(result, team, dataset, team_evaluation, published)
    if stopped is not None:
        return stopped
    assert team_evaluation is not None and published is not None  # _before_comparing saw to both
    runs = team_evaluation.runs
    rules = challenges.get(team.data["challenge"])
    declared = datasets.get(dataset).stems if dataset in datasets.all_datasets() else ()
    subset = bool(declared) and 0 < runs[0].get("n_images", len(declared)) < len(declared)
    compared, all_ok = 0, True
    for name, value in published["values"].items():
        precision = published["precision"].get(name)
        override = published.get("tolerance", {}).get(name) or rules.tolerance_override(name)
        row = {"published": value, "precision": precision,
               "tolerance": M.spec(name).tolerance(value, precision, override)}
        scored = [_on_the_challenges_device(r, name, team, rules, baseline, dataset) for r in runs] \
            if M.spec(name).reference == "device" else runs
        if subset and M.spec(name).reference in ("FR", "NR"):
            row = _image_by_image(name, published, scored, declared, M.spec(name))
        else:
            row = _compared(name, row, scored, runs)
        if M.spec(name).reference == "model" and row.get("ok") is False and (runs[0].get("model") or {}).get("layers"):
            row["evidence"] = evidence_of(runs[0]["model"], value, precision or 2, rules.model_counter) \
                if name == "flops" else count_evidence(runs[0]["model"], name, value, row["reproduced"])
            row["reason"] = row["evidence"]["reason"]
        result.metrics[name] = row
        if row["status"] == "unavailable":
            result.unverified.append(name)
        else:
            compared += 1
            all_ok &= row["ok"]
    _computed_but_not_published(result, runs, published)
    untrained = (runs[0].get("model") or {}).get("untrained")
    if untrained:  # counts need the architecture only; whatever depends on trained values is not here
        result.findings.append({"kind": "weights_unavailable", "run": runs[0].get("run", ""), "image": "",
                                "message": f"counted on the architecture alone (untrained): {untrained}"})
    return _concluded(result, team, dataset, runs, published, compared, all_ok)


def _before_comparing(result: Verification, team: Manifest, dataset: str, team_evaluation: TeamEvaluation | None,
                      published: dict | None) -> Verification | None:
    """The verdict when there is nothing to compare yet (not runnable, nothing published, not evaluated,
    failed, too few runs); None when the comparison can start."""
    def fail(kind: str, message: str, hint: str | None = None) -> Verification:
        result.verdict, result.failure = "failed", failure(kind, message, hint)
        return result

    inference = (team_evaluation.inference or {}) if team_evaluation else {}
    if team_evaluation:
        result.ran_with = {k: inference.get(k) for k in ("runner", "device", "image", "image_id", "ran_on")}
        result.scored_by = team_evaluation.evaluator
    from_outputs = inference.get("runner") == PUBLISHED_OUTPUTS
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
    if team_evaluation.stand_in or any(run.get("stand_in") for run in team_evaluation.runs):
        return fail("stand_in_weights", f"{team.id} on '{dataset}' was scored with stand-in metric weights: the "
                    "numbers measure nothing and are not compared with the published ones",
                    "evaluate again with the real weights (`harness fetch metric-weights`)")
    if inference["status"] == "not_runnable":
        result.verdict, result.failure = "not_runnable", inference["failure"]
        return result
    if inference["status"] != "ok":
        seen = inference["failure"] or {}
        return fail(seen.get("kind", "nonzero_exit"), seen.get("message", ""), seen.get("hint"))
    runs = team_evaluation.runs
    result.runs = len(runs)
    result.ground_truth = team_evaluation.ground_truth
    for run in runs:
        result.findings.extend({**f, "run": run["run"]} for f in run.get("findings", []))
    broken = [r for r in runs if r.get("status") != "ok"]
    if broken:
        first = broken[0]
        seen = first.get("failure") or {"kind": "evaluation_failed",
                                        "message": "; ".join(f"{k}: {v}" for k, v in
                                                             first.get("failed_images", {}).items())}
        return fail(seen["kind"], f"{first['run']}: {seen['message']}")
    if team.nondeterministic and len(runs) < 2 and not from_outputs:  # published outputs are one sample
        return fail("too_few_runs", f"{team.id} is nondeterministic but only {len(runs)} run was scored",
                    "determinism.repeats must be at least 2")
    return None


def _compared(name: str, row: dict, scored: list[dict], runs: list[dict]) -> dict:
    """One published mean against the runs' means: inside the tolerance, or inside the band of the runs
    for a team with several; unavailable (with why and the fix) when a run lacks the metric."""
    value, tolerance = row["published"], row["tolerance"]
    if any(name not in r["mean"] for r in scored):
        gap = next((r["unavailable"][name] for r in scored if name in r.get("unavailable", {})),
                   {"reason": "not computed", "fetch": f"{M.FETCH_COMMAND} {name}"})
        return {**row, "reproduced": None, "delta": None, "ok": None, "status": "unavailable",
                "reason": gap["reason"], "fetch": gap.get("fetch", f"{M.FETCH_COMMAND} {name}")}
    values = [r["mean"][name] for r in scored]
    reproduced = sum(values) / len(values)
    low, high = min(values), max(values)
    if len(values) > 1:
        ok = (low - tolerance) <= value <= (high + tolerance)
        row.update(band=[low - tolerance, high + tolerance], spread=high - low, run_values=values)
    else:
        ok = abs(reproduced - value) <= tolerance
    row.update(reproduced=reproduced, delta=reproduced - value, ok=ok, status="ok" if ok else "diverged")
    images = _per_image(runs, name)
    if images:
        row["uncertainty"] = uncertainty.of_mean(list(images.values()))
    if not ok:  # the evidence: each image's value, averaged over runs
        row["per_image"] = images
    return row


def _concluded(result: Verification, team: Manifest, dataset: str, runs: list[dict], published: dict,
               compared: int, all_ok: bool) -> Verification:
    if compared == 0 and not result.ground_truth:
        result.verdict, result.failure = "failed", failure(
            "no_ground_truth", f"every published metric of {team.id} on '{dataset}' needs the ground truth: "
            f"{', '.join(result.unverified)}", f"harness data import {dataset} --hr PATH")
        return result
    if compared == 0:
        result.verdict, result.failure = "failed", failure(
            "metric_unavailable", "none of the published metrics could be computed: " + ", ".join(result.unverified),
            f"{M.FETCH_COMMAND}")
        return result
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


def _per_image(runs: list[dict], name: str) -> dict:
    """Each image's value of a metric, averaged over the runs (empty for a metric of the model alone)."""
    stems = runs[0].get("per_image", {})
    if not any(name in (row or {}) for row in stems.values()):
        return {}
    return {stem: _mean([r["per_image"][stem].get(name) for r in runs]) for stem in stems}


def _computed_but_not_published(result: Verification, runs: list[dict], published: dict) -> None:
    """What the evaluation holds beyond the published values: each metric computed but never published
    (with its mean and uncertainty), and each one asked for that could not be computed (why, and the fix)."""
    asked = set(runs[0].get("metrics", []))
    for name in (n for n in M.all_specs() if n not in published["values"]):
        means = [r["mean"][name] for r in runs if name in r.get("mean", {})]
        if len(means) == len(runs) and means:
            images = _per_image(runs, name)
            result.unpublished[name] = {"reproduced": sum(means) / len(means),
                                        "uncertainty": uncertainty.of_mean(list(images.values())) if images else None}
        elif name in asked or any(name in r.get("unavailable", {}) for r in runs):
            gap = next((r["unavailable"][name] for r in runs if name in r.get("unavailable", {})), None)
            if gap:
                result.not_computed[name] = {"reason": gap.get("reason", ""), "fetch": gap.get("fetch", "")}


def _on_the_challenges_device(run: dict, name: str, team: Manifest, rules,
                              baseline: tuple[Manifest, TeamEvaluation | None] | None, dataset: str) -> dict:
    """A run's value of a device-bound metric (runtime), as comparable with the published one: measured on
    the device kind the organizers used, and scaled by the baseline's published / measured value in the same
    audit. Otherwise the run says why it is not comparable (the metric becomes unavailable)."""
    measured = run.get("mean", {}).get(name)
    where = rules.measured_on or {}
    on = (run.get("model") or {}).get("clock") == "cuda-events"
    reason = None
    if measured is None:
        return run
    if dataset == MODEL:
        reason = ("a runtime depends on the images: it is compared on the challenge's own datasets, not on the "
                  "model check's photographs")
    elif where.get("device", "cuda") == "cuda" and not on:
        reason = (f"compared only on the challenge's device ({where.get('gpu', 'a GPU')}, CUDA events), as a ratio to "
                  f"{rules.baseline} measured in the same audit: a time measured here says nothing about theirs")
    elif not rules.baseline:
        reason = "the challenge names no baseline to take the ratio to"
    elif team.id != rules.baseline:
        base_team, base_evaluation = baseline or (None, None)
        base_run = next((r for r in (base_evaluation.runs if base_evaluation else []) if r.get("status") == "ok"), None)
        base_published = (published_values(base_team, dataset) or {}).get("values", {}).get(name) if base_team else None
        base_measured = (base_run or {}).get("mean", {}).get(name)
        base_clock = ((base_run or {}).get("model") or {}).get("clock")
        if not base_measured or not base_published or base_clock != "cuda-events":
            reason = f"needs {rules.baseline} measured in the same audit on the same GPU (audit the challenge together)"
        else:
            measured = measured * base_published / base_measured
    if reason:
        gaps = {**run.get("unavailable", {}), name: {"reason": reason, "fetch": f"harness audit --challenge {rules.id} "
                                                                             "--device cuda"}}
        return {**run, "mean": {k: v for k, v in run["mean"].items() if k != name}, "unavailable": gaps}
    return {**run, "mean": {**run["mean"], name: measured}}


def _image_by_image(name: str, published: dict, runs: list[dict], declared: tuple, spec) -> dict:
    """A metric on a dataset of which only some images are here: the published per-image values of those
    images, against the reproduced ones; without published per-image values it cannot be compared."""
    here = sorted(runs[0]["per_image"])
    listed = (published.get("per_image") or {}).get(name)
    row = {"published": None, "precision": 4, "scope": f"{len(here)} of {len(declared)} images"}
    if not listed or len(listed) != len(declared):
        return {**row, "tolerance": None, "reproduced": None, "delta": None, "ok": None, "status": "unavailable",
                "reason": f"the dataset here holds {len(here)} of its {len(declared)} images, and the published value "
                          "is a mean over all of them (no per-image values were published)",
                "fetch": "import the whole dataset"}
    position = {stem: index for index, stem in enumerate(declared)}
    pairs: dict[str, tuple[float, float]] = {}
    for stem in here:
        published_value = listed[position[stem]]
        reproduced_value = _mean([r["per_image"][stem].get(name) for r in runs])
        if published_value is not None and reproduced_value is not None:
            pairs[stem] = (published_value, reproduced_value)
    if not pairs:
        return {**row, "tolerance": None, "reproduced": None, "delta": None, "ok": None, "status": "unavailable",
                "reason": "no image here has both a published and a reproduced value", "fetch": ""}
    published_mean = sum(p for p, _ in pairs.values()) / len(pairs)
    reproduced = sum(r for _, r in pairs.values()) / len(pairs)
    tolerance = spec.tolerance(published_mean, 4)
    each = {stem: {"published": p, "reproduced": r, "delta": r - p, "ok": abs(r - p) <= tolerance}
            for stem, (p, r) in pairs.items()}
    ok = all(image["ok"] for image in each.values())
    return {**row, "published": published_mean, "tolerance": tolerance, "reproduced": reproduced,
            "delta": reproduced - published_mean, "ok": ok, "status": "ok" if ok else "diverged",
            "per_image_compared": each, "per_image": {stem: v["reproduced"] for stem, v in each.items()}}


def without_dataset(team: Manifest, dataset: str, model_row: dict, absent) -> dict:
    """The verification of a team on a dataset that is not here, from the check of its model alone: the
    model's values as they were checked, each of the dataset's own values unavailable, saying why."""
    row = {**model_row, "dataset": dataset, "checked_on": MODEL, "metrics": dict(model_row["metrics"]),
           "unverified": list(model_row["unverified"])}
    own = team.published(dataset) or {"values": {}, "precision": {}}
    for name, value in own["values"].items():
        precision = own["precision"].get(name)
        row["metrics"][name] = {"published": value, "precision": precision,
                                "tolerance": M.spec(name).tolerance(value, precision), "reproduced": None,
                                "delta": None, "ok": None, "status": "unavailable",
                                "reason": f"needs the dataset '{dataset}', which is not here: {absent.message}",
                                "fetch": absent.hint or f"harness data import {dataset}"}
        if name not in row["unverified"]:
            row["unverified"].append(name)
    return row


def _mean(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def passed(result: dict) -> bool:
    return result["verdict"] in PASSING
