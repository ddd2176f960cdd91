"""The smoke test: each team's real code end to end on two small crops of real photographs, with stand-in
weights, through the ordinary inference path (runner, sandbox or image, adapter, output checks), before
any GPU hour is spent.

Stand-in weights are written and used by the same adapter process (no second start, no second import of
torch). Each team ends ok, failed (kind), skipped (why) or not runnable; its result is written to
.cache/smoke/<team>/result.json as soon as it ends, with the key of what it was made from (the run key,
the code checkout, the harness, the environment or image recipe, runner and device), so a rerun skips a
team whose key is unchanged and that passed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.adapter.protocol import OVERRIDE_VARIABLE
from harness.catalogue import datasets as data_mod
from harness.catalogue.manifests import Manifest
from harness.core.errors import HarnessError
from harness.core.files import write_json_atomic
from harness.core.progress import Progress, Step, silent
from harness.core.project import Project
from harness.core.settings import Settings
from harness.fetch import dataset_files, repositories
from harness.run import inference, runners
from harness.run.docker_images import tree_digest

# (mini LR image, top, left, height, width): a square a window-based network divides evenly, and a
# smaller non-square one that exercises its padding.
CROPS = (("0001x4.png", 16, 16, 32, 32), ("0004x4.png", 24, 8, 24, 16))
RESULT = "result.json"
# Sources of nondeterminism that two runs on a CPU can show (the others are a GPU's: kernels, fp16, cudnn)
SEEN_ON_A_CPU = {"unseeded-sampling", "random-self-ensemble"}
DEFAULT_TIMEOUT_S = 900


@dataclass
class SmokeResult:
    team: str
    status: str  # ok, failed, skipped, not_runnable
    reason: str | None = None
    kind: str | None = None  # the failure kind, when failed
    seconds: float | None = None
    stand_ins: list = field(default_factory=list)
    identical: bool | None = None  # two runs on the same stand-ins and crops gave byte-identical outputs
    determinism: str | None = None  # where that contradicts the manifest's determinism class: what was seen
    key: str | None = None
    cached: bool = False  # an earlier result with the same key

    def as_dict(self) -> dict:
        return asdict(self)


def smoke_inputs(proj: Project) -> Path:
    """Two small LR crops of real photographs (the mini dataset), the same for every team."""
    from harness.imaging.pictures import read_rgb8, write_rgb8

    folder = proj.root / ".cache" / "smoke" / "_inputs"
    stamp = folder.with_name("_inputs.json")  # beside, not inside: team code reads every file of its input
    if stamp.is_file() and json.loads(stamp.read_text()) == [list(c) for c in CROPS]:
        return folder
    mini = data_mod.get("mini")
    dataset_files.fetch(mini, proj.data_dir)
    source = mini.lr_dir(proj.data_dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, top, left, height, width in CROPS:
        write_rgb8(folder / name, read_rgb8(source / name)[top:top + height, left:left + width])
    write_json_atomic(stamp, [list(c) for c in CROPS])
    return folder


def skip_reason(team: Manifest, device: str) -> str | None:
    """Why a team cannot be smoke-tested on this device, from its manifest alone."""
    if device.startswith("cpu") and team.runtime.get("cuda_extensions"):
        return f"needs CUDA kernels ({', '.join(team.runtime['cuda_extensions'])}): needs a GPU"
    if device.split(":")[0] not in team.runtime.get("devices", ["cpu", "cuda"]):
        return f"runs on {', '.join(team.runtime['devices'])} only (runtime.devices)"
    undescribed = [w["name"] for w in team.weights if "network" not in w]
    if undescribed:
        return (f"no network described for {', '.join(undescribed)}, so no stand-in weights: "
                "add weights[].network to the manifest")
    return None


def key(proj: Project, team: Manifest, settings: Settings, checkout: Path | None) -> str:
    """What a smoke result was made from; a change to any of it makes the result stale."""
    recipe = (team.container or {}).get("recipe")
    parts = {"run_key": team.run_key, "runner": settings.runner, "device": settings.device,
             "harness": tree_digest(proj.root, ["harness"] + ([f"containers/{recipe}"] if recipe else [])),
             "checkout": repositories.head(checkout) if checkout else None, "crops": [list(c) for c in CROPS],
             "base_image": settings.docker.base_image}  # whatever the runner: a runner that builds no image reruns
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def earlier(proj: Project, team_id: str) -> SmokeResult | None:
    path = proj.smoke_dir(team_id) / RESULT
    try:
        return SmokeResult(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def smoke_team(proj: Project, team: Manifest, settings: Settings, progress: Progress | None = None,
               timeout_s: int = DEFAULT_TIMEOUT_S, memory_gb: float | None = None, rerun: bool = False) -> SmokeResult:
    """One team's smoke test (see the module's docstring); `timeout_s` caps each of its runs and
    `memory_gb` bounds its memory (container limit, or address space in the sandbox)."""
    progress = progress or silent
    if not team.runnable:
        return SmokeResult(team.id, "not_runnable", "; ".join(team.data["status"].get("reasons", [])))
    reason = skip_reason(team, settings.device)
    if reason:
        return SmokeResult(team.id, "skipped", reason)
    checkout = repositories.for_run(proj.code_cache, team)
    overridden = os.environ.get(OVERRIDE_VARIABLE)
    if team.entry.get("code_root") == "code" and checkout is None and not overridden:
        return SmokeResult(team.id, "failed", f"no checkout of {team.data['code']['repository']} at "
                           f"{team.data['code']['commit']}: run `harness fetch code {team.id}`", "code_unavailable")
    made_from = key(proj, team, settings, checkout)
    previous = earlier(proj, team.id)
    if not rerun and previous and previous.key == made_from and previous.status == "ok":
        previous.cached = True
        return previous
    folder = proj.smoke_dir(team.id)
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    try:
        result = _run(proj, team.limited(timeout_s=timeout_s, memory_gb=memory_gb), settings, progress, checkout,
                      folder)
    except HarnessError as exc:
        result = SmokeResult(team.id, "failed", exc.message, exc.kind)
    result.seconds, result.key = round(time.perf_counter() - started, 1), made_from
    write_json_atomic(folder / RESULT, result.as_dict())
    return result


def _run(proj: Project, team: Manifest, settings: Settings, progress: Progress, checkout: Path | None,
         folder: Path) -> SmokeResult:
    runner = runners.get(settings.runner, settings)
    lr_dir = smoke_inputs(proj)

    def update(run, runs, done, total, name):
        progress(Step(team.id, f"{team.id} smoke {name}", done, total))

    progress(Step(team.id, f"{team.id}: starting"))
    place = inference.RunPlace("smoke", lr_dir, folder / "weights", folder / "runs", proj.root, checkout)
    record = inference.infer_team(team, runner, place, settings.device, update, repeats=1, task="smoke")
    if record["status"] != "ok":
        failure = record["failure"]
        return SmokeResult(team.id, "failed", failure["message"], failure["kind"])
    provenance = record["runs"][0]["provenance"]
    repeat = provenance.get("repeat") or {}
    identical = repeat.get("identical")
    return SmokeResult(team.id, "ok", stand_ins=sorted(provenance.get("weights_sha256", {})), identical=identical,
                       determinism=disagreement(team, identical, repeat.get("differing", []), settings.device))


def disagreement(team: Manifest, identical: bool | None, differing: list[str], device: str) -> str | None:
    """What two runs showed that the manifest's determinism class denies (None: they agree, or were not made)."""
    declared = team.determinism["class"]
    if identical is False and declared == "deterministic":
        return (f"declared deterministic, but two runs on {device} differ ({', '.join(differing)}): "
                "set determinism.class nondeterministic with repeats, or find the unseeded source")
    sources = set(team.determinism.get("sources", []))
    if identical is True and declared == "nondeterministic" and (device.startswith("cuda") or sources & SEEN_ON_A_CPU):
        return (f"declared nondeterministic, but two runs on {device} gave the same bytes: cite the source that "
                "varies (determinism.sources; a GPU-only one is not seen here), or declare it deterministic")
    return None


