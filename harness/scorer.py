"""Scoring images, one pair at a time: reading, the organizers' repairs, PSNR/SSIM, the learned metrics
and the LR-consistency check; here or in a pool of worker processes. The heavy libraries (numpy, OpenCV,
torch through the metrics) are imported by this module only, when an evaluation starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from . import consistency, scoring
from .errors import EvaluationError, MetricUnavailable
from .fsutil import sha256_file
from .imageio import read_rgb8
from .inputs import image_facts
from .png import read_png_header


def finding_of(kind: str, image: str, message: str, metric: str | None = None, severity: str = "warning") -> dict:
    """A finding: something about one image that a reader of the verdict should know."""
    return {"kind": kind, "image": image, "metric": metric, "severity": severity, "message": message}


def cross_check(pairs: list, signatures: dict, result) -> None:
    """An output that fits another input better than its own is named (it belongs elsewhere)."""
    if not signatures:
        return
    inputs = {p.stem: consistency.lr_signature(read_rgb8(p.lr)) for p in pairs if p.lr is not None}
    for stem, message in consistency.cross_check(signatures, inputs).items():
        result.findings.append(finding_of("lr_inconsistent", stem, message))


@dataclass(frozen=True)
class ImageJob:
    """What every image of an evaluation is scored with (picklable: it travels to worker processes)."""

    builtin: list[str]
    learned: list[str]
    mode: str
    cache: str
    device: str


@dataclass
class ImageResult:
    stem: str
    output_name: str
    sha256: str
    row: dict
    findings: list[dict] = field(default_factory=list)
    failed: str | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    consistency: dict | None = None
    signature: object = None
    truth_error: str | None = None  # the ground truth could not be read: the dataset's problem, not the team's


_WORKER_METRICS: dict = {}


def score_all(job: ImageJob, pairs: list, workers: int):
    """Image results in the order of `pairs`: here, or in a pool of processes that each load a metric
    once; at most two images per worker are in flight, so memory does not grow with the image count."""
    workers = max(1, min(workers, len(pairs)))
    if workers == 1:
        metrics = scoring.PyiqaMetrics(Path(job.cache), device=job.device)
        for pair in pairs:
            yield _score_image(job, pair, metrics)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # a fork of a process with torch's threads can hang
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
    try:
        pending = deque()
        for pair in pairs:
            pending.append(pool.submit(_score_in_worker, job, pair))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: no worker outlives the evaluation
        for process in multiprocessing.active_children():
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _init_worker() -> None:
    """One thread per worker process: the pool is the parallelism."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _score_in_worker(job: ImageJob, pair) -> ImageResult:
    metrics = _WORKER_METRICS.get(job.cache)
    if metrics is None:
        metrics = _WORKER_METRICS[job.cache] = scoring.PyiqaMetrics(Path(job.cache), device=job.device)
    return _score_image(job, pair, metrics)


def _score_image(job: ImageJob, pair, iqa) -> ImageResult:
    stem, strict = pair.stem, job.mode == "strict"
    image = ImageResult(stem, pair.output.name, sha256_file(pair.output), {n: None for n in job.builtin + job.learned})
    row = image.row

    def finding(kind: str, message: str, metric: str | None = None, severity: str = "warning"):
        image.findings.append(finding_of(kind, stem, message, metric, severity))

    def fail_or_zero(kind: str, message: str, metric: str | None = None):
        if strict:
            image.failed = image.failed or message
            finding(kind, message, metric, severity="error")
        else:
            finding(kind, f"{message}; counted as 0 in the average, as the organizers did", metric)

    facts = image_facts(pair.output)
    if facts.format != "PNG":
        what = f"a {facts.format} file" if facts.format else "not an image file OpenCV would recognise by its bytes"
        if strict:
            image.failed = f"{pair.output.name} is {what} named .png"
            finding("not_png", image.failed, severity="error")
            return image
        finding("not_png", f"{pair.output.name} is {what} named .png; read by its content, as OpenCV does")
    header = read_png_header(pair.output)
    if header is not None and not header.is_plain_rgb8:
        finding("converted_input", f"output is {header.bit_depth}-bit {header.color}; read as 8-bit RGB "
                "(high byte kept, alpha dropped), as OpenCV does", severity="info")
    if pair.truth is not None:
        try:
            hr = read_rgb8(pair.truth)
        except EvaluationError as exc:
            image.truth_error = exc.message
            return image
    else:
        hr = None
    try:
        sr = read_rgb8(pair.output)
    except EvaluationError as exc:
        fail_or_zero("unreadable_output", exc.message)
        return image

    if pair.lr is not None:
        fit = consistency.check(sr, read_rgb8(pair.lr))
        image.consistency, image.signature = fit.as_dict(), fit.signature
        if fit.problem:
            finding("lr_inconsistent", fit.problem)

    if job.builtin and hr is not None:
        try:
            values = scoring.psnr_ssim(sr, hr, job.builtin)
        except Exception as exc:  # the organizers' "a metric raised" case
            message = exc.message if isinstance(exc, EvaluationError) else f"{type(exc).__name__}: {exc}"
            for name in job.builtin:
                fail_or_zero("metric_error", f"{name}: {message}", name)
        else:
            for name, value in values.items():
                if math.isnan(value):
                    fail_or_zero("metric_error", f"{name}: undefined (NaN)", name)
                    continue
                if math.isinf(value):  # only PSNR, only for an output equal to its ground truth
                    finding("identical_output", f"{name} is infinite: the output equals its ground truth; the "
                            "mean is infinite too, as the organizers' would be", name, severity="info")
                row[name] = value

    if not job.learned:
        return image
    sr_t = scoring.rgb_tensor(sr)
    hr_t = scoring.rgb_tensor(hr) if hr is not None else None
    if hr is not None and sr.shape != hr.shape:
        message = (f"output is {sr.shape[1]}x{sr.shape[0]} but ground truth is {hr.shape[1]}x{hr.shape[0]}")
        if strict:
            image.failed = image.failed or message
            finding("size_mismatch", message, severity="error")
            return image
        height, width = min(sr.shape[0], hr.shape[0]), min(sr.shape[1], hr.shape[1])
        finding("resized", f"{message}; both bilinearly resized to {width}x{height} before the learned "
                "metrics, as the organizers did")
        sr_t, hr_t = scoring.resize_bilinear(sr_t, height, width), scoring.resize_bilinear(hr_t, height, width)
    for name in job.learned:
        try:
            value = iqa.score(name, sr_t, hr_t)
        except MetricUnavailable as exc:
            image.unavailable[name] = exc.message
            continue
        except Exception as exc:  # any failure inside a metric is the organizers' "error" case
            fail_or_zero("metric_error", f"{name}: {type(exc).__name__}: {exc}", name)
            continue
        if not math.isfinite(value):
            fail_or_zero("metric_error", f"{name}: returned {value}", name)
            continue
        row[name] = value
    return image
