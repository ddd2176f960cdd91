"""Small verdict inputs built from dicts (no images, no runs): a team, its published numbers, a run's
evaluation."""

from pathlib import Path

from harness.catalogue.manifests import Manifest
from harness.core.records import TeamEvaluation


def team(runnable=True, determinism="deterministic", repeats=1, published=None, reasons=None) -> Manifest:
    data = {"id": "t", "name": "Team T", "challenge": "mini",
            "determinism": {"class": determinism, "repeats": repeats},
            "status": {"runnable": runnable, **({"reasons": reasons} if reasons else {})},
            "published": {"mini": published} if published else {}}
    return Manifest(Path("teams/t/manifest.yaml"), data, b"")


def published(values, precision=None, tolerance=None, digest=None) -> dict:
    entry = {"values": values, "precision": precision or {k: 2 for k in values}}
    if tolerance:
        entry["tolerance"] = tolerance
    if digest:
        entry["outputs_digest"] = digest
    return entry


def run(name="run-1", digest="d1", unavailable=None, per_image=None, status="ok", **means) -> dict:
    return {"run": name, "status": status, "mean": means, "unavailable": unavailable or {}, "findings": [],
            "per_image": per_image or {"0001": means}, "outputs_digest": digest, "failed_images": {}}


def evaluation(*runs, inference=None) -> TeamEvaluation:
    return TeamEvaluation(team="t", dataset="mini", mode="faithful", metrics=[], run_key="", harness_version="0",
                          pyiqa_version=None, metric_weights={}, runs=list(runs), evaluator={"runner": "local"},
                          inference=inference or {"status": "ok", "failure": None, "runner": "local", "device": "cpu"})
