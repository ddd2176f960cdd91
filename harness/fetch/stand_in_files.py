"""Building stand-in metric weights (harness.fetch.stand_ins): how each file is made, its architecture built with no
pretrained weights under the file's seed and saved in the format its loader reads. torch, torchvision, timm
and pyiqa are imported here only, when a cache is built.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

from harness.catalogue import metrics as M
from harness.core.files import sha256_file
from harness.core.settings import PACKAGE_DIR
from harness.fetch import metric_weights, stand_ins
from harness.fetch.metric_keys import DISTS_CHANNELS, LPIPS_CHANNELS
from harness.fetch.stand_ins import CLIP_RN50, VIT_COMMIT, VIT_FOLDER


def build(cache_dir: Path, downloads: Path, progress: Callable[[str], None] | None = None,
          niqe: bool = True) -> dict[str, str]:
    """Build every learned metric's stand-in files into `cache_dir` (with `niqe`, NIQE's real parameters beside
    them, from PyPI); return {cache-relative path: sha256}. Refuses a folder that holds anything and is not
    marked."""
    cache_dir = Path(cache_dir)
    if cache_dir.exists() and any(cache_dir.iterdir()) and not stand_ins.is_stand_in(cache_dir):
        raise stand_ins.StandInRefused(f"{cache_dir} holds files and is not a stand-in cache: it may hold real "
                                       "weights", hint="build stand-ins into an empty folder of their own")
    cache_dir.mkdir(parents=True, exist_ok=True)
    stand_ins.write_marker(cache_dir, {})  # first: a build cut short still leaves a marked folder
    digests: dict[str, str] = {}
    with stand_ins.quiet_imports():
        for path, make in RECIPES.items():
            if progress:
                progress(path)
            digests[path] = sha256_file(make(cache_dir / path, stand_ins.seed_of(path)))
    if niqe:
        _niqe_parameters(cache_dir, downloads)
    stand_ins.write_marker(cache_dir, digests)
    return digests


def _niqe_parameters(cache_dir: Path, downloads: Path) -> None:
    """NIQE's parameters are data, not learned weights: the real file, from basicsr's sdist on PyPI."""
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


@contextlib.contextmanager
def seeded(seed: int):
    """torch's global generator at `seed` for the block, and as it was afterwards."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _torchvision(builder: str):
    def make(target: Path, seed: int) -> Path:
        import torchvision

        with seeded(seed):
            network = getattr(torchvision.models, builder)(weights=None)
        return save_torch(target, network.state_dict())

    return make


def lpips_layers(target: Path, seed: int) -> Path:
    """The five 1x1 layers LPIPS puts on AlexNet's features; non-negative, as the trained ones are."""
    import torch

    with seeded(seed):
        layers = {f"lin{i}.model.1.weight": torch.rand(1, channels, 1, 1) * (2.0 / channels)
                  for i, channels in enumerate(LPIPS_CHANNELS)}
    return save_torch(target, layers)


def dists_weights(target: Path, seed: int) -> Path:
    """DISTS's alpha and beta, drawn as its architecture initialises them (about 0.1 each)."""
    import torch

    with seeded(seed):
        alpha = torch.empty(1, DISTS_CHANNELS, 1, 1).normal_(0.1, 0.01).abs()
        beta = torch.empty(1, DISTS_CHANNELS, 1, 1).normal_(0.1, 0.01).abs()
    return save_torch(target, {"alpha": alpha, "beta": beta})


def musiq_koniq(target: Path, seed: int) -> Path:
    from pyiqa.archs.musiq_arch import MUSIQ

    with seeded(seed):
        network = MUSIQ(num_class=1, pretrained=False)
    return save_torch(target, network.state_dict())


