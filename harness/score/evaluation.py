"""Scoring a folder of outputs against ground truth, with the organizers' pairing and averaging.

Modes:
- faithful: the organizers' repairs are applied (bilinear resize of both images to the smaller size
  before the pyiqa metrics; a failed metric counts as 0 in the average) and each one is a finding;
- strict: an image that would need a repair fails instead, and the evaluation fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.catalogue import metrics as M
from harness.core.devices import check_device
from harness.core.errors import DatasetError, EvaluationError, PairingError
from harness.core.records import Evaluation, RunRecord, TeamEvaluation
from harness.core.settings import MODES, Settings
from harness.imaging.input_policy import DEFAULT_MAX_MEGAPIXELS, check_size, files_in, image_facts
from harness.score.backends.base import GROUND_TRUTH_HINT, NO_GROUND_TRUTH, Completion

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

GT_SUFFIX = "x4"


def ground_truth_name(output_name: str) -> str:
    """The organizers' rule: the output's file name with every 'x4' removed."""
    return output_name.replace(GT_SUFFIX, "")


@dataclass(frozen=True)
class ImagePair:
    """One output and what it is compared with: its ground truth and its LR input, either may be absent."""

    stem: str
    output: Path
    truth: Path | None
    lr: Path | None


def pair_outputs(sr_dir: Path, hr_dir: Path | None, lr_dir: Path | None = None) -> list[ImagePair]:
    """Every output PNG with its ground truth (or, without one, its LR input), sorted; refuses a partial
    pairing. Outputs are named like the LR inputs: 0001x4.png -> 0001.png."""
    if hr_dir is None and lr_dir is None:
        raise EvaluationError("nothing to compare the outputs with", hint="give the ground truth (--hr) or the LR "
                              "inputs (--lr), or both")
    sr_dir = Path(sr_dir)
    for label, folder in (("outputs", sr_dir), ("ground truth", hr_dir), ("LR inputs", lr_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise EvaluationError(f"{label} folder {folder} does not exist")
    truths = {p.name: p for p in _pngs(hr_dir, "ground truth")} if hr_dir else {}
    inputs = {ground_truth_name(p.name): p for p in _pngs(lr_dir, "LR inputs")} if lr_dir else {}
    reference, label = (truths, "ground-truth") if hr_dir else (inputs, "LR input")
    pairs, extra = [], []
    for out in _pngs(sr_dir, "outputs"):
        name = ground_truth_name(out.name)
        if name not in reference:
            extra.append(out.name)
        else:
            pairs.append(ImagePair(Path(name).stem, out, truths.get(name), inputs.get(name)))
    paired = {p.stem for p in pairs}
    missing = [name for name in reference if Path(name).stem not in paired]
    if missing or extra or len(pairs) != len(reference):
        parts = []
        if missing:
            parts.append(f"{len(missing)} {label} image(s) have no output: {', '.join(missing[:10])}")
        if extra:
            parts.append(f"{len(extra)} output(s) match no {label} image: {', '.join(extra[:10])}")
        if len(pairs) != len(reference) and not parts:
            parts.append(f"{len(pairs)} outputs for {len(reference)} {label} images")
        raise PairingError("; ".join(parts), missing=missing, extra=extra,
                           hint="outputs must be named like the LR inputs (0001x4.png -> 0001.png)")
    return pairs


def _pngs(folder: Path, label: str) -> list[Path]:
    """The PNG files of a folder; a folder with none says what it holds instead (the organizers read PNG only)."""
    found = files_in(folder, "*.png", label)
    if found:
        return found
    others: dict[str, int] = {}
    for path in Path(folder).iterdir():
        if path.is_file() and not path.name.startswith("."):
            others[path.suffix.lower() or "(no extension)"] = others.get(path.suffix.lower() or "(no extension)", 0) + 1
    if not others:
        raise EvaluationError(f"the {label} folder {folder} is empty", hint="point it at the folder of PNG images")
    kinds = ", ".join(f"{count} {suffix} file(s)" for suffix, count in sorted(others.items()))
    raise EvaluationError(f"the {label} folder {folder} holds no PNG: found {kinds}; only PNG is read, as the "
                          "organizers did", hint="give the PNG images (a lossy format changes every metric)")




def evaluate(sr_dir: Path, hr_dir: Path | None, metric_names: list[str], mode: str = "faithful",
             metric_cache: Path | None = None, device: str = "cpu",
             progress: Callable[[int, int, str], None] | None = None, lr_dir: Path | None = None,
             workers: int = 1, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> Evaluation:
    """Score every output against its ground truth (when there is one) and check it against its LR input
    (when given). Images are scored by up to `workers` processes on a CPU (fewer where starting them
    would cost more than they save: harness.score.per_image.plan_workers; the learned metrics in this process with
    torch's threads, whose count their sums depend on, as in the organizers' eval.py); the values do not depend
    on `workers`.

    Ground truth that cannot be used stops the evaluation with a dataset error (never the team's fault);
    an output past the size limit, or breaking the input policy, stops it with `input_refused`."""
    if mode not in MODES:
        raise EvaluationError(f"unknown mode '{mode}'", hint=f"use one of: {', '.join(MODES)}")
    wanted = M.parse_metric_list(metric_names)
    check_device(device)
    pairs = pair_outputs(sr_dir, hr_dir, lr_dir)
    _check_references(pairs, max_megapixels)
    for pair in pairs:
        check_size(pair.output, image_facts(pair.output), max_megapixels, "outputs")
    result = Evaluation(mode=mode, metrics=wanted, ground_truth=hr_dir is not None)
    base = M.computed_metrics(wanted)
    if hr_dir is None:
        for name in base:
            if M.METRICS[name].reference == "FR":
                result.unavailable[name] = {"reason": NO_GROUND_TRUTH, "fetch": GROUND_TRUTH_HINT}
        base = [n for n in base if n not in result.unavailable]
    from harness.fetch.stand_ins import is_stand_in
    from harness.score import backends, formulas, per_image

    cache = Path(metric_cache or ".cache/metric-weights")
    groups = []
    for backend, names in backends.grouped(base, "image"):
        usable = []
        for name in names:
            reason = formulas.weights_unavailable(name, cache) if M.METRICS[name].weight_files else None
            if reason:
                result.unavailable[name] = {"reason": reason, "fetch": f"{M.FETCH_COMMAND} {name}"}
            else:
                usable.append(name)
        if usable:
            groups.append((backend.name, tuple(usable)))
    job = per_image.ImageJob(tuple(groups), mode, str(cache), device)
    # every record of numbers made with stand-in weights says so
    result.stand_in = any(backend.learned for backend, _ in job.backends()) and is_stand_in(cache)
    result.workers, result.workers_reason = per_image.plan_workers(job, pairs, workers if device == "cpu" else 1)
    result.torch_threads = per_image.torch_threads(job.uses_torch, device)
    _collect(job, pairs, result, progress)
    done = Completion(Path(sr_dir), wanted, base, hr_dir is not None)
    for backend, _ in backends.grouped(base, "run"):
        backend.complete(result, done)
    if result.status == "ok":
        for name in (n for n in job.names if n not in result.unavailable):
            values = [row.get(name) for row in result.per_image.values()]
            # The organizers average a missing value as 0; each such image is already a finding.
            result.mean[name] = sum(v if v is not None else 0.0 for v in values) / len(values)
        for backend, _ in backends.grouped(wanted, "derived"):
            backend.complete(result, done)
    return result


def _collect(job, pairs: list, result: Evaluation, progress) -> None:
    """Every image's values, findings and LR fit into `result`, as the workers return them."""
    from harness.score import per_image

    signatures = {}
    for index, image in enumerate(per_image.score_all(job, pairs, result.workers)):
        if progress:
            progress(index, len(pairs), image.stem)
        if image.truth_error:
            raise DatasetError(f"ground truth {image.truth_error}", hint="the dataset is damaged: fetch or "
                               "import it again (`harness fetch data` / `harness data import`)")
        result.output_sha256[image.output_name] = image.sha256
        result.per_image[image.stem] = image.row
        result.findings.extend(image.findings)
        if image.failed:
            result.failed_images[image.stem] = image.failed
        for name, reason in image.unavailable.items():
            result.unavailable.setdefault(name, {"reason": reason, "fetch": f"{M.FETCH_COMMAND} {name}"})
        if image.consistency is not None:
            result.lr_consistency[image.stem] = image.consistency
        if image.signature is not None:
            signatures[image.stem] = image.signature
    if progress:
        progress(len(pairs), len(pairs), "")
    per_image.name_misplaced_outputs(pairs, signatures, result)


def _check_references(pairs: list[ImagePair], max_megapixels: float) -> None:
    """The ground truth is data: each HR is a PNG within the size limit and 4x its LR when both are known."""
    for pair in pairs:
        if pair.truth is None:
            continue
        facts = image_facts(pair.truth)
        if facts.format != "PNG":
            what = f"a {facts.format} file" if facts.format else "not an image file"
            raise DatasetError(f"ground truth {pair.truth.name} is {what}, not a PNG",
                               hint="the dataset is damaged: import it again")
        check_size(pair.truth, facts, max_megapixels, "ground truth")
        if pair.lr is not None and facts.width is not None:
            lr = image_facts(pair.lr)
            if lr.width is not None and lr.height is not None and \
                    (facts.width, facts.height) != (lr.width * 4, lr.height * 4):
                raise DatasetError(f"ground truth {pair.truth.name} is {facts.width}x{facts.height} but its LR "
                                   f"{pair.lr.name} is {lr.width}x{lr.height} (not x4)",
                                   hint="the dataset is damaged: import it again")


def score_runs(team: Manifest, dataset: str, record: RunRecord | None, run_dirs: list[Path],
                  references: tuple[Path | None, Path | None], settings: Settings, metric_cache: Path,
                  progress=None) -> dict:
    """Score every run of a team with the settings' metrics, mode, device, workers and size limit; a failed
    or missing run is carried through, not hidden.

    references: the ground truth and LR folders; no ground truth (None): the no-reference metrics and the
    LR consistency are still computed. `progress(run, runs, done, total, name)` is called after each image."""
    from harness import __version__

    hr_dir, lr_dir = references
    metric_names, mode, device = list(settings.metrics), settings.mode, settings.device
    result = TeamEvaluation(team=team.id, dataset=dataset, mode=mode, metrics=metric_names, run_key=team.run_key,
                            harness_version=__version__, pyiqa_version=pyiqa_version(),
                            metric_weights=_weight_checksums(metric_cache),
                            device=device, ground_truth=hr_dir is not None)
    from harness.fetch.stand_ins import is_stand_in

    result.stand_in = is_stand_in(metric_cache)
    if record is None:
        result.inference = {"status": "failed", "failure": {
            "kind": "not_run", "message": f"{team.id} has no run record", "hint": f"run `harness infer {team.id}`"}}
        return result.as_dict()
    containers = [run["provenance"].get("container") or {} for run in record.runs]
    result.inference = {"status": record.status, "failure": record.failure, "runner": record.runner,
                        "device": record.device, "image": containers[0].get("image") if containers else None,
                        "image_id": containers[0].get("image_id") if containers else None,
                        "ran_on": record.ran_on}
    if not record.ok:
        return result.as_dict()
    for index, run_dir in enumerate(run_dirs, start=1):
        def step(done, total, name, _index=index):
            if progress:
                progress(_index, len(run_dirs), done, total, name)

        try:
            evaluation = evaluate(run_dir, hr_dir, metric_names, mode, metric_cache, device, step, lr_dir,
                                  settings.workers, settings.max_image_megapixels).as_dict()
        except PairingError as exc:
            evaluation = {"status": "failed", "failure": {"kind": "missing_output" if exc.missing else
                                                          "extra_output", "message": exc.message}}
        evaluation["run"] = run_dir.name
        result.runs.append(evaluation)
    return result.as_dict()


def pyiqa_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyiqa")
    except PackageNotFoundError:
        return None


def _weight_checksums(cache_dir: Path) -> dict:
    from harness.fetch.stand_ins import is_stand_in, marked_digests

    if is_stand_in(cache_dir):  # the stand-ins' own digests (the record says stand_in: true beside them)
        return marked_digests(cache_dir)
    listing = Path(cache_dir) / "checksums.json"
    return json.loads(listing.read_text()) if listing.exists() else {}


def per_image_means(team_evaluation: dict) -> dict[str, dict[str, float | None]]:
    """Per metric, each image's value averaged over the runs that were scored (None where it has none);
    the LR consistency too, as 'lr_consistency'."""
    runs = [r for r in team_evaluation.get("runs", []) if r.get("status") == "ok"]
    if not runs:
        return {}
    stems = sorted(runs[0]["per_image"])
    table = {}
    for name in runs[0]["metrics"]:
        values = {}
        for stem in stems:
            known = [r["per_image"][stem].get(name) for r in runs if r["per_image"][stem].get(name) is not None]
            values[stem] = sum(known) / len(known) if known else None
        if any(v is not None for v in values.values()):
            table[name] = values
    fits = [(r.get("lr_consistency") or {}).get("per_image") or {} for r in runs]
    if all(fits):
        table["lr_consistency"] = {stem: sum(f[stem]["psnr_y"] for f in fits) / len(fits) for stem in stems}
    return table


def plot_rows(team_evaluation: dict) -> list[dict]:
    """One row per image with every per-image value: the pipeline's DVC plots file."""
    table = per_image_means(team_evaluation)
    stems = sorted(next(iter(table.values()), {}))
    return [{"image": stem, **{name: values[stem] for name, values in table.items()}} for stem in stems]


def mean_metrics(team_evaluation: dict) -> dict[str, float]:
    """Per metric, the mean over runs of the per-run means (the dvc metrics view)."""
    runs = [r for r in team_evaluation["runs"] if r.get("status") == "ok"]
    names = sorted({n for r in runs for n in r["mean"]})
    return {n: sum(r["mean"][n] for r in runs if n in r["mean"]) / sum(1 for r in runs if n in r["mean"])
            for n in names}
