"""Stand-in metric weights: a cache with the real files' names, keys, shapes, dtypes and formats but seeded
random values, so that every learned metric runs here, where the real weights cannot be fetched.

Numbers made with them measure nothing; they show that the harness computes each metric exactly as pyiqa
does (the organizers' way), and what that costs. A stand-in cache is marked (stand-in.json, written before
any weight); everything that reads a marked cache says so, and nothing compares its numbers with published
ones (harness.verdict.rules refuses them). NIQE's parameters are not learned weights: the real file is written.

Each file is built from its architecture with no pretrained weights, under a seed derived from its file
name (build order does not matter; two builds are the same bytes), and saved as its loader reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.files import write_json_atomic

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


@contextlib.contextmanager
def quiet_imports():
    """pyiqa's architectures import timm's deprecated module path, and the clip package pkg_resources: their
    warnings say nothing about the harness."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="timm")
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        yield


def seed_of(path: str) -> int:
    """A file's seed, from its name alone."""
    return int.from_bytes(hashlib.sha256(Path(path).name.encode()).digest()[:8], "big") % (2 ** 63)


def write_marker(cache_dir: Path, digests: dict[str, str]) -> None:
    write_json_atomic(cache_dir / MARKER, {
        "schema": SCHEMA, "stand_in": True,
        "meaning": "seeded random weights with the real files' names, keys, shapes, dtypes and formats: the "
                   "numbers they give measure nothing and are never compared with published ones",
        "seed": "the first 8 bytes of sha256(file name), big-endian, modulo 2**63", "complete": bool(digests),
        "files": digests})


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