def smoke_teams(proj: Project, teams: list[Manifest], settings: Settings, progress: Progress | None = None,
                jobs: int = 1, timeout_s: int = DEFAULT_TIMEOUT_S, rerun: bool = False,
                on_result=None) -> list[SmokeResult]:
    """Every team's smoke test, `jobs` at a time, each bounded to its share of the machine's memory and
    cores; `on_result(result)` as each one ends. Results come back in the teams' order."""
    share = memory_share(jobs)
    if any(t.runnable for t in teams):
        smoke_inputs(proj)  # made once, before teams run side by side
    if jobs > 1:
        cores = len(os.sched_getaffinity(0))
        settings = dataclasses.replace(settings,
                                       local=dataclasses.replace(settings.local, threads=max(1, cores // jobs)),
                                       docker=dataclasses.replace(settings.docker, cpus=max(1.0, cores / jobs)))

    def one(team: Manifest):
        result = smoke_team(proj, team, settings, progress, timeout_s, share, rerun)
        if on_result:
            on_result(result)
        return result

    if jobs <= 1:
        return [one(team) for team in teams]
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(one, teams))


def memory_share(jobs: int) -> float | None:
    """Each of `jobs` parallel teams gets this many GiB at most (80 % of the machine's memory, shared)."""
    if jobs <= 1:
        return None
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return round(0.8 * total / jobs, 1)
