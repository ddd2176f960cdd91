"""What checking one team's numbers needs, said before anything is downloaded: the dataset, the code, each
weights file with its source (and the manual route where the harness cannot download), where the team
runs (sandbox or engine, device), the metric weights, disk and the time to expect. Each item is a
doctor Finding; a `missing` one blocks the run.
"""

from __future__ import annotations

import shutil

from harness.audit import doctor
from harness.catalogue import challenges
from harness.catalogue import datasets as data_mod
from harness.catalogue.datasets import Dataset
from harness.catalogue.manifests import Manifest
from harness.core.errors import HarnessError
from harness.core.findings import GIB, Finding
from harness.core.project import Project
from harness.core.settings import Settings
from harness.fetch import repositories
from harness.fetch import team_weights as weights_mod
from harness.run import runners
from harness.run.inference import load_record, load_session


def default_dataset(team: Manifest) -> str:
    """The dataset a team is checked on unless one is named: its challenge's test set."""
    return challenges.get(team.data["challenge"]).test_dataset


def make(proj: Project, team: Manifest, dataset: Dataset, settings: Settings,
         from_outputs: str | None = None) -> list[Finding]:
    """What checking the team on the dataset with these settings needs, piece by piece."""
    findings = [_team(team, dataset.id)]
    for finding in doctor.dataset(proj, settings.given(dataset=dataset.id)):
        if finding.blocking and team.published(data_mod.MODEL) and from_outputs is None:
            finding = Finding(finding.check, "warning", finding.detail + "; without it, the values of the model "
                              "alone are checked (published.model, on the mini photographs)", finding.fix)
        findings.append(finding)
    if from_outputs is not None:
        findings.append(_outputs(team, dataset.id, from_outputs))
    elif team.runnable:
        findings += _code(proj, team) + _weights(proj, team) + _where(team, settings)
    published = team.published(dataset.id)
    names = list(published["values"]) if published else list(settings.metrics)
    findings += _metric_weights(proj, settings, names)
    findings.append(_disk(proj, team, dataset.id, from_outputs is None))
    findings.append(_time(proj, team, dataset, from_outputs is None))
    findings.append(_scoring_time(proj, dataset, settings, names))
    return findings


def _metric_weights(proj: Project, settings: Settings, names: list[str]) -> list[Finding]:
    """The metrics to compute in two rows: those that can be, and those whose weights are absent; a stand-in
    cache blocks the check (its numbers are never compared with published ones)."""
    from harness.fetch.stand_ins import MARKER, is_stand_in

    if is_stand_in(proj.metric_cache):
        return [Finding("metric weights", "missing", f"{proj.metric_cache} holds stand-in weights ({MARKER}): "
                        "what they score is never compared with published numbers",
                        "fetch the real weights into a cache of their own: harness fetch metric-weights")]
    rows = doctor.metric_weights(proj, settings.given(metrics=names))
    ready = [r.check.split()[-1] for r in rows if r.status == "ok"]
    absent = [r.check.split()[-1] for r in rows if r.status != "ok"]
    out = [Finding("metrics", "ok", ", ".join(ready))] if ready else []
    if absent:
        out.append(Finding("metric weights", "warning", f"absent for {', '.join(absent)}: those are reported as "
                           "unavailable, never as 0", f"harness fetch metric-weights {' '.join(absent)}"))
    return out


def _team(team: Manifest, dataset: str) -> Finding:
    published = team.published(dataset)
    if not team.runnable:
        return Finding(f"team {team.id}", "warning", "not runnable as published: "
                       + "; ".join(team.data["status"].get("reasons", [])), "its verdict will say so")
    if not published:
        others = ", ".join(team.data.get("published", {})) or "none"
        return Finding(f"team {team.id}", "warning", f"publishes no numbers for '{dataset}' (it does for: {others})",
                       f"harness verify {team.id} --dataset DATASET")
    return Finding(f"team {team.id}", "ok", f"{len(published['values'])} published value(s) on '{dataset}' "
                   f"({published['source']['kind']})")


