"""Scoring a folder of outputs against ground truth, with the organizers' pairing and averaging.

Modes:
- faithful: the organizers' repairs are applied (bilinear resize of both images to the smaller size
  before the pyiqa metrics; a failed metric counts as 0 in the average) and each one is a finding;
- strict: an image that would need a repair fails instead, and the evaluation fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import metrics as M
from . import scoring
from .devices import check_device
from .errors import EvaluationError, MetricUnavailable, PairingError
from .fsutil import digest_of_files, sha256_file
from .imageio import read_png_header, read_rgb8
from .records import EVALUATION_SCHEMA, TeamEvaluation
from .settings import MODES
GT_SUFFIX = "x4"


def ground_truth_name(output_name: str) -> str:
    """The organizers' rule: the output's file name with every 'x4' removed."""
    return output_name.replace(GT_SUFFIX, "")


def pair_outputs(sr_dir: Path, hr_dir: Path) -> list[tuple[str, Path, Path]]:
    """(hr stem, output path, hr path) for every output PNG, sorted; refuses a partial pairing."""
    sr_dir, hr_dir = Path(sr_dir), Path(hr_dir)
    for label, folder in (("outputs", sr_dir), ("ground truth", hr_dir)):
        if not folder.is_dir():
            raise EvaluationError(f"{label} folder {folder} does not exist")
    outputs = sorted(sr_dir.glob("*.png"))
    truths = {p.name: p for p in sorted(hr_dir.glob("*.png"))}
    if not truths:
        raise EvaluationError(f"no ground-truth PNG in {hr_dir}")
    pairs, extra = [], []
    for out in outputs:
        gt = truths.get(ground_truth_name(out.name))
        if gt is None:
            extra.append(out.name)
        else:
            pairs.append((gt.stem, out, gt))
    paired = {gt.name for _, _, gt in pairs}
    missing = [name for name in truths if name not in paired]
    if missing or extra or len(pairs) != len(truths):
        parts = []
        if missing:
            parts.append(f"{len(missing)} ground-truth image(s) have no output: {', '.join(missing[:10])}")
        if extra:
            parts.append(f"{len(extra)} output(s) match no ground truth: {', '.join(extra[:10])}")
        if len(pairs) != len(truths) and not parts:
            parts.append(f"{len(pairs)} outputs for {len(truths)} ground-truth images")
        raise PairingError("; ".join(parts), missing=missing, extra=extra,
                           hint="outputs must be named like the LR inputs (0001x4.png -> 0001.png)")
    return pairs


@dataclass
class Evaluation:
    mode: str
    metrics: list[str]
    per_image: dict[str, dict[str, float | None]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, dict[str, str]] = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)
    failed_images: dict[str, str] = field(default_factory=dict)
    output_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "failed" if self.failed_images else "ok"

    @property
    def outputs_digest(self) -> str:
        return digest_of_files(self.output_sha256)

    def as_dict(self) -> dict:
        return {
            "schema": EVALUATION_SCHEMA,
            "mode": self.mode,
            "status": self.status,
            "metrics": self.metrics,
            "n_images": len(self.per_image),
            "per_image": self.per_image,
            "mean": self.mean,
            "unavailable": self.unavailable,
            "findings": self.findings,
            "failed_images": self.failed_images,
            "outputs_digest": self.outputs_digest,
            "output_sha256": self.output_sha256,
        }


def evaluate(sr_dir: Path, hr_dir: Path, metric_names: list[str], mode: str = "faithful",
             metric_cache: Path | None = None, device: str = "cpu",
             progress: Callable[[int, int, str], None] | None = None) -> Evaluation:
    if mode not in MODES:
        raise EvaluationError(f"unknown mode '{mode}'", hint=f"use one of: {', '.join(MODES)}")
    wanted = M.parse_metric_list(metric_names)
    check_device(device)
    base = M.computed_metrics(wanted)
    builtin = [n for n in base if M.METRICS[n].backend == "builtin"]
    learned = [n for n in base if M.METRICS[n].backend == "pyiqa"]
    pairs = pair_outputs(sr_dir, hr_dir)
    result = Evaluation(mode=mode, metrics=wanted)

    iqa = scoring.PyiqaMetrics(metric_cache or Path(".cache/metric-weights"), device=device)
    usable = []
    for name in learned:
        reason = iqa.unavailable_reason(name)
        if reason:
            result.unavailable[name] = {"reason": reason, "fetch": f"{M.FETCH_COMMAND} {name}"}
        else:
            usable.append(name)

    for index, (stem, sr_path, hr_path) in enumerate(pairs):
        if progress:
            progress(index, len(pairs), stem)
        result.output_sha256[sr_path.name] = sha256_file(sr_path)
        result.per_image[stem] = _evaluate_image(stem, sr_path, hr_path, builtin, usable, iqa, result)
    if progress:
        progress(len(pairs), len(pairs), "")

    for name in list(usable):
        if name in result.unavailable:
            usable.remove(name)
    if result.status == "ok":
        for name in builtin + usable:
            values = [row.get(name) for row in result.per_image.values()]
            # The organizers average a missing value as 0; each such image is already a finding.
            result.mean[name] = sum(v if v is not None else 0.0 for v in values) / len(values)
        if M.SCORE.name in wanted:
            absent = [n for n in M.SCORE_COMPONENTS if n not in result.mean]
            if absent:
                result.unavailable[M.SCORE.name] = {
                    "reason": f"needs {', '.join(absent)}, which could not be computed",
                    "fetch": f"{M.FETCH_COMMAND} {' '.join(absent)}"}
            else:
                result.mean[M.SCORE.name] = M.perceptual_score(result.mean)
    return result


def _evaluate_image(stem, sr_path, hr_path, builtin, learned, iqa, result: Evaluation) -> dict:
    strict = result.mode == "strict"
    row: dict[str, float | None] = {n: None for n in builtin + learned}

    def finding(kind: str, message: str, metric: str | None = None, severity: str = "warning"):
        result.findings.append({"kind": kind, "image": stem, "metric": metric,
                                "severity": severity, "message": message})

    def fail_or_zero(kind: str, message: str, metric: str | None = None):
        if strict:
            result.failed_images.setdefault(stem, message)
            finding(kind, message, metric, severity="error")
        else:
            finding(kind, f"{message}; counted as 0 in the average, as the organizers did", metric)

    header = read_png_header(sr_path)
    if header is not None and not header.is_plain_rgb8:
        finding("converted_input", f"output is {header.bit_depth}-bit {header.color}; read as 8-bit RGB "
                "(high byte kept, alpha dropped), as OpenCV does", severity="info")
    try:
        sr = read_rgb8(sr_path)
        hr = read_rgb8(hr_path)
    except EvaluationError as exc:
        fail_or_zero("unreadable_output", exc.message)
        return row

    if builtin:
        try:
            row.update(scoring.psnr_ssim(sr, hr, builtin))
        except Exception as exc:  # the organizers' "a metric raised" case
            message = exc.message if isinstance(exc, EvaluationError) else f"{type(exc).__name__}: {exc}"
            for name in builtin:
                fail_or_zero("metric_error", f"{name}: {message}", name)

    if not learned:
        return row
    sr_t, hr_t = scoring.rgb_tensor(sr), scoring.rgb_tensor(hr)
    if sr.shape != hr.shape:
        message = (f"output is {sr.shape[1]}x{sr.shape[0]} but ground truth is {hr.shape[1]}x{hr.shape[0]}")
        if strict:
            result.failed_images.setdefault(stem, message)
            finding("size_mismatch", message, severity="error")
            return row
        height, width = min(sr.shape[0], hr.shape[0]), min(sr.shape[1], hr.shape[1])
        finding("resized", f"{message}; both bilinearly resized to {width}x{height} before the learned "
                "metrics, as the organizers did")
        sr_t, hr_t = scoring.resize_bilinear(sr_t, height, width), scoring.resize_bilinear(hr_t, height, width)
    for name in learned:
        if name in result.unavailable:
            continue
        try:
            value = iqa.score(name, sr_t, hr_t)
        except MetricUnavailable as exc:
            result.unavailable[name] = {"reason": exc.message, "fetch": f"{M.FETCH_COMMAND} {name}"}
            continue
        except Exception as exc:  # any failure inside a metric is the organizers' "error" case
            fail_or_zero("metric_error", f"{name}: {type(exc).__name__}: {exc}", name)
            continue
        if math.isnan(value):
            fail_or_zero("metric_error", f"{name}: returned NaN", name)
            continue
        row[name] = value
    return row


def evaluate_team(team, dataset: str, record: dict | None, run_dirs: list[Path], hr_dir: Path,
                  metric_names: list[str], mode: str, metric_cache: Path, device: str = "cpu",
                  progress=None) -> dict:
    """Score every run of a team; a failed or missing run is carried through, not hidden.

    `progress(run, runs, done, total, name)` is called after each image."""
    from . import __version__
    from .provenance import git_sha

    result = TeamEvaluation(team=team.id, dataset=dataset, mode=mode, metrics=metric_names, run_key=team.run_key,
                            harness_version=__version__, git_sha=git_sha(Path.cwd()),
                            pyiqa_version=pyiqa_version(), metric_weights=_weight_checksums(metric_cache),
                            device=device)
    if record is None:
        result.inference = {"status": "failed", "failure": {
            "kind": "not_run", "message": f"{team.id} has no run record", "hint": f"run `harness infer {team.id}`"}}
        return result.as_dict()
    containers = [run["provenance"].get("container") or {} for run in record.get("runs", [])]
    result.inference = {"status": record["status"], "failure": record.get("failure"),
                        "runner": record.get("runner"), "device": record.get("device"),
                        "image": containers[0].get("image") if containers else None,
                        "image_id": containers[0].get("image_id") if containers else None}
    if record["status"] != "ok":
        return result.as_dict()
    for index, run_dir in enumerate(run_dirs, start=1):
        def step(done, total, name, _index=index):
            if progress:
                progress(_index, len(run_dirs), done, total, name)

        try:
            evaluation = evaluate(run_dir, hr_dir, metric_names, mode, metric_cache, device, step).as_dict()
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
    listing = Path(cache_dir) / "checksums.json"
    return json.loads(listing.read_text()) if listing.exists() else {}


def mean_metrics(team_evaluation: dict) -> dict[str, float]:
    """Per metric, the mean over runs of the per-run means (the dvc metrics view)."""
    runs = [r for r in team_evaluation["runs"] if r.get("status") == "ok"]
    names = sorted({n for r in runs for n in r["mean"]})
    return {n: sum(r["mean"][n] for r in runs if n in r["mean"]) / sum(1 for r in runs if n in r["mean"])
            for n in names}
