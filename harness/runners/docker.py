"""Runs the adapter in the team's own image on a Docker engine, locked down.

The container gets no network, a read-only root file system with a tmpfs at /tmp, no capabilities,
no-new-privileges, a non-root user, memory/pids/CPU limits and a wall-clock timeout. The LR images
and the weights are mounted read-only; the output folder is the only writable mount.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from pathlib import Path

from .. import images
from ..entry import EXIT_FAILED, FAILURE, PROVENANCE
from ..errors import HarnessError, InferenceFailed
from ..fsutil import write_json_atomic
from ..provenance import harness_info
from .local import PROGRESS_LINE, log_tail

USER = "10001:10001"
SCRATCH = "/tmp"  # the container's tmpfs: its only writable place besides the output folder
# Caches and home inside the scratch tmpfs, since the root file system is read-only.
CONTAINER_ENV = {"PYTHONUNBUFFERED": "1", "HOME": SCRATCH, "TORCH_HOME": f"{SCRATCH}/torch",
                 "XDG_CACHE_HOME": f"{SCRATCH}/cache"}
LR_MOUNT, WEIGHTS_MOUNT, OUTPUT_MOUNT = "/data/lr", "/weights", "/output"
DEFAULT_SETTINGS = {"gpus": "all", "memory_gb": 16, "cpus": 4, "pids": 4096, "shm_gb": 2, "scratch_gb": 4,
                    "base_image": None, "build_network": "host"}


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


def locked_down(limits: dict) -> dict:
    """What every harness container gets: no network, a read-only root with a scratch tmpfs, no
    capabilities or privilege gain, a non-root user, and the memory/pids/CPU limits."""
    return {"user": USER, "network_mode": "none", "read_only": True,
            "tmpfs": {SCRATCH: f"rw,nosuid,nodev,size={limits['scratch_bytes']}"}, "working_dir": SCRATCH,
            "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "mem_limit": limits["memory_bytes"],
            "memswap_limit": limits["memory_bytes"], "pids_limit": limits["pids"],
            "nano_cpus": int(limits["cpus"] * 1e9)}


def limits_for(team, settings: dict, engine_cpus: int | None = None) -> dict:
    """The container's limits: the manifest's, else params.yaml's; CPUs capped at what the engine has."""
    runtime = team.runtime
    memory_gb = runtime.get("memory_gb", settings["memory_gb"])
    cpus = runtime.get("cpus", settings["cpus"])
    if engine_cpus:
        cpus = min(cpus, engine_cpus)
    return {"memory_bytes": int(memory_gb * 2 ** 30), "cpus": cpus, "pids": settings["pids"],
            "shm_bytes": int(settings["shm_gb"] * 2 ** 30), "scratch_bytes": int(settings["scratch_gb"] * 2 ** 30),
            "timeout_s": runtime.get("timeout_s", 3600)}


class LineSplitter:
    """Turns the engine's log chunks into lines: copied to the log, progress lines reported."""

    def __init__(self, log, on_progress):
        self.log, self.on_progress, self.pending = log, on_progress, b""

    def feed(self, chunk: bytes) -> None:
        self.log.write(chunk)
        self.log.flush()
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            match = PROGRESS_LINE.match(line.decode(errors="replace").rstrip())
            if match and self.on_progress:
                self.on_progress(int(match.group(1)), int(match.group(2)), match.group(3))


