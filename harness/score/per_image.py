"""Scoring images, one pair at a time: reading, the organizers' repairs, each image backend's metrics
(harness.score.backends) and the LR-consistency check; here or in a pool of worker processes. The heavy
libraries (numpy, OpenCV, SciPy) are imported when an evaluation starts; torch only when a learned metric is
asked for, or an output must be resized.
"""

from __future__ import annotations

import math
import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.core.errors import EvaluationError, MetricUnavailable
from harness.core.files import sha256_file
from harness.imaging.input_policy import image_facts
from harness.imaging.pictures import read_rgb8
from harness.imaging.png_header import read_png_header
from harness.score import backends, formulas, lr_consistency
from harness.score.backends.base import Picture, ProcessState

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.score.backends.base import MetricBackend


def finding_of(kind: str, image: str, message: str, metric: str | None = None, severity: str = "warning") -> dict:
    """A finding: something about one image that a reader of the verdict should know."""
    return {"kind": kind, "image": image, "metric": metric, "severity": severity, "message": message}


def name_misplaced_outputs(pairs: list, signatures: dict, result) -> None:
    """An output that fits another input better than its own is named (it belongs elsewhere)."""
    if not signatures:
        return
    inputs = {p.stem: lr_consistency.lr_signature(read_rgb8(p.lr)) for p in pairs if p.lr is not None}
    for stem, message in lr_consistency.cross_check(signatures, inputs).items():
        result.findings.append(finding_of("lr_inconsistent", stem, message))


