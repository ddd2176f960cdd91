"""What a learned metric's weight files must be, checked every time a metric is created (not only when
fetched): their bytes (the real digests, pinned here) and their tensors (every key a file holds is one its
network expects, with the expected shape: pyiqa loads LPIPS's and DISTS's files with strict=False, where a
file with wrong keys would silently leave random weights).

Real digests known without the files: CLIP RN50's full sha256 is in its download URL; NIQE's parameter file
is written by the harness (harness.fetch.metric_weights), the same bytes everywhere; five torch-hub names carry the
first hex digits of their sha256. ManIQA's checkpoint and the ViT snapshot it builds on are trusted on first
use (checksums.json, harness.fetch.metric_weights). A stand-in cache (harness.fetch.stand_ins) is held to the
digests its builder recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.catalogue import metrics as M
from harness.core.files import sha256_file
from harness.fetch import metric_keys, stand_ins
from harness.fetch.metric_keys import WrongWeightFile

CLIP_RN50_SHA256 = "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"
NIQE_PARAMETERS_SHA256 = "037df2fdc04e55d32282d09742edd549eb08862e890c4da75a760e63cc8479ce"
PINNED_SHA256 = {
    "torch/hub/clip/RN50.pt": CLIP_RN50_SHA256,
    "torch/hub/pyiqa/niqe_modelparameters.mat": NIQE_PARAMETERS_SHA256,
}
TRUST_ON_FIRST_USE = ("torch/hub/pyiqa/ckpt_koniq10k.pt", stand_ins.VIT_FOLDER)


def name_prefix(path: str) -> str | None:
    """torch hub names embed the first hex digits of the file's sha256: name-<hex>.pth."""
    stem = Path(path).name.rsplit(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None


def file_of(cache_dir: Path, weight: M.WeightFile) -> Path:
    """The file whose bytes a weight entry stands for: for a Hugging Face snapshot, the model.safetensors of
    the commit refs/main names."""
    path = Path(cache_dir) / weight.path
    if weight.kind != "hf-hub":
        return path
    refs = path / "refs" / "main"
    commit = refs.read_text().strip() if refs.is_file() else ""
    return path / "snapshots" / commit / "model.safetensors"


_DIGESTS: dict[tuple, str] = {}


def digest_of(path: Path) -> str:
    """sha256 of a file, remembered for as long as the file is unchanged (a metric is created once per process,
    but several metrics share a cache)."""
    facts = path.stat()
    key = (str(path.resolve()), facts.st_size, facts.st_mtime_ns, facts.st_ino)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def expected_digest(path: str, cache_dir: Path) -> tuple[str, str] | None:
    """(how, digest): 'sha256' for a full digest, 'prefix' for a name's; None when trusted on first use."""
    if stand_ins.is_stand_in(cache_dir):
        recorded = stand_ins.marked_digests(cache_dir).get(path)
        if recorded:
            return "sha256", recorded
    if path in PINNED_SHA256:
        return "sha256", PINNED_SHA256[path]
    prefix = name_prefix(path)
    return ("prefix", prefix) if prefix else None


def check_digests(metric: str, cache_dir: Path) -> None:
    """Every weight file of the metric present in the cache has its pinned bytes, or WrongWeightFile."""
    for weight in M.METRICS[metric].weight_files:
        path = file_of(cache_dir, weight)
        expected = expected_digest(weight.path, cache_dir)
        if expected is None or not path.is_file():
            continue
        digest = digest_of(path)
        how, value = expected
        if (how == "sha256" and digest != value) or (how == "prefix" and not digest.startswith(value)):
            said = "pinned" if how == "sha256" else "the prefix its name carries"
            origin = "the stand-in builder recorded" if stand_ins.is_stand_in(cache_dir) else "the harness pins"
            raise WrongWeightFile(metric, weight.path, f"sha256 {digest} is not {value} ({said}, as {origin})",
                                  hint=f"delete {path} and run `{M.FETCH_COMMAND} {metric}`")


def check(metric: str, cache_dir: Path) -> None:
    """Bytes, then tensors: what must hold before pyiqa is allowed to load the metric's files."""
    check_digests(metric, cache_dir)
    for weight in M.METRICS[metric].weight_files:
        path = file_of(cache_dir, weight)
        if path.is_file() and os.access(path, os.R_OK):
            metric_keys.check(metric, weight.path, path)
