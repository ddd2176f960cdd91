"""Whether a device can be used here: the same check before a team runs and before scoring on a GPU."""

from __future__ import annotations

from harness.core.errors import TypedFailure


def check_device(device: str) -> None:
    """A cuda device must be visible and served by this torch build; a cpu device always is (and needs no
    torch)."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise TypedFailure("no_gpu", f"device {device} was asked for, but torch sees no CUDA device",
                           hint="use --device cpu (device: cpu in params.yaml), or make a GPU visible "
                                "(in a container: docker.gpus / --gpus)")
    index = torch.device(device).index or 0
    major, minor = torch.cuda.get_device_capability(index)
    arches = torch.cuda.get_arch_list()
    served = {a.split("_")[1] for a in arches if a.startswith(("sm_", "compute_"))}
    capability = f"{major}{minor}"
    # A PTX build (compute_XY) serves newer GPUs by JIT; an exact sm_XY serves its own.
    ptx = [int(a.split("_")[1]) for a in arches if a.startswith("compute_")]
    if capability not in served and not any(int(capability) >= p for p in ptx):
        raise TypedFailure("incompatible_gpu",
                           f"{torch.cuda.get_device_name(index)} (sm_{capability}) is not served by this "
                           f"torch build (CUDA {torch.version.cuda}, archs {', '.join(arches)})",
                           hint="use an image whose CUDA build supports this GPU")


def gpu_name(device: str) -> str | None:
    """The model of the GPU a cuda device is here (None where there is none)."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.device(device).index or 0)
