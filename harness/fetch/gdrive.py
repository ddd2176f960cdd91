"""Google Drive files and folders, through gdown.

A folder is listed with gdown's folder support (gdown 6 reads Drive's embedded folder view, which lists
a folder of any size, following sub-folders), then each file of the wanted sub-folder is downloaded on
its own, resumably, into a cache that survives an interrupted fetch.

HARNESS_GDRIVE_URL replaces https://drive.google.com for file downloads (a mirror or a test server);
the folder listing honours the usual HTTPS_PROXY and REQUESTS_CA_BUNDLE variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.core.errors import DownloadError
from harness.core.progress import Progress, Step, silent

DRIVE = "https://drive.google.com"
_LISTINGS: dict[str, list] = {}  # a folder listed once per process (an audit narrows one shared folder per team)


@dataclass(frozen=True)
class DriveFile:
    id: str
    path: str  # inside the listed folder, '/'-separated


def file_url(file_id: str) -> str:
    return f"{os.environ.get('HARNESS_GDRIVE_URL', DRIVE).rstrip('/')}/uc?id={file_id}"


def list_folder(folder_id: str, manual: str = "") -> list[DriveFile]:
    """Every file under a Drive folder, sub-folders included; a page that cannot be read is an error
    that names the folder and the manual route (`manual`)."""
    import gdown
    import requests
    from gdown.exceptions import DownloadError as GdownError

    where = f"Google Drive folder {folder_id}"
    hint = manual or "download it by hand and import it"
    if folder_id in _LISTINGS:
        return _LISTINGS[folder_id]
    try:
        listed = gdown.download_folder(id=folder_id, skip_download=True, quiet=True, use_cookies=False, timeout=60)
    except GdownError as exc:  # no listing (not shared, quota, sign-in, gone, a changed page)
        raise DownloadError(f"{where}: Drive gave no folder listing that can be read ({_first_line(exc)}); the "
                            "folder may not be shared with 'anyone with the link', may be gone, or the download "
                            "quota is exceeded", hint=hint) from None
    except requests.RequestException as exc:
        raise unreachable(exc, f"listing {where}", hint) from None
    _LISTINGS[folder_id] = [DriveFile(item.id, PurePosixPath(item.path).as_posix()) for item in listed or []
                            if not isinstance(item, str)]  # with skip_download, gdown lists files, not paths
    return _LISTINGS[folder_id]


def unreachable(exc: Exception, what: str, manual: str) -> DownloadError:
    """A network failure in one line: the host, what was being fetched, and the way round it."""
    import requests

    url = getattr(getattr(exc, "request", None), "url", None) or DRIVE
    host = requests.utils.urlparse(url).hostname
    reason = "the name does not resolve" if "NameResolution" in repr(exc) or "Name or service" in repr(exc) \
        else "the connection failed" if isinstance(exc, requests.ConnectionError) else type(exc).__name__
    return DownloadError(f"cannot reach {host} ({reason}) while {what}", hint=f"check the network and run again; "
                         f"or {manual}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def under(files: list[DriveFile], sub_path: str | None) -> dict[str, DriveFile]:
    """The files inside a folder `sub_path` of the listing (at any depth: 'team24_ACVLAB' finds
    'outputs/team24_ACVLAB'), by their path below it; every file when sub_path is None."""
    if not sub_path:
        return {f.path: f for f in files}
    wanted = PurePosixPath(sub_path).parts
    chosen = {}
    for item in files:
        parts = PurePosixPath(item.path).parts
        for start in range(len(parts) - len(wanted)):
            if parts[start:start + len(wanted)] == wanted:
                chosen["/".join(parts[start + len(wanted):])] = item
                break
    return chosen


def download_file(file_id: str, target: Path, label: str, manual: str = "") -> Path:
    """One Drive file into `target`, resuming a partial download an earlier try left beside it."""
    import gdown

    target.parent.mkdir(parents=True, exist_ok=True)
    import requests

    try:
        got = gdown.download(url=file_url(file_id), output=str(target), quiet=True, resume=True, use_cookies=False,
                             timeout=60)
    except requests.RequestException as exc:
        raise unreachable(exc, f"downloading Google Drive file {file_id} ({label})",
                          "run the same command again: the download resumes" + (f"; or {manual}" if manual else "")
                          ) from None
    except Exception as exc:
        raise DownloadError(f"{label}: Google Drive file {file_id}: {type(exc).__name__}: {_first_line(exc)}",
                            hint="run the same command again: the download resumes"
                            + (f"; or {manual}" if manual else "")) from None
    if not got or not target.is_file():
        raise DownloadError(f"{label}: Google Drive file {file_id}: nothing was downloaded",
                            hint=f"remove partial files {target}*.part and run again")
    with open(target, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):  # an error, quota or sign-in page saved as the file
        target.unlink()
        raise DownloadError(f"{label}: Google Drive file {file_id}: the server answered with a web page instead "
                            "of the file (wrong id, no access, or the download quota is exceeded)",
                            hint="check the id; try again later" + (f", or {manual}" if manual else ""))
    return target


def fetch_folder(folder_id: str, sub_path: str | None, cache: Path, label: str, manual: str = "",
                 progress: Progress | None = None) -> dict[str, Path]:
    """The files of a Drive folder (or of its `sub_path`), each downloaded once into `cache`; by their path
    below `sub_path`. Files already complete in the cache are not fetched again."""
    chosen = under(list_folder(folder_id, manual), sub_path)
    if not chosen:
        where = f"'{sub_path}' in " if sub_path else ""
        raise DownloadError(f"{label}: nothing to fetch: {where}Google Drive folder {folder_id} holds no file",
                            hint=manual or None)
    local = {}
    for index, (relative, item) in enumerate(sorted(chosen.items())):
        (progress or silent)(Step(label, f"{label}: {relative}", index, len(chosen)))
        target = Path(cache) / item.id
        if not target.is_file():
            download_file(item.id, target, f"{label}: {relative}", manual)
        local[relative] = target
    (progress or silent)(Step(label, label, len(chosen), len(chosen)))
    return local


def cache_for(downloads: Path, drive_id: str) -> Path:
    """Where the files of one Drive file or folder are kept between fetches (one layout for every use)."""
    return Path(downloads) / "gdrive" / drive_id


def copy_folder(folder_id: str, sub_path: str | None, target: Path, cache: Path, label: str, manual: str = "",
                progress: Progress | None = None, below: str | None = None) -> Path:
    """A Drive folder (or its `sub_path`) fetched into `cache`, then copied into a fresh `target` (under
    `below` inside it, when given), all or nothing: `target` is replaced only once every file is in."""
    import shutil
    import tempfile

    from harness.core.files import replace_dir

    files = fetch_folder(folder_id, sub_path, cache, label, manual, progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        for relative, cached in files.items():
            destination = staging / (below or "") / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, destination)
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
