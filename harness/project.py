"""Where things live in a harness checkout, and the audit's parameters (params.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import HarnessError

PARAMS_FILE = "params.yaml"
DEFAULT_PARAMS = {"dataset": "mini", "teams": [], "runner": "local", "device": "cpu",
                  "metrics": ["psnr", "ssim", "niqe"], "mode": "faithful", "source": "inference", "outputs": None,
                  "evaluator": "local", "docker": {}, "executor": "local", "slurm": {}}
EXECUTORS = ("local", "slurm")
EVALUATORS = ("local", "docker")
SOURCES = ("inference", "outputs")


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> "Project":
        """The nearest folder upwards holding teams/ (or HARNESS_ROOT when set)."""
        if os.environ.get("HARNESS_ROOT"):
            return cls(Path(os.environ["HARNESS_ROOT"]).resolve())
        here = Path(start or Path.cwd()).resolve()
        for folder in [here, *here.parents]:
            if (folder / "teams").is_dir():
                return cls(folder)
        raise HarnessError(f"no teams/ folder in {here} or above",
                           hint="run from a harness checkout, or set HARNESS_ROOT")

    teams_dir = property(lambda self: self.root / "teams")
    template_dir = property(lambda self: self.root / "teams" / "_template")
    data_dir = property(lambda self: self.root / "data")
    weights_dir = property(lambda self: self.root / "weights")
    runs_dir = property(lambda self: self.root / "runs")
    evaluations_dir = property(lambda self: self.root / "evaluations")
    metrics_dir = property(lambda self: self.root / "metrics")
    report_dir = property(lambda self: self.root / "report")

    @property
    def downloads_dir(self) -> Path:
        """Fetched archives (wheels, sdists, zips), kept so a re-fetch needs no network."""
        return Path(os.environ.get("HARNESS_DOWNLOADS", self.root / ".cache" / "downloads"))

    @property
    def dataset_pins(self) -> Path:
        """sha256 of each downloaded dataset archive, pinned at its first download (commit it)."""
        return self.root / "datasets.lock.json"

    @property
    def metric_cache(self) -> Path:
        return Path(os.environ.get("HARNESS_METRIC_WEIGHTS", self.root / ".cache" / "metric-weights"))

    def params(self) -> dict:
        path = self.root / PARAMS_FILE
        if not path.exists():
            return {**DEFAULT_PARAMS, **{k: section_settings(k, {}, path) for k in ("docker", "slurm")}}
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise HarnessError(f"{path}: not valid YAML: {exc}") from None
        unknown = set(loaded) - set(DEFAULT_PARAMS)
        if unknown:
            raise HarnessError(f"{path}: unknown parameter(s): {', '.join(sorted(unknown))}",
                               hint=f"known: {', '.join(DEFAULT_PARAMS)}")
        merged = {**DEFAULT_PARAMS, **loaded}
        for section in ("docker", "slurm"):
            merged[section] = section_settings(section, merged[section] or {}, path)
        if merged["executor"] not in EXECUTORS:
            raise HarnessError(f"{path}: executor: '{merged['executor']}' is not one of {', '.join(EXECUTORS)}")
        if merged["evaluator"] not in EVALUATORS:
            raise HarnessError(f"{path}: evaluator: '{merged['evaluator']}' is not one of {', '.join(EVALUATORS)}")
        if merged["source"] not in SOURCES:
            raise HarnessError(f"{path}: source: '{merged['source']}' is not one of {', '.join(SOURCES)}")
        return merged


def section_settings(section: str, given: dict, path: Path) -> dict:
    """A nested section of params.yaml (docker, slurm) over its defaults; unknown keys refused."""
    from .runners.docker import DEFAULT_SETTINGS as DOCKER
    from .slurm import DEFAULT_SETTINGS as SLURM

    defaults = {"docker": DOCKER, "slurm": SLURM}[section]
    unknown = set(given) - set(defaults)
    if unknown:
        raise HarnessError(f"{path}: unknown {section} setting(s): {', '.join(sorted(unknown))}",
                           hint=f"known: {', '.join(defaults)}")
    return {**defaults, **given}
