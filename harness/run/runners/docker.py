"""Runs the adapter in the team's own image on a Docker engine, locked down.

The container gets no network, a read-only root file system with a tmpfs at /tmp, no capabilities,
no-new-privileges, a non-root user, memory/pids/CPU limits and a wall-clock timeout. The LR images
and the weights are mounted read-only; the output folder is the only writable mount.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from harness.adapter.protocol import PROVENANCE, LineSplitter, add_to_session, decode_exit, log_tail
from harness.core.errors import InferenceFailed
from harness.core.files import write_json_atomic
from harness.core.findings import Finding
from harness.core.provenance import session_info
from harness.core.settings import DockerSettings, Settings
from harness.run import docker_images
from harness.run.lockdown import CONTAINER_ENV, describe, device_requests, limits_for, locked_down
from harness.run.runners.base import RunRequest

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

LR_MOUNT, WEIGHTS_MOUNT, OUTPUT_MOUNT, CODE_MOUNT = "/data/lr", "/weights", "/output", "/opt/code"
IMAGE_ROOT = "/opt/harness"  # where every recipe puts the harness and the team folder


class DockerRunner:
    name = "docker"
    ulimits: list = []  # none beyond the engine's defaults (podman needs some)

    def __init__(self, settings: DockerSettings | None = None, client=None, selection: str | None = None):
        self.settings = settings or DockerSettings()
        self.client = client or docker_images.engine()
        self.selection = selection
        self.images: dict[str, dict] = {}
        self.engine_cpus = self.client.info().get("NCPU")

    def image_for(self, team: Manifest, repo_root: Path, build_log: Path) -> dict:
        if team.id not in self.images:
            recipe = docker_images.team_recipe(team, repo_root, self.settings.base_image)
            try:
                info = docker_images.ensure_image(self.client, recipe, repo_root, build_log,
                                                  self.settings.build_network)
            except docker_images.ImageError as exc:
                raise InferenceFailed(exc.kind, f"{team.id}: {exc.message}", exc.hint, exc.log_tail) from None
            self.images[team.id] = {**info, "tag": recipe.tag}
        return self.images[team.id]

    def run_once(self, request: RunRequest) -> None:
        from docker.errors import APIError

        team, device = request.team, request.device
        image = self.image_for(team, request.repo_root, request.log_path.parent / "build.log")
        limits = limits_for(team, self.settings, self.engine_cpus)
        request.out_dir.chmod(0o777)  # the container's user is not the host's; it writes only here
        empty_weights = None
        weights_dir = Path(request.weights_dir)
        if not weights_dir.is_dir():
            empty_weights = tempfile.TemporaryDirectory(prefix="harness-noweights-")
            weights_dir = Path(empty_weights.name)
        command = request.adapter_args(f"{IMAGE_ROOT}/teams/{team.id}/manifest.yaml", LR_MOUNT, OUTPUT_MOUNT,
                                       WEIGHTS_MOUNT, IMAGE_ROOT, CODE_MOUNT if request.code_dir else None)
        threads = str(max(1, math.ceil(limits["cpus"])))
        try:
            container = self.client.containers.create(
                image["id"], command=command, mounts=_mounts(request, weights_dir), **locked_down(limits),
                shm_size=limits["shm_bytes"], device_requests=device_requests(self.settings.gpus, device),
                environment={**CONTAINER_ENV, "OMP_NUM_THREADS": threads},
                labels={f"{docker_images.LABEL}.team": team.id,
                        f"{docker_images.LABEL}.run-index": str(request.run_index)},
                ulimits=self.ulimits or None)
        except APIError as exc:
            raise _refused(team, device, exc) from None
        try:
            code, state = _run_to_the_end(container, request, limits["timeout_s"])
        except BaseException:
            container.remove(force=True)  # Ctrl-C or an engine error: leave no container behind
            raise
        finally:
            if empty_weights:
                empty_weights.cleanup()
        container.remove(force=True)
        if code is None:
            raise InferenceFailed("timeout", f"{team.id}: no result after {limits['timeout_s']} s "
                                  "(runtime.timeout_s); the container was killed",
                                  log_tail=log_tail(request.log_path))
        decode_exit(team.id, code, request.out_dir, request.log_path, oom_killed=bool(state.get("OOMKilled")),
                    memory_limit_gb=limits["memory_bytes"] / 2 ** 30)
        self._add_host_provenance(request.out_dir, image, limits, device, request.repo_root)

    def _add_host_provenance(self, out_dir: Path, image: dict, limits: dict, device: str, repo_root: Path) -> None:
        """What only the host knows: the image, the limits and lock-down, and (in the session) the host's
        checkout and process."""
        path = out_dir / PROVENANCE
        provenance = json.loads(path.read_text())
        provenance["container"] = {
            "image": image["tag"], "image_id": image["id"], "repo_digests": image["repo_digests"],
            **describe(limits), "gpus": str(self.settings.gpus) if device.startswith("cuda") else None}
        write_json_atomic(path, provenance)
        add_to_session(out_dir, {"host": session_info(repo_root)})


def _mounts(request: RunRequest, weights_dir: Path) -> list:
    """LR and weights read only, the run's output folder the only writable one, the pinned checkout."""
    from docker.types import Mount

    mounts = [Mount(LR_MOUNT, str(Path(request.lr_dir).resolve()), type="bind", read_only=True),
              Mount(WEIGHTS_MOUNT, str(weights_dir.resolve()), type="bind", read_only=True),
              Mount(OUTPUT_MOUNT, str(Path(request.out_dir).resolve()), type="bind", read_only=False)]
    if request.code_dir:  # the pinned checkout the harness fetched, read only
        mounts.append(Mount(CODE_MOUNT, str(Path(request.code_dir).resolve()), type="bind", read_only=True))
    return mounts


