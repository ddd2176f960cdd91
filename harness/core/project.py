"""Where things live in a harness checkout, and the audit's parameters (params.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from harness.core.errors import HarnessError

# Runs, evaluations, metrics and plots that are not the pipeline's (another device, runner, dataset or team than
# params.yaml's): kept here, where DVC tracks nothing, so that no command replaces what the pipeline made.
ASIDE = "checks"


@dataclass(frozen=True)
class Project:
    """A harness checkout: where every file of the audit lives, and its settings. `aside`: a view whose
    runs, evaluations, metrics and plots live under checks/ instead of the pipeline's folders."""

    root: Path
    is_aside: bool = False

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The nearest folder upwards holding teams/ (or HARNESS_ROOT when set)."""
        if os.environ.get("HARNESS_ROOT"):
            return cls(Path(os.environ["HARNESS_ROOT"]).resolve())
        here = Path(start or Path.cwd()).resolve()
        for folder in [here, *here.parents]:
            if (folder / "teams").is_dir():
                return cls(folder)
        raise HarnessError(f"no teams/ folder in {here} or above",
                           hint="run from a harness checkout, pass --root, or set HARNESS_ROOT")

    teams_dir = property(lambda self: self.root / "teams")
    template_dir = property(lambda self: self.root / "teams" / "_template")
    data_dir = property(lambda self: self.root / "data")
    weights_dir = property(lambda self: self.root / "weights")
    outputs_root = property(lambda self: self.root / ASIDE if self.is_aside else self.root)
    runs_dir = property(lambda self: self.outputs_root / "runs")
    evaluations_dir = property(lambda self: self.outputs_root / "evaluations")
    metrics_dir = property(lambda self: self.outputs_root / "metrics")
    report_dir = property(lambda self: self.root / "report")

    def aside(self) -> Project:
        """This checkout, writing its runs and evaluations under checks/ (never the pipeline's files)."""
        return replace(self, is_aside=True)

    def challenge_report_dir(self, challenge_id: str) -> Path:
        """A challenge's own audit report: beside the pipeline's report/, never over it."""
        return self.report_dir / challenge_id

    # --- per dataset and team ---
    def team_runs(self, dataset: str, team_id: str) -> Path:
        """runs/<dataset>/<team>/: run-<k>/ folders, record.json, logs/."""
        return team_runs_dir(self.runs_dir, dataset, team_id)

    def team_weights(self, team_id: str) -> Path:
        return self.weights_dir / team_id

    def evaluation_file(self, dataset: str, team_id: str) -> Path:
        return self.evaluations_dir / dataset / f"{team_id}.json"

    def metrics_file(self, dataset: str, team_id: str) -> Path:
        """The per-team means that `dvc metrics` shows."""
        return self.metrics_dir / dataset / f"{team_id}.json"

    def plots_dir(self, dataset: str, team_id: str) -> Path:
        """Per-image values that `dvc plots show` / `dvc plots diff` draw: one CSV per metric (image, value),
        so that each plot shows its own metric."""
        return self.outputs_root / "plots" / dataset / team_id

    def slurm_dir(self, dataset: str) -> Path:
        """submitit's folders (one per job) and jobs.json."""
        return self.root / ".cache" / "slurm" / dataset

    def slurm_jobs(self, dataset: str) -> Path:
        return self.slurm_dir(dataset) / "jobs.json"

    def slurm_results(self, dataset: str) -> Path:
        """Where Slurm jobs write their runs; the waiting stage moves them into runs/. DVC clears a
        stage's outputs before running it, so a job that finishes first must not write there."""
        return self.slurm_dir(dataset) / "results"

    @property
    def code_cache(self) -> Path:
        """Checkouts of the teams' code repositories, one per pinned commit (harness fetch code)."""
        return self.root / ".cache" / "code"

    def code_record(self, team_id: str) -> Path:
        """Which checkout the team's runs use (the pipeline's code stage writes it)."""
        return self.code_cache / "teams" / f"{team_id}.json"

    def smoke_dir(self, team_id: str) -> Path:
        """A smoke test's inputs, stand-in weights and runs (replaced at each smoke test)."""
        return self.root / ".cache" / "smoke" / team_id

    def evaluator_logs(self) -> Path:
        return self.root / ".cache" / "evaluator"

    @property
    def downloads_dir(self) -> Path:
        """Fetched archives (wheels, sdists, zips), kept so a re-fetch needs no network."""
        return downloads_dir(self.root)

    @property
    def dataset_pins(self) -> Path:
        """sha256 of each downloaded dataset archive, pinned at its first download (commit it)."""
        return self.root / "datasets.lock.json"

    @property
    def metric_cache(self) -> Path:
        return metric_cache(self.root)


def team_runs_dir(runs_root: Path, dataset: str, team_id: str) -> Path:
    """A team's runs on a dataset below a runs folder (runs/, checks/runs/, or a Slurm job's results): the one
    place the layout <runs>/<dataset>/<team>/ is spelled."""
    return Path(runs_root) / dataset / team_id


def user_cache() -> Path:
    """The harness's cache outside any checkout (the platform's user cache folder)."""
    import platformdirs

    return platformdirs.user_cache_path("harness")


def metric_cache(root: Path | None) -> Path:
    """The metric-weight cache: $HARNESS_METRIC_WEIGHTS, else the checkout's .cache/metric-weights, else
    (outside a checkout) the user's cache."""
    if os.environ.get("HARNESS_METRIC_WEIGHTS"):
        return Path(os.environ["HARNESS_METRIC_WEIGHTS"])
    return (Path(root) / ".cache" if root else user_cache()) / "metric-weights"


def downloads_dir(root: Path | None) -> Path:
    """Fetched archives: $HARNESS_DOWNLOADS, else the checkout's .cache/downloads, else the user's cache."""
    if os.environ.get("HARNESS_DOWNLOADS"):
        return Path(os.environ["HARNESS_DOWNLOADS"])
    return (Path(root) / ".cache" if root else user_cache()) / "downloads"