class DockerRunner:
    name = "docker"
    ulimits: list = []  # none beyond the engine's defaults (podman needs some)

    def __init__(self, settings: dict | None = None, client=None, selection: str | None = None):
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.client = client or images.engine()
        self.selection = selection
        self.images: dict[str, dict] = {}
        self.engine_cpus = self.client.info().get("NCPU")

    def image_for(self, team, repo_root: Path, build_log: Path) -> dict:
        if team.id not in self.images:
            recipe = images.team_recipe(team, repo_root, self.settings["base_image"])
            try:
                info = images.ensure_image(self.client, recipe, repo_root, build_log, self.settings["build_network"])
            except images.ImageError as exc:
                raise InferenceFailed(exc.kind, f"{team.id}: {exc.message}", exc.hint, exc.log_tail) from None
            self.images[team.id] = {**info, "tag": recipe.tag}
        return self.images[team.id]

    def run_once(self, team, lr_dir: Path, out_dir: Path, weights_dir: Path, device: str, run_index: int,
                 log_path: Path, repo_root: Path, on_progress=None) -> None:
        from docker.errors import APIError
        from docker.types import Mount

        image = self.image_for(team, repo_root, log_path.parent / "build.log")
        limits = limits_for(team, self.settings, self.engine_cpus)
        out_dir.chmod(0o777)  # the container's user is not the host's; it writes only here
        empty_weights = None
        if not Path(weights_dir).is_dir():
            empty_weights = tempfile.TemporaryDirectory(prefix="harness-noweights-")
            weights_dir = Path(empty_weights.name)
        mounts = [Mount(LR_MOUNT, str(Path(lr_dir).resolve()), type="bind", read_only=True),
                  Mount(WEIGHTS_MOUNT, str(Path(weights_dir).resolve()), type="bind", read_only=True),
                  Mount(OUTPUT_MOUNT, str(Path(out_dir).resolve()), type="bind", read_only=False)]
        command = ["--manifest", f"/opt/harness/teams/{team.id}/manifest.yaml", "--input", LR_MOUNT,
                   "--output", OUTPUT_MOUNT, "--weights", WEIGHTS_MOUNT, "--device", device,
                   "--run-index", str(run_index), "--repo-root", "/opt/harness"]
        threads = str(max(1, math.ceil(limits["cpus"])))
        try:
            container = self.client.containers.create(
                image["id"], command=command, mounts=mounts, **locked_down(limits), shm_size=limits["shm_bytes"],
                device_requests=device_requests(self.settings["gpus"], device),
                environment={**CONTAINER_ENV, "OMP_NUM_THREADS": threads},
                labels={f"{images.LABEL}.team": team.id, f"{images.LABEL}.run-index": str(run_index)},
                ulimits=self.ulimits or None)
        except APIError as exc:
            raise _refused(team, device, exc) from None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        timed_out = False
        try:
            with open(log_path, "ab") as log:
                try:
                    container.start()
                except APIError as exc:
                    raise _refused(team, device, exc) from None
                splitter = LineSplitter(log, on_progress)
                reader = threading.Thread(target=lambda: [splitter.feed(c) for c in
                                                          container.logs(stream=True, follow=True)], daemon=True)
                reader.start()
                try:
                    code = container.wait(timeout=limits["timeout_s"])["StatusCode"]
                except Exception as exc:  # the client's read timeout: the container ran past its limit
                    if not _is_timeout(exc):
                        raise
                    timed_out = True
                    container.kill()
                    code = None
                reader.join(10)
            container.reload()
            state = container.attrs["State"]
        except BaseException:
            container.remove(force=True)  # Ctrl-C or an engine error: leave no container behind
            raise
        finally:
            if empty_weights:
                empty_weights.cleanup()
        container.remove(force=True)
        tail = log_tail(log_path)
        if timed_out:
            raise InferenceFailed("timeout", f"{team.id}: no result after {limits['timeout_s']} s "
                                  "(runtime.timeout_s); the container was killed", log_tail=tail)
        if code == 0:
            self._add_host_provenance(out_dir, image, limits, device, repo_root)
            return
        failure_file = out_dir / FAILURE
        if code == EXIT_FAILED and failure_file.exists():
            failure = json.loads(failure_file.read_text())
            raise InferenceFailed(failure["kind"], f"{team.id}: {failure['message']}", failure.get("hint"),
                                  log_tail=tail)
        if state.get("OOMKilled") or code == 137:
            raise InferenceFailed("out_of_memory", f"{team.id}: the container was killed at its memory limit of "
                                  f"{limits['memory_bytes'] / 2 ** 30:g} GiB (exit {code})",
                                  hint="raise runtime.memory_gb in the manifest or docker.memory_gb in params.yaml",
                                  log_tail=tail)
        raise InferenceFailed("nonzero_exit", f"{team.id}: the container exited with code {code}", log_tail=tail)

    def _add_host_provenance(self, out_dir: Path, image: dict, limits: dict, device: str, repo_root: Path) -> None:
        """What only the host knows: the image, the limits and lock-down, and the host's checkout."""
        path = out_dir / PROVENANCE
        provenance = json.loads(path.read_text())
        provenance["container"] = {
            "image": image["tag"], "image_id": image["id"], "repo_digests": image["repo_digests"],
            "limits": limits, "network": "none", "read_only_rootfs": True, "cap_drop": ["ALL"],
            "no_new_privileges": True, "user": USER,
            "gpus": str(self.settings["gpus"]) if device.startswith("cuda") else None}
        provenance["host"] = {**harness_info(repo_root), "pid": os.getpid()}
        write_json_atomic(path, provenance)


def _is_timeout(exc: Exception) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)) or \
        "timed out" in str(exc).lower()


def _refused(team, device: str, exc) -> InferenceFailed:
    """The engine would not create or start the container: no GPU runtime, or a bad setting."""
    reason = str(exc.explanation or exc)
    if device.startswith("cuda") and ("device driver" in reason or "gpu" in reason.lower()):
        return InferenceFailed("no_gpu", f"{team.id}: the engine cannot pass a GPU through: {reason}",
                               hint="install the NVIDIA Container Toolkit on the host, or run with --device cpu")
    return InferenceFailed("nonzero_exit", f"{team.id}: the engine refused the container: {reason}")
