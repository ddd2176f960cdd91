"""Stand-in metric weights: a cache with the real files' names, keys, shapes, dtypes and formats but seeded
random values, so that every learned metric runs here, where the real weights cannot be fetched.

Numbers made with them measure nothing; they show that the harness computes each metric exactly as pyiqa
does (the organizers' way), and what that costs. A stand-in cache is marked (stand-in.json, written before
any weight); everything that reads a marked cache says so, and nothing compares its numbers with published
ones (harness.verify refuses them). NIQE's parameters are not learned weights: the real file is written.

Each file is built from its architecture with no pretrained weights, under a seed derived from its file
name (build order does not matter; two builds are the same bytes), and saved as its loader reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

from . import metrics as M
from .errors import HarnessError
from .fsutil import sha256_file, write_json_atomic

MARKER = "stand-in.json"
SCHEMA = "harness.stand-in-metric-weights/1"
VIT_REPOSITORY = "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k"
VIT_FOLDER = "huggingface/hub/models--timm--vit_base_patch8_224.augreg2_in21k_ft_in1k"
# The snapshot's commit: a fixed name, so that a rebuilt cache has the same paths.
VIT_COMMIT = hashlib.sha1(b"harness stand-in " + VIT_REPOSITORY.encode()).hexdigest()
CLIP_RN50 = "torch/hub/clip/RN50.pt"


class StandInRefused(HarnessError):
    """A folder that may hold real weights is never overwritten with stand-ins."""

    kind = "stand_in_weights"


def is_stand_in(cache_dir: Path) -> bool:
    return (Path(cache_dir) / MARKER).is_file()


def marked_digests(cache_dir: Path) -> dict[str, str]:
    """The sha256 of every stand-in file, as the builder recorded them (empty when not marked)."""
    marker = Path(cache_dir) / MARKER
    return json.loads(marker.read_text()).get("files", {}) if marker.is_file() else {}


def refuse_to_compare(cache_dir: Path) -> None:
    """Numbers from stand-ins never meet published ones: a verification with a marked cache stops here."""
    if is_stand_in(cache_dir):
        raise StandInRefused(f"the metric-weights cache {cache_dir} holds stand-in weights ({MARKER}): numbers "
                             "scored with them measure nothing and are never compared with published ones",
                             hint="fetch the real weights into a cache of their own (`harness fetch metric-weights`"
                                  ", $HARNESS_METRIC_WEIGHTS); use stand-ins with `harness evaluate` and the "
                                  "benchmarks only")


def seed_of(path: str) -> int:
    """A file's seed, from its name alone."""
    return int.from_bytes(hashlib.sha256(Path(path).name.encode()).digest()[:8], "big") % (2 ** 63)


def build(cache_dir: Path, downloads: Path, progress: Callable[[str], None] | None = None) -> dict[str, str]:
    """Build every learned metric's stand-in files into `cache_dir` (NIQE's real parameters beside them);
    return {cache-relative path: sha256}. Refuses a folder that holds anything and is not marked."""
    cache_dir = Path(cache_dir)
    if cache_dir.exists() and any(cache_dir.iterdir()) and not is_stand_in(cache_dir):
        raise StandInRefused(f"{cache_dir} holds files and is not a stand-in cache: it may hold real weights",
                             hint="build stand-ins into an empty folder of their own")
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_marker(cache_dir, {})  # first: a build cut short still leaves a marked folder
    from . import stand_in_files

    digests: dict[str, str] = {}
    for path, make in stand_in_files.RECIPES.items():
        if progress:
            progress(path)
        target = cache_dir / path
        written = make(target, seed_of(path))
        digests[path] = sha256_file(written)
    _niqe_parameters(cache_dir, downloads)
    _write_marker(cache_dir, digests)
    return digests


def _write_marker(cache_dir: Path, digests: dict[str, str]) -> None:
    write_json_atomic(cache_dir / MARKER, {
        "schema": SCHEMA, "stand_in": True,
        "meaning": "seeded random weights with the real files' names, keys, shapes, dtypes and formats: the "
                   "numbers they give measure nothing and are never compared with published ones",
        "seed": "the first 8 bytes of sha256(file name), big-endian, modulo 2**63", "files": digests})


def _niqe_parameters(cache_dir: Path, downloads: Path) -> None:
    """NIQE's parameters are data, not learned weights: the real file, from basicsr's sdist on PyPI."""
    from . import metric_weights

    weight = M.METRICS["niqe"].weight_files[0]
    if not (cache_dir / weight.path).is_file():
        metric_weights.obtain(weight.path, weight, cache_dir, Path(downloads), None)


def save_torch(target: Path, obj) -> Path:
    """torch.save, atomically (a cut build never leaves half a file pyiqa would load)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return _write(target, buffer.getvalue())


def _write(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, target)
    return target


def write_bytes(target: Path, data: bytes) -> Path:
    return _write(target, data)


# --- the run-time hook CLIP-IQA needs -------------------------------------------------------------

def allow_stand_in_clip(cache_dir: Path) -> bool:
    """pyiqa's CLIP loader compares RN50.pt with the digest in its download URL and downloads again when they
    differ; for a marked cache only, it is told the stand-in's digest. Returns whether the hook was applied."""
    digest = marked_digests(cache_dir).get(CLIP_RN50)
    if not digest:
        return False
    from pyiqa.archs import clip_model

    url = clip_model._MODELS["RN50"]
    parts = url.split("/")
    parts[-2] = digest
    clip_model._MODELS["RN50"] = "/".join(parts)
    return True
