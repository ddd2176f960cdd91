"""Every tensor a learned-metric file holds is one its network expects, by name and shape, and none is
missing: checked before pyiqa loads the file, so that a file with other keys is refused by name instead of
leaving random weights (pyiqa loads LPIPS's and DISTS's files with strict=False).

The expected names and shapes come from the networks themselves, built on torch's meta device (no memory,
no weights). The files loaded strictly by their own loaders and whose networks cannot be built on the meta
device (ManIQA's checkpoint, its ViT, CLIP's TorchScript archive) are left to those loaders: their failure
names the metric's files (harness.score.formulas).
"""

from __future__ import annotations

import functools
from pathlib import Path

from harness.core.errors import MetricUnavailable

Shapes = dict[str, tuple[int, ...]]
LPIPS_CHANNELS = (64, 192, 384, 256, 256)  # AlexNet's five feature stages, as LPIPS weighs them
DISTS_CHANNELS = 3 + 64 + 128 + 256 + 512 + 512  # the image and VGG16's five stages: 1475


class WrongWeightFile(MetricUnavailable):
    """A weight file whose bytes or tensors are not the ones its metric loads; the message names the file."""

    kind = "wrong_metric_weights"

    def __init__(self, metric: str, path: str, message: str, hint: str | None = None):
        super().__init__(metric, f"{metric}: {path}: {message}", hint)
        self.path = path


def _lpips() -> Shapes:
    return {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)}


# LPIPS's network holds its five layers twice, as lin0..lin4 and as the list lins.0..lins.4: a file saved from
# the network's whole state dict carries both names of the same tensors, and pyiqa loads either.
ALIASES = {f"lins.{i}.model.1.weight": f"lin{i}.model.1.weight" for i in range(len(LPIPS_CHANNELS))}


def _dists() -> Shapes:
    return {"alpha": (1, DISTS_CHANNELS, 1, 1), "beta": (1, DISTS_CHANNELS, 1, 1)}


def _on_meta(build) -> Shapes:
    import torch

    with torch.device("meta"):
        network = build()
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}


def _torchvision(builder: str):
    def shapes() -> Shapes:
        import torchvision

        return _on_meta(lambda: getattr(torchvision.models, builder)(weights=None))

    return shapes


def _musiq() -> Shapes:
    from pyiqa.archs.musiq_arch import MUSIQ

    return _on_meta(lambda: MUSIQ(num_class=1, pretrained=False))


EXPECTED = {
    "torch/hub/pyiqa/LPIPS_v0.1_alex-df73285e.pth": _lpips,
    "torch/hub/pyiqa/DISTS_weights-f5e65c96.pth": _dists,
    "torch/hub/checkpoints/alexnet-owt-7be5be79.pth": _torchvision("alexnet"),
    "torch/hub/checkpoints/vgg16-397923af.pth": _torchvision("vgg16"),
    "torch/hub/pyiqa/musiq_koniq_ckpt-e95806b9.pth": _musiq,
}


@functools.cache
def expected_shapes(path: str) -> Shapes:
    from harness.fetch.stand_ins import quiet_imports

    with quiet_imports():
        return EXPECTED[path]()


def held_shapes(file: Path) -> Shapes:
    """Each tensor's name and shape in a state-dict file (safetensors: from its header alone; a torch
    zip archive: memory-mapped, not read)."""
    if file.name.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
        state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"a {type(state).__name__}, not a state dict")
    return {key: tuple(value.shape) for key, value in state.items() if hasattr(value, "shape")}


def check(metric: str, path: str, file: Path) -> None:
    """WrongWeightFile naming the file, the keys missing, the keys not expected, the shapes that differ."""
    if path not in EXPECTED:
        return
    try:
        held = held_shapes(file)
    except Exception as exc:  # not a state dict at all
        raise WrongWeightFile(metric, path, f"not a state dict pyiqa can load ({type(exc).__name__}: {exc})",
                              hint=f"delete {file} and fetch it again") from None
    expected = expected_shapes(path)
    held = {ALIASES.get(key, key) if ALIASES.get(key) in expected else key: shape for key, shape in held.items()}
    missing = sorted(set(expected) - set(held))
    unexpected = sorted(set(held) - set(expected))
    reshaped = sorted(k for k in set(held) & set(expected) if held[k] != expected[k])
    if missing or unexpected or reshaped:
        parts = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''} ({len(keys)})"
                 for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("other shapes", reshaped)) if keys]
        raise WrongWeightFile(metric, path, "its tensors are not the ones the network loads: " + "; ".join(parts),
                              hint=f"delete {file} and fetch it again")
