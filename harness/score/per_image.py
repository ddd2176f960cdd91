"""Scoring images, one pair at a time: reading, the organizers' repairs, PSNR/SSIM and NIQE (the harness's
own code), the learned metrics (pyiqa) and the LR-consistency check; here or in a pool of worker
processes. The heavy libraries (numpy, OpenCV, SciPy) are imported by this module only, when an
evaluation starts; torch only when a learned metric is asked for, or an output must be resized.
"""

from __future__ import annotations

import math
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.catalogue.metrics import METRICS
from harness.core.errors import EvaluationError, MetricUnavailable
from harness.core.files import sha256_file
from harness.imaging.input_policy import image_facts
from harness.imaging.pictures import read_rgb8
from harness.imaging.png_header import read_png_header
from harness.score import formulas, lr_consistency

if TYPE_CHECKING:  # harness.score.niqe imports SciPy: only when NIQE is scored
    from harness.score import niqe as niqe_mod


def finding_of(kind: str, image: str, message: str, metric: str | None = None, severity: str = "warning") -> dict:
    """A finding: something about one image that a reader of the verdict should know."""
    return {"kind": kind, "image": image, "metric": metric, "severity": severity, "message": message}


def cross_check(pairs: list, signatures: dict, result) -> None:
    """An output that fits another input better than its own is named (it belongs elsewhere)."""
    if not signatures:
        return
    inputs = {p.stem: lr_consistency.lr_signature(read_rgb8(p.lr)) for p in pairs if p.lr is not None}
    for stem, message in lr_consistency.cross_check(signatures, inputs).items():
        result.findings.append(finding_of("lr_inconsistent", stem, message))


@dataclass(frozen=True)
class ImageJob:
    """What every image of an evaluation is scored with (picklable: it travels to worker processes)."""

    builtin: list[str]  # the harness's own code: PSNR and SSIM (full reference), NIQE (no reference)
    learned: list[str]  # pyiqa's, on torch
    mode: str
    cache: str
    device: str

    @property
    def full_reference(self) -> list[str]:
        return [n for n in self.builtin if METRICS[n].reference == "FR"]

    @property
    def no_reference(self) -> list[str]:
        return [n for n in self.builtin if METRICS[n].reference == "NR"]


class Scorers:
    """What one process scores with, each made on first use: NIQE's pristine model, pyiqa's metrics."""

    def __init__(self, cache: str, device: str):
        self.cache = Path(cache)
        self.iqa = formulas.PyiqaMetrics(self.cache, device=device)
        self._niqe: niqe_mod.PristineModel | None = None

    def niqe(self, image) -> float:
        from harness.score import niqe

        if self._niqe is None:
            try:
                self._niqe = niqe.PristineModel.load(self.cache / METRICS["niqe"].weight_files[0].path)
            except EvaluationError as exc:
                raise MetricUnavailable("niqe", exc.message, hint="re-fetch with `harness fetch metric-weights "
                                        "niqe`") from None
        return niqe.score(image, self._niqe)


# CPU seconds per megapixel of output on one core of the reference machine (benchmarks/bench_evaluation.py),
# and what starting a worker costs: a fork of this process, or a fresh one that imports torch and pyiqa.
# The learned metrics' costs, each its own, are in harness.catalogue.metric_costs.
COST_PER_MEGAPIXEL = {"read": 0.06, "full_reference": 0.27, "niqe": 0.32, "lr": 0.30}
FORK_START_S, TORCH_START_S = 0.1, 8.0


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


def plan_workers(job: ImageJob, pairs: list, allowed: int) -> tuple[int, str]:
    """How many processes score the images (at most `allowed`), and why: a pool only where the scoring it
    spreads outweighs what starting its workers costs, from the images' sizes and the metrics asked for."""
    from harness.imaging.input_policy import image_facts

    count = min(max(1, allowed), len(pairs))
    if count == 1:
        return 1, ("one image" if len(pairs) == 1 else "one process allowed") + ": scored in this process"
    from harness.catalogue import metric_costs

    sizes = [(f.width or 0) * (f.height or 0) / 1e6 for f in (image_facts(p.output) for p in pairs)]
    megapixels = sum(sizes)
    per_megapixel = COST_PER_MEGAPIXEL["read"] * 2
    per_megapixel += COST_PER_MEGAPIXEL["full_reference"] if job.full_reference else 0
    per_megapixel += COST_PER_MEGAPIXEL["niqe"] * len(job.no_reference)
    per_megapixel += COST_PER_MEGAPIXEL["lr"] if any(p.lr is not None for p in pairs) else 0
    work = megapixels * per_megapixel + metric_costs.scoring_seconds(job.learned, megapixels, len(pairs))
    if job.learned:  # each worker holds every network and one image's activations: no more than memory holds
        fit = metric_costs.workers_that_fit(job.learned, max(sizes))
        if fit < count:
            count = fit
            if count == 1:
                return 1, f"one worker's memory ({metric_costs.worker_gib(job.learned, max(sizes)):.1f} GiB) is " \
                          "all the memory available holds: scored in this process"
    start = TORCH_START_S if _needs_fresh_workers(job) else FORK_START_S
    saved = work - work / count
    summary = f"{len(pairs)} images, {megapixels:.1f} megapixels, about {work:.1f} s of scoring"
    if saved <= 2 * start:
        return 1, f"{summary}: {count} workers would save {saved:.1f} s and cost {start:.1f} s each to start"
    return count, f"{summary}: {count} worker processes save about {saved:.1f} s; each starts in {start:.2f} s"


