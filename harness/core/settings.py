"""The audit's settings (params.yaml) as one frozen, typed object: every default in one place, below the
executors and runners.

Settings are layered: these defaults, then params.yaml (`load`, every value checked), then a command's
options (`Settings.given`) and the environment's opt-in to run without a sandbox. Commands build them once
and pass them down whole.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.core import registries
from harness.core.errors import HarnessError

PARAMS_FILE = "params.yaml"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # harness/, above this wing
# schemas/ and challenges/ of the checkout the package runs from (a clone, an image's /opt/harness), else
# the copies an installed wheel carries inside the package.
SCHEMAS_DIR, CHALLENGES_DIR = (next((d for d in (PACKAGE_DIR.parent / name, PACKAGE_DIR / name) if d.is_dir()),
                                    PACKAGE_DIR.parent / name) for name in ("schemas", "challenges"))
if os.environ.get("HARNESS_CHALLENGES_DIR"):  # a folder of challenge files of one's own
    CHALLENGES_DIR = Path(os.environ["HARNESS_CHALLENGES_DIR"])


UNSAFE_VARIABLE = "HARNESS_UNSAFE_NO_SANDBOX"


def unsafe_requested() -> bool:
    """HARNESS_UNSAFE_NO_SANDBOX=1: the environment's form of --unsafe-no-sandbox."""
    return os.environ.get(UNSAFE_VARIABLE, "") not in ("", "0")


@dataclass(frozen=True)
class DockerSettings:
    """The docker runner and the evaluator image (params.yaml's docker:)."""

    gpus: str | int = "all"
    memory_gb: float = 16
    cpus: float = 4
    pids: int = 4096
    shm_gb: float = 2
    scratch_gb: float = 4
    base_image: str | None = None
    build_network: str = "host"


@dataclass(frozen=True)
class LocalSettings:
    """The local runner: an address-space bound on a CPU (runtime.memory_gb wins), the private /tmp, threads."""

    memory_gb: float = 16
    scratch_gb: float = 4
    threads: int | None = None


@dataclass(frozen=True)
class SlurmSettings:
    """The slurm executor (params.yaml's slurm:)."""

    partition: str | None = None
    account: str | None = None
    cpus_per_task: int = 2
    mem_gb: float = 8
    gpus_per_job: int = 0
    time_limit_min: int | None = None
    array_parallelism: int = 64
    poll_s: float = 5


SECTIONS = {"docker": DockerSettings, "local": LocalSettings, "slurm": SlurmSettings}


