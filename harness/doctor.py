"""Before a long audit: everything the selected params.yaml needs, checked in seconds, nothing downloaded.

Each check is a finding {name, status, detail, fix}; `blocking` findings mean the audit cannot run as
configured. Statuses: ok, to fetch (the pipeline will fetch it), warning (the audit runs, with less),
missing (blocking), unknown (cannot be told here).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from .errors import HarnessError
from .project import Project
from .settings import Settings

if TYPE_CHECKING:  # annotations only: no import at run time
    from .manifest import Manifest

# The packages whose versions decide the numbers, pinned in requirements.lock.
PINNED = ("torch", "torchvision", "pyiqa", "spandrel", "numpy", "opencv-python", "dvc", "docker", "gdown")
GIB = 2 ** 30


@dataclass
class Finding:
    check: str
    status: str  # ok, to fetch, warning, missing, unknown
    detail: str
    fix: str | None = None

    @property
    def blocking(self) -> bool:
        return self.status == "missing"

    def as_dict(self) -> dict:
        return {**asdict(self), "blocking": self.blocking}


def examine(proj: Project, settings: Settings) -> list[Finding]:
    """Every check the settings call for, in the order a person would fix them."""
    from . import registry

    findings = packages(proj)
    teams, problems = [], []
    for team_id in settings.teams:
        try:
            teams.append(registry.load(proj, team_id))
        except HarnessError as exc:
            problems.append(Finding(f"manifest {team_id}", "missing", exc.message, exc.hint or "harness validate"))
    findings += problems
    findings += engines(settings)
    findings += local_runner(settings, teams)
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


def engines(settings: Settings) -> list[Finding]:
    from . import images

    runner, evaluator = settings.runner, settings.evaluator
    out = []
    if runner in ("docker", "auto") or evaluator == "docker":
        try:
            client = images.engine()
            out.append(Finding("docker engine", "ok", images.engine_description(client)))
            if settings.device.startswith("cuda"):
                runtimes = client.info().get("Runtimes") or {}
                out.append(Finding("nvidia container runtime", "ok", "registered with the engine")
                           if "nvidia" in runtimes else Finding("nvidia container runtime", "missing",
                                        f"the engine knows the runtimes {', '.join(runtimes) or 'none'}",
                                        "install the NVIDIA Container Toolkit and restart dockerd"))
            client.close()
        except HarnessError as exc:
            blocking = runner == "docker" or evaluator == "docker"
            out.append(Finding("docker engine", "missing" if blocking else "warning",
                               exc.message + ("" if blocking else "; runner auto falls back to local"), exc.hint))
    if runner == "podman":
        podman = shutil.which("podman")
        out.append(Finding("podman", "ok", podman) if podman
                   else Finding("podman", "missing", "podman is not installed", "apt-get install podman"))
    return out


def local_runner(settings: Settings, teams: list) -> list[Finding]:
    """Where teams run on this machine: the sandbox, and each team's family environment."""
    from . import envs, sandbox

    if settings.runner not in ("local", "auto"):
        return []
    out = []
    untrusted = [t.id for t in teams if t.runnable and not sandbox.trusted(t)]
    problem = sandbox.problem()
    if problem is None:
        out.append(Finding("sandbox", "ok", f"{sandbox.version()}: no network, read-only files, own PID namespace"))
    else:
        out.append(Finding("sandbox", "missing" if untrusted and settings.runner == "local" else "warning",
                           f"{problem}; " + (f"refused locally: {', '.join(untrusted)}" if untrusted else
                                             "the teams here run only the harness's own code"),
                           "apt-get install bubblewrap, or use runner: docker"))
    for team in teams:
        if not team.runnable or settings.source == "outputs":
            continue
        family, name = envs.planned(team)
        if name is None:
            out.append(Finding(f"{team.id}: environment", "ok", "the harness's own (" +
                               (f"family {family.name} is its lock)" if family else "no recipe family)")))
        elif envs.built(name):
            out.append(Finding(f"{team.id}: environment", "ok", f"{name}, built"))
        else:
            out.append(Finding(f"{team.id}: environment", "to fetch", f"{name} is built on first use from "
                               f"containers/{family.name if family else '?'}/ (packages from PyPI)",
                               f"harness smoke {team.id}"))
    return out