def _run_to_the_end(container, request: RunRequest, timeout_s: float) -> tuple[int | None, dict]:
    """Start the container, follow its log into the run's log, wait for it: (exit code, or None when it
    ran past its time and was killed; its final state)."""
    from docker.errors import APIError

    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(request.log_path, "ab") as log:
        try:
            container.start()
        except APIError as exc:
            raise _refused(request.team, request.device, exc) from None
        splitter = LineSplitter(log, request.on_progress)
        reader = threading.Thread(target=_follow_logs, args=(container, splitter), daemon=True)
        reader.start()
        try:
            code = container.wait(timeout=timeout_s)["StatusCode"]
        except Exception as exc:  # the client's read timeout: the container ran past its limit
            if not _is_timeout(exc):
                raise
            container.kill()
            code = None
        reader.join(10)
    container.reload()
    return code, container.attrs["State"]


def _follow_logs(container, splitter) -> None:
    """Feed the container's output to the splitter until it ends. The client's read timeout also cuts a
    log stream when a container is quiet for a while: then follow again from that moment."""
    import time

    since = None
    while True:
        try:
            for chunk in container.logs(stream=True, follow=True, since=since):
                splitter.feed(chunk)
            return
        except Exception as exc:
            if not _is_timeout(exc):
                return  # the container is gone: wait() reports how it ended
            since = int(time.time())


def _is_timeout(exc: Exception) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)) or \
        "timed out" in str(exc).lower()


def _refused(team: Manifest, device: str, exc) -> InferenceFailed:
    """The engine would not create or start the container: no GPU runtime, or a bad setting."""
    reason = str(exc.explanation or exc)
    if device.startswith("cuda") and ("device driver" in reason or "gpu" in reason.lower()):
        return InferenceFailed("no_gpu", f"{team.id}: the engine cannot pass a GPU through: {reason}",
                               hint="install the NVIDIA Container Toolkit on the host, or run with --device cpu")
    return InferenceFailed("nonzero_exit", f"{team.id}: the engine refused the container: {reason}")


def make(settings: Settings, selection: str, client=None) -> DockerRunner:
    """The registry's factory (harness.core.registries.RUNNERS)."""
    from harness.run import docker_images

    client = client or docker_images.engine()
    return DockerRunner(settings.docker, client, f"{selection} ({docker_images.engine_description(client)})")


def check(settings: Settings, teams: list[Manifest], client=None) -> list[Finding]:
    """An engine that answers, and for a cuda device the NVIDIA runtime registered with it."""
    try:
        client = client or docker_images.engine()
    except docker_images.ImageError as exc:
        return [Finding(docker_images.ENGINE_CHECK, "missing", exc.message, exc.hint, failure="engine_unavailable")]
    out = [Finding(docker_images.ENGINE_CHECK, "ok", docker_images.engine_description(client))]
    if settings.device.startswith("cuda"):
        runtimes = client.info().get("Runtimes") or {}
        out.append(Finding("nvidia container runtime", "ok", "registered with the engine") if "nvidia" in runtimes
                   else Finding("nvidia container runtime", "missing", f"no_gpu: device {settings.device} asked, but "
                                f"the engine knows the runtimes {', '.join(runtimes) or 'none'}",
                                "install the NVIDIA Container Toolkit and restart dockerd", failure="no_gpu"))
    client.close()
    return out
