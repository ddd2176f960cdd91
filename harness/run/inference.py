"""Running a team over a dataset: repeats, output checks, atomic results and the run record.

runs/<dataset>/<team>/run-<k>/   outputs of run k (PNGs + provenance.json), moved in when complete
runs/<dataset>/<team>/record.json status, typed failure, runner, per-run provenance
runs/<dataset>/<team>/logs/run-<k>.log
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.adapter.protocol import FAILURE, PROVENANCE, SESSION
from harness.catalogue.manifests import Manifest
from harness.core import locks
from harness.core.errors import InferenceFailed
from harness.core.files import replace_dir, write_json_atomic
from harness.core.project import team_runs_dir
from harness.core.records import RunRecord, ran_on
from harness.imaging.png_header import read_png_header
from harness.run.runners.base import Runner, RunRequest

RECORD = "record.json"


def run_dirs(runs_root: Path, dataset: str, team_id: str) -> list[Path]:
    folder = team_runs_dir(runs_root, dataset, team_id)
    return sorted((p for p in folder.glob("run-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))


def check_outputs(lr_dir: Path, out_dir: Path, scale: int) -> None:
    """Every LR input has an output of the right size under its name, and nothing else was written."""
    inputs = {p.name: p for p in Path(lr_dir).glob("*.png")}
    outputs = {p.name for p in Path(out_dir).glob("*.png")}
    missing = sorted(set(inputs) - outputs)
    extra = sorted(outputs - set(inputs))
    if missing:
        raise InferenceFailed("missing_output", f"{len(missing)} output(s) missing: {', '.join(missing[:10])}")
    if extra:
        raise InferenceFailed("extra_output", f"{len(extra)} unexpected output(s): {', '.join(extra[:10])}",
                              hint="outputs must carry the LR file names")
    wrong = []
    for name, lr_path in sorted(inputs.items()):
        lr, sr = read_png_header(lr_path), read_png_header(Path(out_dir) / name)
        if sr is None:
            wrong.append(f"{name}: not a readable PNG")
        elif lr is not None and (sr.width, sr.height) != (lr.width * scale, lr.height * scale):
            wrong.append(f"{name}: {sr.width}x{sr.height}, expected {lr.width * scale}x{lr.height * scale}")
    if wrong:
        raise InferenceFailed("wrong_size", f"{len(wrong)} output(s) of the wrong size: " + "; ".join(wrong[:5]))


@dataclass(frozen=True)
class RunPlace:
    """What a team's runs read and where they go: the dataset's LR images, the team's weights, the runs
    folder (runs/, or a Slurm job's results), the checkout, and the team's code checkout if any."""

    dataset: str
    lr_dir: Path
    weights_dir: Path
    runs_root: Path
    repo_root: Path
    code_dir: Path | None = None

    def team_folder(self, team_id: str) -> Path:
        return team_runs_dir(self.runs_root, self.dataset, team_id)


def infer_team(team: Manifest, runner: Runner, place: RunPlace, device: str, progress=None,
               repeats: int | None = None, task: str = "infer") -> dict:
    """Run a team `repeats` times (default: its manifest's); return (and write) its run record. Never
    leaves half a run in place. `progress(run, runs, done, total, name)` is called after each image.
    task 'smoke': the adapter writes stand-in weights and runs on them (the weights folder is not read)."""
    folder = place.team_folder(team.id)
    folder.mkdir(parents=True, exist_ok=True)
    repeats = repeats or team.repeats
    record = RunRecord.start(team, place.dataset, runner.name, device, repeats, runner_selection=runner.selection)
    if not team.runnable:
        record.fail("not_runnable", "; ".join(team.data["status"]["reasons"]), status="not_runnable")
        return write_record(folder, record)
    devices = team.runtime.get("devices", ["cpu", "cuda"])
    if device.split(":")[0] not in devices:  # said before any environment starts
        record.fail("unsupported_device", f"the manifest says it runs on {', '.join(devices)} only, not {device}",
                    "run it with --device cuda on a machine with a GPU" if "cuda" in devices else None)
        return write_record(folder, record)
    # the lock sits beside the team's folder, which is a pipeline output and must hold only the runs
    with locks.held(folder, f"runs of {team.id} on '{place.dataset}'"):
        _run_repeats(team, runner, place, device, progress, repeats, record, task)
        return write_record(folder, record)


def _run_repeats(team: Manifest, runner: Runner, place: RunPlace, device: str, progress, repeats: int,
                 record: RunRecord, task: str) -> None:
    """Each run into a staging folder, checked, then moved in; the first failure ends the record."""
    folder = place.team_folder(team.id)
    for stale in run_dirs(place.runs_root, place.dataset, team.id):
        if int(stale.name.split("-")[1]) > repeats:
            shutil.rmtree(stale)
    for abandoned in folder.glob(".run-*"):  # staging left by a process that was killed outright
        shutil.rmtree(abandoned, ignore_errors=True)
    try:
        for index in range(1, repeats + 1):
            staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".run-{index}."))
            try:
                def on_image(done, total, name, _index=index):
                    if progress:
                        progress(_index, repeats, done, total, name)

                runner.run_once(RunRequest(team, Path(place.lr_dir), staging, Path(place.weights_dir), device, index,
                                           folder / "logs" / f"run-{index}.log", Path(place.repo_root), on_image,
                                           place.code_dir, task))
                check_outputs(place.lr_dir, staging, team.runtime["scale"])
                (staging / FAILURE).unlink(missing_ok=True)
                provenance = json.loads((staging / PROVENANCE).read_text())
                replace_dir(staging, folder / f"run-{index}")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            record.runs.append({"index": index, "dir": f"run-{index}", "provenance": provenance})
            record.ran_on = record.ran_on or ran_on(provenance)
    except InferenceFailed as exc:
        record.fail(exc.kind, exc.message, exc.hint, exc.log_tail)


def stand_in_weights(team: Manifest, runner: Runner, out_dir: Path, device: str, repo_root: Path,
                     code_dir: Path | None, log_path: Path) -> list[Path]:
    """Randomly initialised weights for the team's described networks, written by the adapter (so in
    the team's own environment: its image, or this one) into a fresh out_dir."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    runner.run_once(RunRequest(team, out_dir, out_dir, out_dir, device, 1, log_path, Path(repo_root),
                               code_dir=code_dir, task="stand-ins"))
    (out_dir / PROVENANCE).unlink(missing_ok=True)
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def write_failed_record(team: Manifest, runs_root: Path, dataset: str, kind: str, message: str,
                        hint: str | None = None) -> dict:
    """The record of a run that could not start (for example, its weights are unavailable)."""
    folder = team_runs_dir(runs_root, dataset, team.id)
    folder.mkdir(parents=True, exist_ok=True)
    return write_record(folder, RunRecord.start(team, dataset).fail(kind, message, hint))


def write_record(folder: Path, record: RunRecord) -> dict:
    """record.json (what the runs are made of) and session.json beside it (when, how long); returns both
    in one dict."""
    payload = record.finish()
    write_json_atomic(Path(folder) / RECORD, record.as_written())
    write_json_atomic(Path(folder) / SESSION, {k: payload.get(k) for k in RunRecord.VOLATILE})
    return payload


def load_session(runs_root: Path, dataset: str, team_id: str) -> dict:
    path = team_runs_dir(runs_root, dataset, team_id) / SESSION
    return json.loads(path.read_text()) if path.exists() else {}


def load_record(runs_root: Path, dataset: str, team_id: str) -> RunRecord | None:
    """The team's run record on the dataset, or None when it has none."""
    path = team_runs_dir(runs_root, dataset, team_id) / RECORD
    return RunRecord.from_dict(json.loads(path.read_text()), str(path)) if path.exists() else None
