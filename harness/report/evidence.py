"""What the report shows beyond the verdict rows, gathered from the files an audit leaves: each team's
per-image values, its runs' means, a provenance summary, its worst images with the crop where the
output differs most, and the leaderboards re-ranked with the reproduced values.

Everything here goes into report.json; the HTML page is a view of it (plus the crops it cuts again
from the images named here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.core.project import Project
from harness.score.evaluation import per_image_means

WORST_IMAGES = 2
CROP = 96  # pixels of the output shown per image


def enrich(report: dict, proj: Project) -> dict:
    """Add per-team evidence and the leaderboards to a built report (in place); return it."""
    dataset = report["dataset"]
    for row in report["teams"]:
        row["evidence"] = team_evidence(proj, row, dataset)
    report["leaderboards"] = leaderboards(proj, report["teams"], dataset)
    return report


def team_evidence(proj: Project, row: dict, dataset: str) -> dict:
    evaluation_path = proj.evaluation_file(dataset, row["team"])
    if not evaluation_path.exists():
        return {}
    evaluation = json.loads(evaluation_path.read_text())
    runs = [r for r in evaluation.get("runs", []) if r.get("status") == "ok"]
    if not runs:
        return {}
    per_image = per_image_means(evaluation)
    out = {"per_image": per_image,
           "run_means": {r["run"]: r["mean"] for r in runs},
           "provenance": provenance(proj, row["team"], dataset, evaluation),
           "worst": worst_images(proj, row["team"], dataset, per_image, runs[0]["run"],
                                 evaluation.get("ground_truth", True))}
    return out


def provenance(proj: Project, team_id: str, dataset: str, evaluation: dict) -> dict:
    """The facts a reader needs to trust a run, from its record: where, with what, which bytes."""
    record_path = proj.team_runs(dataset, team_id) / "record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    first = (record.get("runs") or [{}])[0].get("provenance", {})
    container = first.get("container") or {}
    return {"runner": record.get("runner"), "device": record.get("device"), "torch": first.get("torch"),
            "cuda": first.get("cuda"), "gpu": first.get("gpu"), "seed": first.get("seed"),
            "determinism_flags": first.get("determinism_flags"), "image": container.get("image"),
            "image_id": container.get("image_id"), "slurm_job_id": record.get("slurm_job_id"),
            "manifest_hash": record.get("manifest_hash"), "source": record.get("source"),
            "outputs_digest": [r.get("outputs_digest") for r in evaluation.get("runs", [])],
            "evaluator": evaluation.get("evaluator"), "pyiqa": evaluation.get("pyiqa_version"),
            "metric_weights": len(evaluation.get("metric_weights") or {})}


def worst_images(proj: Project, team_id: str, dataset: str, per_image: dict, run: str,
                 ground_truth: bool) -> list[dict]:
    """The team's worst images (lowest PSNR, or lowest LR consistency without ground truth) and where in
    each the output differs most from the reference (ground truth, else the bicubic-enlarged input)."""
    by = "psnr" if ground_truth and "psnr" in per_image else "lr_consistency"
    values = {s: v for s, v in per_image.get(by, {}).items() if v is not None}
    chosen = sorted(values, key=lambda stem: values[stem])[:WORST_IMAGES]
    out = []
    for stem in chosen:
        paths = image_paths(proj, team_id, dataset, run, stem)
        if not paths["output"].exists():
            continue
        box, peak = crop_box(*crop_inputs(paths, ground_truth))
        out.append({"image": stem, "by": by, "value": values[stem], "crop": box, "max_abs_diff": peak,
                    "compared_with": "ground truth" if ground_truth else "bicubic-enlarged LR input"})
    return out


def image_paths(proj: Project, team_id: str, dataset: str, run: str, stem: str) -> dict[str, Path]:
    data = proj.data_dir / dataset
    return {"output": proj.team_runs(dataset, team_id) / run / f"{stem}x4.png", "truth": data / "HR" / f"{stem}.png",
            "lr": data / "LR" / f"{stem}x4.png"}


def crop_inputs(paths: dict[str, Path], ground_truth: bool) -> tuple[np.ndarray, np.ndarray]:
    """(output, reference) as HxWx3 uint8 of the same size."""
    from harness.imaging.matlab_resize import imresize
    from harness.imaging.pictures import read_rgb8

    output = read_rgb8(paths["output"])
    reference = read_rgb8(paths["truth"]) if ground_truth else imresize(read_rgb8(paths["lr"]), 4)
    height, width = min(output.shape[0], reference.shape[0]), min(output.shape[1], reference.shape[1])
    return output[:height, :width], reference[:height, :width]


def crop_box(output: np.ndarray, reference: np.ndarray) -> tuple[list[int], int]:
    """[top, left, height, width] of the CROP-pixel window with the largest total absolute difference."""
    import cv2

    diff = np.abs(output.astype(np.int16) - reference.astype(np.int16)).max(axis=2).astype(np.float32)
    size = min(CROP, diff.shape[0], diff.shape[1])
    window = cv2.boxFilter(diff, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    half = size // 2
    valid = window[half:diff.shape[0] - (size - half) + 1, half:diff.shape[1] - (size - half) + 1]
    top, left = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return [int(top), int(left), size, size], int(diff.max())


def leaderboards(proj: Project, rows: list[dict], dataset: str) -> list[dict]:
    """Each track of each challenge of the audited teams, ranked again with the reproduced values (teams
    of the challenge outside the audit, or without a reproduced value, keep their published value)."""
    from harness.catalogue import challenges, roster
    from harness.verdict import leaderboard, rank_sums

    teams, _ = roster.load_all(proj)
    by_id = {t.id: t for t in teams}
    boards = []
    for challenge_id in dict.fromkeys(by_id[r["team"]].data["challenge"] for r in rows if r["team"] in by_id):
        rules = challenges.get(challenge_id)
        by_track = {}
        for track in (t for t in rules.tracks if not t.rank_sum):  # a rank sum adds up these tracks' new ranks
            values = leaderboard.reproduced_values(rules, [r for r in rows if r["team"] in by_id], track)
            by_track[track.id] = leaderboard.reproduced(rules, teams, dataset, values, track)
        members = [t for t in teams if t.data["challenge"] == challenge_id]
        findings = rank_sums.bar_findings(rules, members)  # said once, with the challenge's first board
        for track in rules.tracks:
            board = rank_sums.rank_sum_board(rules, track, members, {k: v for k, v in by_track.items() if v}) \
                if track.rank_sum else by_track[track.id]
            if board:
                boards.append({**board, "findings": findings} if findings else board)
                findings = []
    return boards