def _needs_fresh_workers(job: ImageJob) -> bool:
    """torch's threads do not survive a fork: with a learned metric (or torch already here), workers start
    afresh; otherwise they are forks of this process, ready at once."""
    return bool(job.learned) or "torch" in sys.modules


def score_all(job: ImageJob, pairs: list, workers: int):
    """Image results in the order of `pairs`: here, or in a pool of processes that each load a metric
    once; at most two images per worker are in flight, so memory does not grow with the image count."""
    workers = max(1, min(workers, len(pairs)))
    if workers == 1:
        scorers = Scorers(job.cache, job.device)
        for pair in pairs:
            yield _score_image(job, pair, scorers)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    fresh = _needs_fresh_workers(job)
    opencv_threads = None
    if not fresh:
        import cv2

        if job.no_reference:
            pass
        # OpenCV's thread pool does not survive a fork (a child touching it can wait forever on a lock
        # held by a thread it does not have): stop the pool before forking, restore it afterwards.
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
    context = multiprocessing.get_context("spawn" if fresh else "fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(bool(job.learned), fresh))
    try:
        pending: deque = deque()
        for pair in pairs:
            pending.append(pool.submit(_score_in_worker, job, pair))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        pool.shutdown(wait=True)
    except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: no worker outlives the evaluation
        for process in multiprocessing.active_children():
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if opencv_threads is not None:
            import cv2

            cv2.setNumThreads(opencv_threads)


def _init_worker(uses_torch: bool, fresh: bool) -> None:
    """One thread per worker process: the pool is the parallelism (a forked worker inherits OpenCV at
    one thread). The parent stops its workers: a worker dies quietly on SIGTERM and leaves Ctrl-C to
    the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if fresh:
        import cv2

        cv2.setNumThreads(1)
    if uses_torch:
        import torch

        torch.set_num_threads(1)


_WORKER_SCORERS: dict = {}


def _score_in_worker(job: ImageJob, pair) -> ImageResult:
    scorers = _WORKER_SCORERS.get(job.cache)
    if scorers is None:
        scorers = _WORKER_SCORERS[job.cache] = Scorers(job.cache, job.device)
    return _score_image(job, pair, scorers)


def _score_image(job: ImageJob, pair, scorers: Scorers) -> ImageResult:
    return _ImageScoring(job, pair).run(scorers)


def _described(exc: Exception) -> str:
    return exc.message if isinstance(exc, EvaluationError) else f"{type(exc).__name__}: {exc}"


class _ImageScoring:
    """One image's scores and findings, the organizers' repairs applied (faithful) or refused (strict)."""

    def __init__(self, job: ImageJob, pair):
        self.job, self.pair, self.strict = job, pair, job.mode == "strict"
        self.image = ImageResult(pair.stem, pair.output.name, sha256_file(pair.output),
                                 {n: None for n in job.builtin + job.learned})

    def finding(self, kind: str, message: str, metric: str | None = None, severity: str = "warning") -> None:
        self.image.findings.append(finding_of(kind, self.pair.stem, message, metric, severity))

    def fail_or_zero(self, kind: str, message: str, metric: str | None = None) -> None:
        if self.strict:
            self.image.failed = self.image.failed or message
            self.finding(kind, message, metric, severity="error")
        else:
            self.finding(kind, f"{message}; counted as 0 in the average, as the organizers did", metric)

    def run(self, scorers: Scorers) -> ImageResult:
        images = self.read()
        if images is None:
            return self.image
        sr, hr = images
        if self.pair.lr is not None:
            fit = lr_consistency.check(sr, read_rgb8(self.pair.lr))
            self.image.consistency, self.image.signature = fit.as_dict(), fit.signature
            if fit.problem:
                self.finding("lr_inconsistent", fit.problem)
        if self.job.full_reference and hr is not None:
            self.full_reference(sr, hr)
        if not (self.job.no_reference or self.job.learned):
            return self.image
        repaired = self.same_size(sr, hr)
        if repaired is None:
            return self.image
        sr_t, hr_t, seen = repaired
        for name in self.job.no_reference:
            self.record(name, lambda: scorers.niqe(seen), _described)
        if self.job.learned:
            if sr_t is None:
                sr_t = formulas.rgb_tensor(sr)
                hr_t = formulas.rgb_tensor(hr) if hr is not None else None
            for name in self.job.learned:  # any failure inside a metric is the organizers' "error" case
                self.record(name, lambda n=name: scorers.iqa.score(n, sr_t, hr_t),
                            lambda exc: f"{type(exc).__name__}: {exc}")
        return self.image

    def read(self):
        """(output, ground truth or None) as 8-bit RGB; None when the image cannot be scored at all."""
        output = self.pair.output
        facts = image_facts(output)
        if facts.format != "PNG":
            what = f"a {facts.format} file" if facts.format else "not an image file OpenCV would recognise by its bytes"
            if self.strict:
                self.image.failed = f"{output.name} is {what} named .png"
                self.finding("not_png", self.image.failed, severity="error")
                return None
            self.finding("not_png", f"{output.name} is {what} named .png; read by its content, as OpenCV does")
        header = read_png_header(output)
        if header is not None and not header.is_plain_rgb8:
            self.finding("converted_input", f"output is {header.bit_depth}-bit {header.color}; read as 8-bit RGB "
                         "(high byte kept, alpha dropped), as OpenCV does", severity="info")
        hr = None
        if self.pair.truth is not None:
            try:
                hr = read_rgb8(self.pair.truth)
            except EvaluationError as exc:
                self.image.truth_error = exc.message
                return None
        try:
            return read_rgb8(output), hr
        except EvaluationError as exc:
            self.fail_or_zero("unreadable_output", exc.message)
            return None

    def full_reference(self, sr, hr) -> None:
        try:
            values = formulas.psnr_ssim(sr, hr, self.job.full_reference)
        except Exception as exc:  # the organizers' "a metric raised" case
            for name in self.job.full_reference:
                self.fail_or_zero("metric_error", f"{name}: {_described(exc)}", name)
            return
        for name, value in values.items():
            if math.isnan(value):
                self.fail_or_zero("metric_error", f"{name}: undefined (NaN)", name)
                continue
            if math.isinf(value):  # only PSNR, only for an output equal to its ground truth
                self.finding("identical_output", f"{name} is infinite: the output equals its ground truth; the "
                             "mean is infinite too, as the organizers' would be", name, severity="info")
            self.image.row[name] = value

    def same_size(self, sr, hr):
        """The organizers gave pyiqa (NIQE and the learned metrics) both images at the smaller size:
        (output tensor, truth tensor, what NIQE scores), the tensors None when no repair was needed; None
        when strict mode refuses the repair."""
        if hr is None or sr.shape == hr.shape:
            return None, None, sr
        message = f"output is {sr.shape[1]}x{sr.shape[0]} but ground truth is {hr.shape[1]}x{hr.shape[0]}"
        if self.strict:
            self.image.failed = self.image.failed or message
            self.finding("size_mismatch", message, severity="error")
            return None
        height, width = min(sr.shape[0], hr.shape[0]), min(sr.shape[1], hr.shape[1])
        self.finding("resized", f"{message}; both bilinearly resized to {width}x{height} before NIQE and the "
                     "learned metrics, as the organizers did")
        sr_t = formulas.resize_bilinear(formulas.rgb_tensor(sr), height, width)
        hr_t = formulas.resize_bilinear(formulas.rgb_tensor(hr), height, width)
        return sr_t, hr_t, sr_t[0].permute(1, 2, 0).contiguous().numpy()

    def record(self, name: str, compute, describe) -> None:
        """One metric's value, or why it is missing (unavailable, raised, not finite)."""
        try:
            value = compute()
        except MetricUnavailable as exc:
            self.image.unavailable[name] = exc.message
            return
        except Exception as exc:
            self.fail_or_zero("metric_error", f"{name}: {describe(exc)}", name)
            return
        if not math.isfinite(value):
            self.fail_or_zero("metric_error", f"{name}: returned {value}", name)
            return
        self.image.row[name] = value
