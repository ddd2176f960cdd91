"""The evaluate-only route: a team's published output images, scored instead of re-running the model.

A source is a local folder or archive, an http(s) URL of an archive, or 'gdrive:<id>' (a Google
Drive file or folder, fetched with gdown). A source holding every team's outputs is narrowed to the
team's own folder (published.<dataset>.outputs.folder, for example 'team17_SRC-B').
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness.catalogue.manifests import Manifest
from harness.core.errors import DatasetError, DownloadError, HarnessError
from harness.core.files import replace_dir, sha256_file, write_json_atomic
from harness.core.progress import Progress, transfer
from harness.core.project import team_runs_dir
from harness.core.records import PUBLISHED_OUTPUTS, RunRecord
from harness.fetch import gdrive
from harness.fetch.archives import materialise
from harness.fetch.downloads import download
from harness.run.inference import write_record


def default_source(team: Manifest, dataset: str) -> str | None:
    spec = (team.published(dataset) or {}).get("outputs")
    if not spec:
        return None
    source = spec["source"]
    if source["kind"] == "gdrive":
        return f"gdrive:{source['id']}"
    if source["kind"] == "url":
        return source["url"]
    return source.get("path")


def team_folder(team: Manifest, dataset: str) -> str | None:
    return ((team.published(dataset) or {}).get("outputs") or {}).get("folder")


def fetch_source(source: str, downloads: Path, progress=None, subfolder: str | None = None,
                 steps: Progress | None = None) -> Path:
    """A local path for a source string (downloading it into the downloads cache when remote); of a Drive
    folder, only `subfolder` is fetched."""
    if source.startswith(("http://", "https://")):
        name = source.rstrip("/").rsplit("/", 1)[-1] or "outputs"
        return download(source, Path(downloads) / "outputs" / name, None, progress)
    if source.startswith("gdrive:"):
        return _gdrive(source.split(":", 1)[1], Path(downloads), subfolder, "outputs", steps)
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"outputs source {source} does not exist",
                           hint="give a folder, a .zip/.tar archive, an http(s) URL or gdrive:<id>")
    return path


MANUAL = "download the folder by hand (or from the Baidu mirror) and pass it with --from-outputs PATH"


def _gdrive(drive_id: str, downloads: Path, subfolder: str | None, label: str, progress=None) -> Path:
    """A Drive folder's files (only the team's sub-folder when given), or failing a folder listing, a Drive
    file (an archive); each file cached so that an interrupted fetch resumes."""
    cache = gdrive.cache_for(downloads, drive_id)
    try:
        return gdrive.copy_folder(drive_id, subfolder, Path(downloads) / "outputs" / drive_id, cache, label, MANUAL,
                                  progress, below=subfolder)
    except DownloadError as folder_error:
        try:
            return gdrive.download_file(drive_id, cache / "file", label, MANUAL)
        except DownloadError:
            raise folder_error from None


def collect(team: Manifest, dataset: str, source: str, runs_root: Path, downloads: Path,
            progress: Progress | None = None) -> dict:
    """Place the team's published outputs as run-1 and write a run record naming the source."""
    folder = team_runs_dir(runs_root, dataset, team.id)
    folder.mkdir(parents=True, exist_ok=True)
    record = RunRecord.start(team, dataset, PUBLISHED_OUTPUTS, None, repeats=1, source=source)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".run-1."))
    try:
        subfolder = team_folder(team, dataset)
        local = fetch_source(source, downloads, transfer(progress, f"{team.id} outputs"), subfolder, progress)
        try:
            files = materialise(local, staging, "*.png", subfolder)
        except DatasetError:
            if subfolder is None:
                raise
            files = materialise(local, staging, "*.png")  # a source holding this team's images only
        provenance = {"source": source, "source_sha256": sha256_file(local) if local.is_file() else None,
                      "subfolder": subfolder, "outputs_sha256": {p.name: sha256_file(p) for p in files}}
        write_json_atomic(staging / "provenance.json", provenance)
        for stale in folder.glob("run-*"):
            shutil.rmtree(stale)
        replace_dir(staging, folder / "run-1")
        record.runs.append({"index": 1, "dir": "run-1", "provenance": provenance})
    except HarnessError as exc:
        record.fail("outputs_unavailable", exc.message, exc.hint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return write_record(folder, record)