def maniqa_koniq(target: Path, seed: int) -> Path:
    """The whole MANIQA, its ViT included (this file replaces the ViT that timm loads first)."""
    import timm
    from pyiqa.archs import maniqa_arch

    real_create = timm.create_model

    def unpretrained(name, *args, **kwargs):  # the ViT's own stand-in is a file of its own
        return real_create(name, *args, **{**kwargs, "pretrained": False})

    with seeded(seed), _replaced(maniqa_arch.timm, "create_model", unpretrained):
        network = maniqa_arch.MANIQA(train_dataset="koniq", scale=0.8, pretrained=False)
    return save_torch(target, network.state_dict())


@contextlib.contextmanager
def _replaced(owner, name: str, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def vit_snapshot(target: Path, seed: int) -> Path:
    """timm's ViT-B/8 as the Hugging Face cache holds it: refs/main names the snapshot, whose
    model.safetensors links to a blob named by its sha256. `target` is the repository's folder."""
    import hashlib

    import timm
    from safetensors.torch import save

    with seeded(seed):
        network = timm.create_model("vit_base_patch8_224.augreg2_in21k_ft_in1k", pretrained=False)
    data = save({k: v.contiguous() for k, v in network.state_dict().items()}, metadata={"format": "pt"})
    digest = hashlib.sha256(data).hexdigest()
    write_bytes(target / "blobs" / digest, data)
    write_bytes(target / "refs" / "main", VIT_COMMIT.encode())
    link = target / "snapshots" / VIT_COMMIT / "model.safetensors"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(os.path.relpath(target / "blobs" / digest, link.parent), link)
    return link


def clip_rn50(target: Path, seed: int) -> Path:
    """CLIP RN50 as OpenAI ships it, written by a fresh process: TorchScript names each module type it compiles
    with a counter that runs for the life of a process, so only a fresh one writes the same bytes every time."""
    import subprocess
    import sys

    package_root = str(PACKAGE_DIR.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    code = ("import sys; from harness.fetch.stand_in_files import write_clip_rn50; "
            "write_clip_rn50(sys.argv[1], int(sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, str(target), str(seed)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the stand-in CLIP RN50 failed: {done.stderr[-2000:]}")
    return target


def write_clip_rn50(target: str, seed: int) -> None:
    """A TorchScript archive of fp16 weights (batch norms in fp32), with the three int64 scalars the original
    archive carries."""
    import torch
    from pyiqa.archs import clip_model

    with seeded(seed):
        network = clip_model.CLIP(1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12)
    clip_model.convert_weights(network)
    tensors = dict(network.state_dict())
    tensors.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77),
                   vocab_size=torch.tensor(49408))
    with stand_ins.quiet_imports():
        write_bytes(Path(target), _script_archive(tensors))


class _Holder:
    """Built lazily: a module tree whose state dict is exactly the given tensors, under their dotted names."""

    @staticmethod
    def tree(tensors: dict):
        import torch

        class Node(torch.nn.Module):
            def forward(self) -> int:
                return 0

        root = Node()
        for name, tensor in tensors.items():
            *parents, leaf = name.split(".")
            node = root
            for part in parents:
                if not hasattr(node, part):
                    node.add_module(part, Node())
                node = getattr(node, part)
            node.register_buffer(leaf, tensor.detach().clone())
        return root


def _script_archive(tensors: dict) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(_Holder.tree(tensors)), buffer)
    return buffer.getvalue()


RECIPES = {
    "torch/hub/checkpoints/alexnet-owt-7be5be79.pth": _torchvision("alexnet"),
    "torch/hub/checkpoints/vgg16-397923af.pth": _torchvision("vgg16"),
    "torch/hub/pyiqa/LPIPS_v0.1_alex-df73285e.pth": lpips_layers,
    "torch/hub/pyiqa/DISTS_weights-f5e65c96.pth": dists_weights,
    "torch/hub/pyiqa/musiq_koniq_ckpt-e95806b9.pth": musiq_koniq,
    VIT_FOLDER: vit_snapshot,
    "torch/hub/pyiqa/ckpt_koniq10k.pt": maniqa_koniq,
    CLIP_RN50: clip_rn50,
}