def gpus(settings: Settings) -> list[Finding]:
    if not settings.device.startswith("cuda"):
        return [Finding("device", "ok", f"{settings.device}: no GPU needed")]
    import torch

    if not torch.cuda.is_available():
        return [Finding("GPU", "missing",
                        f"device {settings.device} but torch {torch.__version__} sees no CUDA device",
                        "run on a machine with an NVIDIA GPU and driver, or set device: cpu")]
    names = [f"{torch.cuda.get_device_name(i)} (sm_{''.join(map(str, torch.cuda.get_device_capability(i)))})"
             for i in range(torch.cuda.device_count())]
    return [Finding("GPU", "ok", ", ".join(names)),
            Finding("team images serve this GPU", "unknown", "checked inside each image when it runs "
                    "(incompatible_gpu)", "run `harness smoke --runner docker --device cuda` first")]


def dataset(proj: Project, settings: Settings) -> list[Finding]:
    from . import data

    name = settings.dataset
    try:
        spec = data.get(name)
    except HarnessError as exc:
        return [Finding(f"dataset {name}", "missing", exc.message, exc.hint)]
    try:
        data.verify(name, proj.data_dir)
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
    from . import code, weights

    if not team.runnable or settings.source == "outputs":
        return []
    out = []
    if "code" in team.data and team.entry.get("code_root") == "code":
        checkout = code.present(proj.code_cache, team)
        out.append(Finding(f"{team.id}: code", "ok", str(checkout.relative_to(proj.root))) if checkout
                   else Finding(f"{team.id}: code", "to fetch", f"{team.data['code']['repository']} at "
                                f"{team.data['code']['commit']} is not fetched", f"harness fetch code {team.id}"))
    absent = weights.missing(team, proj.weights_dir)
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
    from . import metrics, scoring

    out = []
    for name in metrics.computed_metrics(list(settings.metrics)):
        missing = scoring.missing_weight_files(name, proj.metric_cache) if metrics.METRICS[name].weight_files else []
        out.append(Finding(f"metric {name}", "ok", "weights in the cache" if metrics.METRICS[name].weight_files
                           else "built in") if not missing else
                   Finding(f"metric {name}", "warning", f"weights absent ({', '.join(missing)}): reported as "
                           "unavailable", f"harness fetch metric-weights {name}"))
    return out


def disk(proj: Project, teams: list) -> Finding:
    from . import weights

    known = unknown = 0
    for team in teams:
        for weight in team.weights:
            if weight["name"] in weights.missing(team, proj.weights_dir):
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
    have, a sandbox it cannot make for teams that need one. The pipeline's first stage refuses these, so
    that no output is replaced by a run that was doomed from the start."""
    from . import devices, registry, sandbox

    out = []
    problem = devices.unavailable(settings.device, settings.runner) if settings.source == "inference" else None
    if problem:
        out.append(Finding("device", "missing", problem, "set device: cpu, or run on a machine with an NVIDIA GPU"))
    if settings.runner == "local" and settings.source == "inference" and not settings.unsafe_no_sandbox:
        missing = sandbox.problem()
        needing = [t for t in settings.teams if missing and _needs_sandbox(registry.load(proj, t))]
        if needing:
            out.append(Finding("sandbox", "missing", f"{missing}; these teams would be refused: {', '.join(needing)}",
                               "make sandbox (apt-get install bubblewrap), or runner: docker"))
    return out


def _needs_sandbox(team: Manifest) -> bool:
    from . import sandbox

    return team.runnable and not sandbox.trusted(team)
