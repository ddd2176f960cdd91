"""The audit's settings (params.yaml): every default in one place, below the executors and runners.

Settings are layered: these defaults, then params.yaml, then a command's options.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import HarnessError

PARAMS_FILE = "params.yaml"
PACKAGE_DIR = Path(__file__).resolve().parent
# schemas/ and challenges/ of the checkout the package runs from (a clone, an image's /opt/harness), else
# the copies an installed wheel carries inside the package.
SCHEMAS_DIR, CHALLENGES_DIR = (next((d for d in (PACKAGE_DIR.parent / name, PACKAGE_DIR / name) if d.is_dir()),
                                    PACKAGE_DIR.parent / name) for name in ("schemas", "challenges"))
if os.environ.get("HARNESS_CHALLENGES_DIR"):  # a folder of challenge files of one's own
    CHALLENGES_DIR = Path(os.environ["HARNESS_CHALLENGES_DIR"])
RUNNERS = ("auto", "local", "docker", "podman")
EXECUTORS = ("local", "slurm")
EVALUATORS = ("local", "docker")
SOURCES = ("inference", "outputs")
MODES = ("faithful", "strict")

DOCKER_DEFAULTS = {"gpus": "all", "memory_gb": 16, "cpus": 4, "pids": 4096, "shm_gb": 2, "scratch_gb": 4,
                   "base_image": None, "build_network": "host"}
# The local runner: an address-space bound on a CPU (runtime.memory_gb wins), the private /tmp, threads.
LOCAL_DEFAULTS = {"memory_gb": 16, "scratch_gb": 4, "threads": None}
SLURM_DEFAULTS = {"partition": None, "account": None, "cpus_per_task": 2, "mem_gb": 8, "gpus_per_job": 0,
                  "time_limit_min": None, "array_parallelism": 64, "poll_s": 5}
SECTIONS = {"docker": DOCKER_DEFAULTS, "local": LOCAL_DEFAULTS, "slurm": SLURM_DEFAULTS}
DEFAULT_PARAMS = {"dataset": "mini", "teams": [], "runner": "local", "device": "cpu",
                  "metrics": ["psnr", "ssim", "niqe"], "mode": "faithful", "source": "inference", "outputs": None,
                  "evaluator": "local", "eval_workers": "auto", "max_image_megapixels": 50, "docker": DOCKER_DEFAULTS,
                  "local": LOCAL_DEFAULTS, "executor": "local", "slurm": SLURM_DEFAULTS}
CHOICES = {"runner": RUNNERS, "executor": EXECUTORS, "evaluator": EVALUATORS, "source": SOURCES, "mode": MODES}


def evaluation_workers(settings: dict) -> int:
    """Processes that score images: eval_workers, or with 'auto' every core on a CPU and one on a GPU."""
    import os

    chosen = settings.get("eval_workers", "auto")
    if str(settings.get("device", "cpu")).startswith("cuda"):
        return 1
    if chosen == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(chosen)


def load(path: Path) -> dict:
    """params.yaml over the defaults; unknown names and values outside their choices are refused."""
    import yaml

    from . import yamlsafe

    path = Path(path)
    loaded = {}
    if path.exists():
        try:
            loaded = yamlsafe.load(path.read_bytes()) or {}
        except yaml.YAMLError as exc:
            raise HarnessError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise HarnessError(f"{path}: must be a mapping of settings")
    unknown = set(loaded) - set(DEFAULT_PARAMS)
    if unknown:
        raise HarnessError(f"{path}: unknown parameter(s): {', '.join(sorted(unknown))}",
                           hint=f"known: {', '.join(DEFAULT_PARAMS)}")
    merged = {**DEFAULT_PARAMS, **loaded}
    for section, defaults in SECTIONS.items():
        given = merged[section] or {}
        extra = set(given) - set(defaults)
        if extra:
            raise HarnessError(f"{path}: unknown {section} setting(s): {', '.join(sorted(extra))}",
                               hint=f"known: {', '.join(defaults)}")
        merged[section] = {**defaults, **given}
    for name, choices in CHOICES.items():
        if merged[name] not in choices:
            raise HarnessError(f"{path}: {name}: '{merged[name]}' is not one of {', '.join(choices)}")
    limit = merged["max_image_megapixels"]
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise HarnessError(f"{path}: max_image_megapixels: '{limit}' is not a positive number")
    workers = merged["eval_workers"]
    if workers != "auto" and not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise HarnessError(f"{path}: eval_workers: '{workers}' is not 'auto' or a whole number of at least 1")
    return merged