def _outputs(team: Manifest, dataset: str, source: str) -> Finding:
    from harness.run.published_outputs import default_source

    given = source or default_source(team, dataset)
    if not given:
        return Finding("published outputs", "missing", f"{team.id} declares no published outputs for '{dataset}'",
                       "pass a folder, archive, URL or gdrive:<id> to --from-outputs")
    return Finding("published outputs", "to fetch", f"from {given}", None)


def _code(proj: Project, team: Manifest) -> list[Finding]:
    if team.entry.get("code_root") != "code":
        return []
    repository, commit = team.data["code"]["repository"], team.data["code"]["commit"]
    checkout = repositories.present(proj.code_cache, team)
    if checkout:
        return [Finding("code", "ok", f"{repository} at {commit} ({checkout.relative_to(proj.root)})")]
    mirror = repositories.source(repository)
    return [Finding("code", "to fetch", f"{repository} at {commit}" + (f" (from {mirror})" if mirror != repository
                                                                      else ""), f"harness fetch code {team.id}")]


def _weights(proj: Project, team: Manifest) -> list[Finding]:
    absent = set(weights_mod.missing(team, proj.weights_dir))
    out = []
    for spec in team.weights:
        source = spec["source"]
        label = f"weights {spec['name']}"
        if spec["name"] not in absent:
            out.append(Finding(label, "ok", f"in {proj.team_weights(team.id).relative_to(proj.root)}/"))
        elif source["kind"] == "manual":
            out.append(Finding(label, "missing", f"only on {source['host']}: {source['url']}"
                               + (f" (code {source['password']})" if source.get("password") else "")
                               + (f", {source['path']}" if source.get("path") else ""),
                               f"download it by hand, then harness weights import {team.id} PATH"))
        elif source["kind"] == "gdrive":
            what = f"Google Drive {'folder' if source.get('folder') else 'file'} {source['id']}" + \
                   (f", {source['path']}" if source.get("path") else "")
            mirror = f"; by hand: {source['mirror']}, then harness weights import {team.id} PATH" \
                if source.get("mirror") else ""
            out.append(Finding(label, "to fetch", what + (f" ({spec['size'] / 2 ** 20:.0f} MiB)"
                                                          if spec.get("size") else ""),
                               f"harness fetch weights {team.id}{mirror}"))
        elif source["kind"] == "code":
            out.append(Finding(label, "to fetch", f"{source['path']} in the team's code at "
                               f"{team.data['code']['commit']}", f"harness fetch weights {team.id}"))
        elif source["kind"] == "local":
            out.append(Finding(label, "missing", f"the local file {source['path']} is not in place",
                               f"place it at {source['path']}"))
        else:
            out.append(Finding(label, "to fetch", f"{source['kind']}: {source.get('url') or source.get('package')}",
                               f"harness fetch weights {team.id}"))
    return out


def _where(team: Manifest, settings: Settings) -> list[Finding]:
    """The device the team needs, asked of the machine, and what the runner needs (its own check)."""
    out = []
    devices = team.runtime.get("devices", ["cpu", "cuda"])
    kind = settings.device.split(":")[0]
    if kind not in devices:
        out.append(Finding("device", "missing",
                           f"{team.id} runs on {', '.join(devices)} only; asked: {settings.device}",
                           f"harness verify {team.id} --device {devices[0]}"))
    elif kind == "cpu" and team.runtime.get("cuda_extensions"):
        out.append(Finding("device", "missing", f"needs CUDA kernels ({', '.join(team.runtime['cuda_extensions'])})",
                           f"run on a GPU: harness verify {team.id} --device cuda"))
    elif refusal := doctor.device_refusal(settings, team):
        out.append(Finding("device", "missing", refusal.detail, f"harness verify {team.id} --device cpu"
                           if "cpu" in devices else refusal.fix))
    else:
        memory = team.runtime.get("gpu_memory_gb")
        out.append(Finding("device", "ok", settings.device + (f"; the team needs ≈{memory} GB of GPU memory"
                                                             if memory and kind == "cuda" else "")))
    return out + runners.check(settings, [team])