@dataclass(frozen=True)
class Settings:
    """Every setting of a command, built once: params.yaml over these defaults, the command's options over
    that (`given`), and the environment's opt-ins. Frozen: what a stage was started with is what it ran with."""

    dataset: str = "mini"
    teams: tuple[str, ...] = ()
    runner: str = "local"
    device: str = "cpu"
    metrics: tuple[str, ...] = ("psnr", "ssim", "niqe")
    mode: str = "faithful"
    source: str = "inference"
    outputs: str | None = None
    evaluator: str = "local"
    eval_workers: int | str = "auto"
    max_image_megapixels: float = 50
    docker: DockerSettings = field(default_factory=DockerSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    executor: str = "local"
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    # never from params.yaml: the explicit opt-in (--unsafe-no-sandbox, HARNESS_UNSAFE_NO_SANDBOX=1)
    unsafe_no_sandbox: bool = field(default_factory=unsafe_requested, compare=False)

    @classmethod
    def from_params(cls, merged: dict[str, Any]) -> Settings:
        """Checked params.yaml values (names as in DEFAULT_PARAMS) as settings."""
        values = {**merged, "teams": tuple(merged["teams"]), "metrics": tuple(merged["metrics"])}
        values.update({name: kind(**merged[name]) for name, kind in SECTIONS.items()})
        return cls(**values)

    def given(self, **options: Any) -> Settings:
        """These settings with a command's options over them; an option given as None is not given.
        `gpus` is docker's; `unsafe_no_sandbox` can only be switched on."""
        chosen = {k: v for k, v in options.items() if v is not None}
        gpus = chosen.pop("gpus", None)
        changes: dict[str, Any] = {k: tuple(v) if k in ("teams", "metrics") else v for k, v in chosen.items()}
        if gpus is not None:
            changes["docker"] = replace(self.docker, gpus=gpus)
        if "device" in changes:
            valid_device(changes["device"], "device")
        changes["unsafe_no_sandbox"] = self.unsafe_no_sandbox or bool(chosen.get("unsafe_no_sandbox"))
        return replace(self, **changes)

    @property
    def workers(self) -> int:
        """Processes that score images: eval_workers, or with 'auto' every core on a CPU and one on a GPU."""
        if self.device.startswith("cuda"):
            return 1
        if self.eval_workers == "auto":
            return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return int(self.eval_workers)

    def as_params(self) -> dict[str, Any]:
        """The settings as params.yaml names them (what the report records)."""
        values = asdict(self)
        values.pop("unsafe_no_sandbox")
        return {**values, "teams": list(self.teams), "metrics": list(self.metrics)}


# The defaults as params.yaml spells them, from the classes above (one source for each default).
DEFAULT_PARAMS: dict[str, Any] = Settings().as_params()
EXECUTORS = ("local", "slurm")
EVALUATORS = ("local", "docker")
SOURCES = ("inference", "outputs")
MODES = ("faithful", "strict")
# and runner: harness.core.registries.RUNNERS, the registry
CHOICES = {"executor": EXECUTORS, "evaluator": EVALUATORS, "source": SOURCES, "mode": MODES}
def load(path: Path) -> Settings:
    """params.yaml over the defaults; unknown names and values outside their choices are refused."""
    import yaml

    from harness.core import safe_yaml

    path = Path(path)
    loaded: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = safe_yaml.load(path.read_bytes()) or {}
        except yaml.YAMLError as exc:
            raise HarnessError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise HarnessError(f"{path}: must be a mapping of settings")
    unknown = set(loaded) - set(DEFAULT_PARAMS)
    if unknown:
        raise HarnessError(f"{path}: unknown parameter(s): {', '.join(sorted(unknown))}",
                           hint=f"known: {', '.join(DEFAULT_PARAMS)}")
    merged: dict[str, Any] = {**DEFAULT_PARAMS, **loaded}
    for section in SECTIONS:
        defaults = DEFAULT_PARAMS[section]
        given = merged[section] or {}
        extra = set(given) - set(defaults)
        if extra:
            raise HarnessError(f"{path}: unknown {section} setting(s): {', '.join(sorted(extra))}",
                               hint=f"known: {', '.join(defaults)}")
        merged[section] = {**defaults, **given}
    check(merged, path)
    return Settings.from_params(merged)


TEAM_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
# (section or None, key): (kind, lowest, may be None); kind: 'number' (finite), 'whole'
NUMBERS = {(None, "max_image_megapixels"): ("number", 0, False),
           ("docker", "memory_gb"): ("number", 0, False), ("docker", "cpus"): ("number", 0, False),
           ("docker", "pids"): ("whole", 1, False), ("docker", "shm_gb"): ("number", 0, False),
           ("docker", "scratch_gb"): ("number", 0, False),
           ("local", "memory_gb"): ("number", 0, False), ("local", "scratch_gb"): ("number", 0, False),
           ("local", "threads"): ("whole", 1, True),
           ("slurm", "cpus_per_task"): ("whole", 1, False), ("slurm", "mem_gb"): ("number", 0, False),
           ("slurm", "gpus_per_job"): ("whole", 0, False), ("slurm", "time_limit_min"): ("whole", 1, True),
           ("slurm", "array_parallelism"): ("whole", 1, False), ("slurm", "poll_s"): ("number", 0, False)}


class InvalidSetting(HarnessError):
    pass


def valid_device(value, where: str = "device") -> str:
    """cpu, cuda or cuda:N; anything else is refused with the nearest spelling."""
    if isinstance(value, str) and DEVICE.match(value):
        return value
    known = {"gpu": "cuda", "cuda0": "cuda:0", "mps": "cpu (the harness runs teams on cpu or cuda)", "cpu0": "cpu"}
    guess = known.get(str(value).lower().replace(" ", ""))
    if guess is None:
        import difflib

        close = difflib.get_close_matches(str(value), ["cpu", "cuda", "cuda:0"], n=1)
        guess = close[0] if close else None
    raise InvalidSetting(f"{where}: '{value}' is not cpu, cuda or cuda:N",
                         hint=f"did you mean '{guess}'?" if guess else "use cpu, cuda or cuda:N")


def check_number(value, where: str, kind: str = "number", lowest: float = 0, optional: bool = False):
    """A finite number (or whole number) above `lowest` (at least it, for whole numbers)."""
    import math

    if value is None and optional:
        return value
    whole = isinstance(value, int) and not isinstance(value, bool)
    if kind == "whole" and not (whole and value >= lowest):
        raise InvalidSetting(f"{where}: '{value}' is not a whole number of at least {lowest}")
    if kind == "number" and not ((whole or isinstance(value, float)) and math.isfinite(value) and value > lowest):
        raise InvalidSetting(f"{where}: '{value}' is not a finite number above {lowest}")
    return value


def check(merged: dict, path: Path) -> None:
    """Every value of the settings, before any of them is used: choices, numbers, device, metrics, dataset,
    and the teams (ids by the id rule, each once, each a folder under teams/ beside params.yaml)."""
    for name, choices in {"runner": tuple(registries.RUNNERS), **CHOICES}.items():
        if merged[name] not in choices:
            raise InvalidSetting(f"{path}: {name}: '{merged[name]}' is not one of {', '.join(choices)}")
    for (section, key), (kind, lowest, optional) in NUMBERS.items():
        value = merged[section][key] if section else merged[key]
        check_number(value, f"{path}: {section + '.' if section else ''}{key}", kind, lowest, optional)
    workers = merged["eval_workers"]
    if workers != "auto":
        check_number(workers, f"{path}: eval_workers ('auto' or)", "whole", 1)
    valid_device(merged["device"], f"{path}: device")
    teams = merged["teams"]
    if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        raise InvalidSetting(f"{path}: teams: must be a list of team ids")
    for team in teams:
        if not TEAM_ID.match(team):
            raise InvalidSetting(f"{path}: teams: '{team}' is not a team id (rule: {TEAM_ID.pattern})",
                                 hint="a team id is the name of its folder under teams/")
    twice = sorted({t for t in teams if teams.count(t) > 1})
    if twice:
        raise InvalidSetting(f"{path}: teams: listed twice: {', '.join(twice)}", hint="list each team once")
    folder = Path(path).parent / "teams"
    if folder.is_dir():
        absent = [t for t in teams if not (folder / t / "manifest.yaml").is_file()]
        if absent:
            import difflib

            known = sorted(p.parent.name for p in folder.glob("*/manifest.yaml"))
            close = difflib.get_close_matches(absent[0], known, n=1)
            raise InvalidSetting(f"{path}: teams: no folder teams/<id>/ for {', '.join(absent)}",
                                 hint=f"did you mean '{close[0]}'?" if close else "see `harness list`")
    if not isinstance(merged["metrics"], list) or not merged["metrics"]:
        raise InvalidSetting(f"{path}: metrics: must be a list of metric names")
