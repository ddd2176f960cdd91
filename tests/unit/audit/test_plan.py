"""The plan's scoring time: from each metric's measured cost and the ground truth's sizes, on a CPU; on a GPU,
and without the ground truth, it says it does not know."""

from dataclasses import replace

import numpy as np

from harness.audit import plan
from harness.catalogue import audit_params, datasets, metric_costs, roster
from harness.core.project import Project
from harness.imaging.pictures import encode_png
from harness.score import backends
from harness.score.per_image import scoring_cpu_seconds, torch_threads


def scoring_row(proj, settings, names):
    return plan._scoring_time(proj, datasets.get("mini"), settings, names)


def test_the_scoring_time_comes_from_the_measured_costs_and_the_images_sizes(project):
    proj = Project(project)
    truth = datasets.get("mini").hr_dir(proj.data_dir)
    truth.mkdir(parents=True, exist_ok=True)
    for old in truth.glob("*.png"):
        old.unlink()
    for stem in ("0001", "0002"):
        (truth / f"{stem}.png").write_bytes(encode_png(np.zeros((1356, 2040, 3), np.uint8)))
    settings = replace(audit_params.read(proj), eval_workers=2, device="cpu")
    names = ["psnr", "ssim", "niqe", "dists", "maniqa", "perceptual_score"]
    row = scoring_row(proj, settings, names)
    cpu = scoring_cpu_seconds(backends.grouped(names, "image"), 2 * 2040 * 1356 / 1e6, 2)
    assert cpu > 2 * metric_costs.COSTS["maniqa"].per_image_s  # the learned costs are counted
    assert row.status == "ok"
    threads = torch_threads(True, "cpu")  # learned metrics: one process, torch's threads
    assert row.detail.startswith(f"≈{plan._duration(cpu / threads)} for 2 images (6 megapixels) with one process "
                                 f"of {threads} torch threads on this CPU")
    plain = scoring_row(proj, settings, ["psnr", "ssim", "niqe"])
    assert "with 2 worker(s) on this CPU" in plain.detail
    assert "psnr, ssim, niqe, dists, maniqa)" in row.detail  # the derived score costs nothing of its own

    on_gpu = scoring_row(proj, replace(settings, device="cuda"), names)
    assert on_gpu.status == "unknown" and "measured on a CPU only" in on_gpu.detail
    assert on_gpu.fix == "make gpu-check measures them on a GPU"


def test_without_the_ground_truth_the_sizes_are_unknown(project):
    proj = Project(project)
    settings = audit_params.read(proj)
    finding = plan._scoring_time(proj, datasets.get("ntire2025-test"), settings, ["psnr"])
    assert finding.status == "unknown" and "is not here" in finding.detail


def test_verifys_plan_carries_the_scoring_time(project):
    proj = Project(project)
    findings = plan.make(proj, roster.load(proj, "bicubic"), datasets.get("mini"), audit_params.read(proj))
    assert [f.check for f in findings][-1] == "scoring time"