def _disk(proj: Project, team: Manifest, dataset: str, runs: bool) -> Finding:
    need = sum(w.get("size") or 0 for w in team.weights if w["name"] in weights_mod.missing(team, proj.weights_dir)) \
        if runs else 0
    unknown = runs and any(not w.get("size") for w in team.weights
                           if w["name"] in weights_mod.missing(team, proj.weights_dir))
    free = shutil.disk_usage(proj.root).free
    detail = f"{free / GIB:.1f} GiB free; weights to fetch: {need / GIB:.2f} GiB" + (" and files of unknown size"
                                                                                     if unknown else "")
    return Finding("disk", "ok" if free > need else "missing", detail, None if free > need else "free disk space")


def _time(proj: Project, team: Manifest, dataset: Dataset, runs: bool) -> Finding:
    """From the team's own earlier run on this dataset, when there is one; else it says it cannot know."""
    try:
        images = len(dataset.stems) or None
    except HarnessError:
        images = None
    if not runs:
        return Finding("time", "ok", f"scoring only: {images or '?'} image(s); see the README for per-image costs")
    record = load_record(proj.runs_dir, dataset.id, team.id)
    if record and record.ok and record.run_key == team.run_key:
        took = load_session(proj.runs_dir, dataset.id, team.id).get("wall_s")
        return Finding("time", "ok", "an earlier run of this manifest " + (f"took {took:.0f} s " if took else "")
                       + f"({team.repeats} run(s)); it is reused unless --rerun")
    return Finding("time", "unknown", f"{images or '?'} image(s) × {team.repeats} run(s); inference time is "
                   "measured at the first run (none here yet)", f"harness smoke {team.id} checks the code in minutes")


def _scoring_time(proj: Project, dataset: Dataset, settings: Settings, names: list[str]) -> Finding:
    """The scoring's cost from the measured per-metric costs and the ground truth's sizes (the outputs have
    the same), on a CPU; on a GPU nothing was measured, and it says so."""
    from harness.imaging.input_policy import image_facts
    from harness.score import backends
    from harness.score.per_image import scoring_cpu_seconds, torch_threads

    groups = backends.grouped(names, "image")
    truth = dataset.hr_dir(proj.data_dir)
    sizes = [image_facts(p) for p in sorted(truth.glob("*.png"))] if truth.is_dir() else []
    if not sizes:
        return Finding("scoring time", "unknown", f"the ground truth of {dataset} is not here: its image sizes are "
                       "unknown", "the README gives the cost per metric of a 2K image")
    megapixels = sum((f.width or 0) * (f.height or 0) for f in sizes) / 1e6
    if not settings.device.startswith("cpu"):
        return Finding("scoring time", "unknown", f"{len(sizes)} images, {megapixels:.0f} megapixels on "
                       f"{settings.device}: the metrics' costs were measured on a CPU only",
                       "make gpu-check measures them on a GPU")
    cpu = scoring_cpu_seconds(groups, megapixels, len(sizes))
    threads = torch_threads(any(backend.uses_torch for backend, _ in groups), settings.device.split(":")[0])
    if threads:
        parallel, how = threads, f"one process of {threads} torch threads"
    else:
        parallel = max(1, settings.workers)
        how = f"{parallel} worker(s)"
    return Finding("scoring time", "ok", f"≈{_duration(cpu / parallel)} for {len(sizes)} images ({megapixels:.0f} "
                   f"megapixels) with {how} on this CPU; ≈{_duration(cpu)} of one core "
                   f"(measured costs of {', '.join(n for _, group in groups for n in group)})")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 \
        else f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.blocking]