@dataclass(frozen=True)
class ImageJob:
    """What every image of an evaluation is scored with (picklable: it travels to worker processes):
    (backend name, its metrics) in the registry's order."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]
    mode: str
    cache: str
    device: str

    def backends(self) -> list[tuple[MetricBackend, list[str]]]:
        return [(backends.get(name), list(names)) for name, names in self.groups]

    @property
    def names(self) -> list[str]:
        return [name for _, names in self.groups for name in names]

    @property
    def uses_torch(self) -> bool:
        return any(backend.uses_torch for backend, _ in self.backends())


# CPU seconds per megapixel of output on one core of the reference machine (benchmarks/bench_evaluation.py)
# for reading a pair and for the LR check, and what starting a worker costs: a fork of this process, or a
# fresh one that imports torch and pyiqa. Each backend says what its metrics cost.
READ_SECONDS_PER_MEGAPIXEL, LR_SECONDS_PER_MEGAPIXEL = 0.06, 0.30
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


def scoring_cpu_seconds(groups: list[tuple[MetricBackend, list[str]]], megapixels: float, images: int,
                        with_lr: bool = False) -> float:
    """CPU seconds on one core of the measured machine to read and score `images` outputs of `megapixels` in
    all with the metrics of `groups` (each backend's measured costs)."""
    per_megapixel = READ_SECONDS_PER_MEGAPIXEL * 2 + (LR_SECONDS_PER_MEGAPIXEL if with_lr else 0)
    return megapixels * per_megapixel + sum(backend.seconds(names, megapixels, images) for backend, names in groups)


def plan_workers(job: ImageJob, pairs: list, allowed: int) -> tuple[int, str]:
    """How many processes score the images (at most `allowed`), and why: a pool only where the scoring it
    spreads outweighs what starting its workers costs, from the images' sizes and the metrics asked for."""
    from harness.imaging.input_policy import image_facts

    threads = torch_threads(job.uses_torch, job.device)
    if threads:
        return 1, (f"learned metrics on a CPU: scored in this process with torch's {threads} threads, as "
                   "the organizers' eval.py scores them; their sums depend on the thread count, and a pool of "
                   "one-thread workers would change their last bits")
    count = min(max(1, allowed), len(pairs))
    if count == 1:
        return 1, ("one image" if len(pairs) == 1 else "one process allowed") + ": scored in this process"
    sizes = [(f.width or 0) * (f.height or 0) / 1e6 for f in (image_facts(p.output) for p in pairs)]
    megapixels = sum(sizes)
    work = scoring_cpu_seconds(job.backends(), megapixels, len(pairs), any(p.lr is not None for p in pairs))
    start = TORCH_START_S if _needs_fresh_workers(job) else FORK_START_S
    saved = work - work / count
    summary = f"{len(pairs)} images, {megapixels:.1f} megapixels, about {work:.1f} s of scoring"
    if saved <= 2 * start:
        return 1, f"{summary}: {count} workers would save {saved:.1f} s and cost {start:.1f} s each to start"
    return count, f"{summary}: {count} worker processes save about {saved:.1f} s; each starts in {start:.2f} s"


def torch_threads(uses_torch: bool, device: str) -> int | None:
    """The threads that score learned metrics on a CPU, all in this process: torch's default here (the cores,
    or OMP_NUM_THREADS), as in the organizers' eval.py on the same machine. None: no learned metric on a CPU."""
    if not uses_torch or device != "cpu":
        return None
    import torch

    return torch.get_num_threads()


def _needs_fresh_workers(job: ImageJob) -> bool:
    """torch's threads do not survive a fork: with a learned metric (or torch already here), workers start
    afresh; otherwise they are forks of this process, ready at once."""
    return job.uses_torch or "torch" in sys.modules


def score_all(job: ImageJob, pairs: list, workers: int):
    """Image results in the order of `pairs`: here, or in a pool of processes that each load a metric
    once; at most two images per worker are in flight, so memory does not grow with the image count."""
    workers = max(1, min(workers, len(pairs)))
    if workers == 1:
        state = ProcessState(job.cache, job.device)
        for pair in pairs:
            yield _score_image(job, pair, state)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    fresh = _needs_fresh_workers(job)
    opencv_threads = None
    if not fresh:
        import cv2

        # OpenCV's thread pool does not survive a fork (a child touching it can wait forever on a lock
        # held by a thread it does not have): stop the pool before forking, restore it afterwards.
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
    context = multiprocessing.get_context("spawn" if fresh else "fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(fresh,))
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


def _init_worker(fresh: bool) -> None:
    """One OpenCV thread per worker process: the pool is the parallelism (a forked worker inherits OpenCV
    at one thread; learned metrics never reach a pool on a CPU: plan_workers). The parent stops its
    workers: a worker dies quietly on SIGTERM and leaves Ctrl-C to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if fresh:
        import cv2

        cv2.setNumThreads(1)


_WORKER_STATES: dict = {}


def _score_in_worker(job: ImageJob, pair) -> ImageResult:
    state = _WORKER_STATES.get(job.cache)
    if state is None:
        state = _WORKER_STATES[job.cache] = ProcessState(job.cache, job.device)
    return _score_image(job, pair, state)


def _score_image(job: ImageJob, pair, state: ProcessState) -> ImageResult:
    return _ImageScoring(job, pair).run(state)


def _described(exc: Exception) -> str:
    return exc.message if isinstance(exc, EvaluationError) else f"{type(exc).__name__}: {exc}"


class _ImageScoring:
    """One image's scores and findings, the organizers' repairs applied (faithful) or refused (strict)."""

    def __init__(self, job: ImageJob, pair):
        self.job, self.pair, self.strict = job, pair, job.mode == "strict"
        self.image = ImageResult(pair.stem, pair.output.name, sha256_file(pair.output),
                                 {n: None for n in job.names})

    def finding(self, kind: str, message: str, metric: str | None = None, severity: str = "warning") -> None:
        self.image.findings.append(finding_of(kind, self.pair.stem, message, metric, severity))

    def fail_or_zero(self, kind: str, message: str, metric: str | None = None) -> None:
        if self.strict:
            self.image.failed = self.image.failed or message
            self.finding(kind, message, metric, severity="error")
        else:
            self.finding(kind, f"{message}; counted as 0 in the average, as the organizers did", metric)

    def run(self, state: ProcessState) -> ImageResult:
        images = self.read()
        if images is None:
            return self.image
        sr, hr = images
        if self.pair.lr is not None:
            fit = lr_consistency.check(sr, read_rgb8(self.pair.lr))
            self.image.consistency, self.image.signature = fit.as_dict(), fit.signature
            if fit.problem:
                self.finding("lr_inconsistent", fit.problem)
        groups = self.job.backends()
        for backend, names in groups:
            if not backend.repaired and hr is not None:
                self.together(backend, names, Picture(sr, hr), state)
        if not any(backend.repaired for backend, _ in groups):
            return self.image
        repaired = self.same_size(sr, hr)
        if repaired is None:
            return self.image
        picture = Picture(sr, hr, *repaired)
        for backend, names in groups:
            if backend.repaired:
                for name in names:  # any failure inside a metric is the organizers' "error" case
                    self.record(name, lambda b=backend, n=name: b.score(n, picture, state), backend.describe)
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

    def together(self, backend: MetricBackend, names: list[str], picture: Picture, state: ProcessState) -> None:
        """Metrics that share their work, scored at once and failed together."""
        try:
            values = backend.score_together(names, picture, state)
        except Exception as exc:  # the organizers' "a metric raised" case
            for name in names:
                self.fail_or_zero("metric_error", f"{name}: {backend.describe(exc)}", name)
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
