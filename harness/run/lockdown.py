"""The lock-down every harness container gets (team runners and the evaluator image alike).

No network, a read-only root file system with a tmpfs at /tmp, no capabilities, no-new-privileges, a
non-root user, and memory/pids/CPU limits; GPUs only as asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.core.errors import HarnessError
from harness.core.settings import DockerSettings

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

USER = "10001:10001"
SCRATCH = "/tmp"  # the container's tmpfs: its only writable place besides the mounted output folders
# Caches and home inside the scratch tmpfs, since the root file system is read-only.
CONTAINER_ENV = {"PYTHONUNBUFFERED": "1", "HOME": SCRATCH, "TORCH_HOME": f"{SCRATCH}/torch",
                 "XDG_CACHE_HOME": f"{SCRATCH}/cache"}


def locked_down(limits: dict) -> dict:
    """Container-create arguments of the lock-down, with the memory/pids/CPU limits."""
    return {"user": USER, "network_mode": "none", "read_only": True,
            "tmpfs": {SCRATCH: f"rw,nosuid,nodev,size={limits['scratch_bytes']}"}, "working_dir": SCRATCH,
            "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "mem_limit": limits["memory_bytes"],
            "memswap_limit": limits["memory_bytes"], "pids_limit": limits["pids"],
            "nano_cpus": int(limits["cpus"] * 1e9)}


def describe(limits: dict) -> dict:
    """The lock-down as provenance records it."""
    return {"limits": limits, "network": "none", "read_only_rootfs": True, "cap_drop": ["ALL"],
            "no_new_privileges": True, "user": USER}


def limits_for(team: Manifest, settings: DockerSettings, engine_cpus: int | None = None) -> dict:
    """The container's limits: the manifest's, else params.yaml's; CPUs capped at what the engine has."""
    runtime = team.runtime
    memory_gb = runtime.get("memory_gb", settings.memory_gb)
    cpus = runtime.get("cpus", settings.cpus)
    if engine_cpus:
        cpus = min(cpus, engine_cpus)
    return {"memory_bytes": int(memory_gb * 2 ** 30), "cpus": cpus, "pids": settings.pids,
            "shm_bytes": int(settings.shm_gb * 2 ** 30), "scratch_bytes": int(settings.scratch_gb * 2 ** 30),
            "timeout_s": runtime.get("timeout_s", 3600)}


def device_requests(gpus, device: str) -> list:
    """Docker's --gpus as device requests: 'all', a count, or 'device=0,1' (ids or UUIDs)."""
    from docker.types import DeviceRequest

    if not device.startswith("cuda"):
        return []
    spec = str(gpus).strip()
    if spec == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if spec.isdigit():
        return [DeviceRequest(count=int(spec), capabilities=[["gpu"]])]
    if spec.startswith("device="):
        return [DeviceRequest(device_ids=spec[len("device="):].split(","), capabilities=[["gpu"]])]
    raise HarnessError(f"gpus: '{gpus}' is not 'all', a count or 'device=ID[,ID]'")
