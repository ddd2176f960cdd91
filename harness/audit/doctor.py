"""Before a long audit: everything the selected params.yaml needs, checked in seconds, nothing downloaded.

Each check is a finding {name, status, detail, fix}; `blocking` findings mean the audit cannot run as
configured. Statuses: ok, to fetch (the pipeline will fetch it), warning (the audit runs, with less),
missing (blocking), unknown (cannot be told here).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from harness.core.errors import HarnessError
from harness.core.findings import GIB, Finding
from harness.core.project import Project
from harness.core.settings import Settings
from harness.fetch import dataset_files

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

# The packages whose versions decide the numbers, pinned in requirements.lock.
PINNED = ("torch", "torchvision", "pyiqa", "spandrel", "numpy", "opencv-python", "dvc", "docker", "gdown")


def examine(proj: Project, settings: Settings) -> list[Finding]:
    """Every check the settings call for, in the order a person would fix them."""
    from harness.catalogue import roster
    from harness.run import runners

    findings = packages(proj)
    teams, problems = [], []
    for team_id in settings.teams:
        try:
            teams.append(roster.load(proj, team_id))
        except HarnessError as exc:
            problems.append(Finding(f"manifest {team_id}", "missing", exc.message, exc.hint or "harness validate"))
    findings += problems
    own = runners.check(settings, teams)  # the runner's own pre-flight
    findings += own + evaluator_engine(settings, already=own)
    findings += gpus(settings)
    findings += dataset(proj, settings)
    findings += [f for team in teams for f in team_inputs(proj, team, settings)]
    findings += metric_weights(proj, settings)
    findings.append(disk(proj, teams))
    if settings.executor == "slurm":
        findings += slurm(settings)
    return findings


def packages(proj: Project) -> list[Finding]:
    lock = proj.root / "requirements.lock"
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", lock.read_text(), re.M)) if lock.exists() else {}
    out = []
    for name in PINNED:
        try:
            installed = version(name)
        except PackageNotFoundError:
            out.append(Finding(f"python package {name}", "missing", "not installed", "make setup"))
            continue
        pinned = pins.get(name)
        if pinned and installed != pinned:
            out.append(Finding(f"python package {name}", "warning", f"{installed}, the lock pins {pinned}: "
                               "numbers may differ from the reference", "make setup"))
        else:
            out.append(Finding(f"python package {name}", "ok", installed))
    return out


def evaluator_engine(settings: Settings, already: list[Finding]) -> list[Finding]:
    """The evaluator image needs an engine; not checked twice where the runner's own check did."""
    from harness.run import docker_images

    if settings.evaluator != "docker" or any(f.check == docker_images.ENGINE_CHECK for f in already):
        return []
    try:
        client = docker_images.engine()
    except HarnessError as exc:
        return [Finding(docker_images.ENGINE_CHECK, "missing", exc.message, exc.hint)]
    described = docker_images.engine_description(client)
    client.close()
    return [Finding(docker_images.ENGINE_CHECK, "ok", described)]


def gpus(settings: Settings) -> list[Finding]:
    if not settings.device.startswith("cuda"):
        return [Finding("device", "ok", f"{settings.device}: no GPU needed")]
    import torch

    if not torch.cuda.is_available():
        return [Finding("GPU", "missing",
                        f"no_gpu: device {settings.device} asked, but torch {torch.__version__} sees no CUDA device "
                        "on this machine", "run on a machine with an NVIDIA GPU and driver, or set device: cpu",
                        failure="no_gpu")]
    names = [f"{torch.cuda.get_device_name(i)} (sm_{''.join(map(str, torch.cuda.get_device_capability(i)))})"
             for i in range(torch.cuda.device_count())]
    return [Finding("GPU", "ok", ", ".join(names)),
            Finding("team images serve this GPU", "unknown", "checked inside each image when it runs "
                    "(incompatible_gpu)", "run `harness smoke --runner docker --device cuda` first")]


def dataset(proj: Project, settings: Settings) -> list[Finding]:
    from harness.catalogue import datasets

    name = settings.dataset
    try:
        spec = datasets.get(name)
    except HarnessError as exc:
        return [Finding(f"dataset {name}", "missing", exc.message, exc.hint)]
    try:
        dataset_files.check_checksums(spec, proj.data_dir)
    except HarnessError as exc:
        fetchable = spec.build is not None or spec.archives
        origin = "" if fetchable or not spec.hr_origin else f"; {spec.title}: {spec.hr_origin}"
        return [Finding(f"dataset {name}", "to fetch" if fetchable else "missing", exc.message + origin,
                        f"harness fetch data {name}" if fetchable
                        else f"harness data import {name} --lr PATH --hr PATH")]
    if not any(spec.hr_dir(proj.data_dir).glob("*.png")):
        return [Finding(f"dataset {name}", "warning", "LR only: no ground truth, so no full-reference metric",
                        f"harness data import {name} --hr PATH")]
    return [Finding(f"dataset {name}", "ok", "present, checksums verified")]


def team_inputs(proj: Project, team: Manifest, settings: Settings) -> list[Finding]:
    from harness.fetch import repositories, team_weights

    if not team.runnable or settings.source == "outputs":
        return []
    out = []
    if "code" in team.data and team.entry.get("code_root") == "code":
        checkout = repositories.present(proj.code_cache, team)
        out.append(Finding(f"{team.id}: code", "ok", str(checkout.relative_to(proj.root))) if checkout
                   else Finding(f"{team.id}: code", "to fetch", f"{team.data['code']['repository']} at "
                                f"{team.data['code']['commit']} is not fetched", f"harness fetch code {team.id}"))
    absent = team_weights.missing(team, proj.weights_dir)
    by_hand = [w["name"] for w in team.weights if w["name"] in absent and w["source"].get("folder")]
    if by_hand:
        out.append(Finding(f"{team.id}: weights", "missing", f"Google Drive folder(s) not in place: "
                           f"{', '.join(by_hand)}", f"download them by hand into weights/{team.id}/"))
    elif absent:
        out.append(Finding(f"{team.id}: weights", "to fetch", ", ".join(absent), f"harness fetch weights {team.id}"))
    elif team.weights:
        out.append(Finding(f"{team.id}: weights", "ok", f"{len(team.weights)} in place"))
    return out


def metric_weights(proj: Project, settings: Settings) -> list[Finding]:
    from harness.catalogue import metrics
    from harness.score import formulas

    out = []
    for name in metrics.computed_metrics(list(settings.metrics)):
        missing = formulas.missing_weight_files(name, proj.metric_cache) if metrics.METRICS[name].weight_files else []
        out.append(Finding(f"metric {name}", "ok", "weights in the cache" if metrics.METRICS[name].weight_files
                           else "built in") if not missing else
                   Finding(f"metric {name}", "warning", f"weights absent ({', '.join(missing)}): reported as "
                           "unavailable", f"harness fetch metric-weights {name}"))
    return out


def disk(proj: Project, teams: list) -> Finding:
    from harness.fetch import team_weights

    known = unknown = 0
    for team in teams:
        for weight in team.weights:
            if weight["name"] in team_weights.missing(team, proj.weights_dir):
                if weight.get("size"):
                    known += weight["size"]
                else:
                    unknown += 1
    free = shutil.disk_usage(proj.root).free
    detail = f"{free / GIB:.1f} GiB free; weights still to fetch: {known / GIB:.2f} GiB known" + \
             (f", {unknown} file(s) of unknown size" if unknown else "")
    return Finding("disk", "ok" if free > known else "missing", detail,
                   None if free > known else "free disk space, or move the project")


def slurm(settings: Settings) -> list[Finding]:
    if not shutil.which("sinfo"):
        return [Finding("slurm", "missing", "the Slurm commands are not installed here", "install slurm-client")]
    partition = settings.slurm.partition
    command = ["sinfo", "-h", "-o", "%P"] + (["-p", partition] if partition else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return [Finding("slurm", "missing", "sinfo did not answer in 10 s", "check slurmctld")]
    if done.returncode != 0:
        return [Finding("slurm", "missing", f"sinfo failed: {done.stderr.strip()[:200]}",
                        "check that slurmctld answers (SLURM_CONF)")]
    if partition and not done.stdout.strip():
        return [Finding("slurm partition", "missing", f"no partition '{partition}'", "fix slurm.partition")]
    return [Finding("slurm", "ok", f"partitions: {', '.join(done.stdout.split())}")]


def machine_refusals(proj: Project, settings: Settings) -> list[Finding]:
    """What this machine cannot do that params.yaml asks of it before any team runs: a device it does not
    have, what the runner needs and cannot get here (a sandbox, an engine, the NVIDIA runtime). The
    pipeline's first stage refuses these, so that no output is replaced by a run doomed from the start."""
    from harness.catalogue import roster
    from harness.run import runners

    if settings.source != "inference":
        return []
    teams = [roster.load(proj, t) for t in settings.teams]
    return [f for f in gpus(settings) + runners.check(settings, teams) if f.blocking]


def device_refusal(settings: Settings, team: Manifest) -> Finding | None:
    """The device asked for is not here for this team's run (no GPU, no NVIDIA runtime): said before any
    environment starts, so that no CPU run ever stands in for it."""
    from harness.run import runners

    if not settings.device.startswith("cuda"):
        return None
    found = gpus(settings) + runners.check(settings, [team])
    return next((f for f in found if f.blocking and f.failure == "no_gpu"), None)
