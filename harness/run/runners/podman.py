"""Runs the adapter with Podman, which needs no daemon: a `podman system service` is started on a
private socket for as long as the runner lives, and the Docker runner's code drives it through its
Docker-compatible API, with the same lock-down. Podman also needs explicit nofile/nproc limits to
start a container on hosts like this one."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.findings import Finding
from harness.core.settings import DockerSettings, Settings
from harness.run.runners.docker import DockerRunner

START_TIMEOUT_S = 20


class PodmanService:
    """`podman system service` on a socket in a private folder, stopped at exit."""

    def __init__(self):
        if not shutil.which("podman"):
            raise HarnessError("podman is not installed", hint="install podman, or use runner: docker or local")
        self.folder = Path(tempfile.mkdtemp(prefix="harness-podman-"))
        self.url = f"unix://{self.folder / 'podman.sock'}"
        self.log = open(self.folder / "service.log", "wb")
        self.process = subprocess.Popen(["podman", "system", "service", "--time=0", self.url],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        self.client = self._connect()

    def _connect(self):
        import docker

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                client = docker.DockerClient(base_url=self.url, timeout=10)
                client.ping()
                return client
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise HarnessError(f"podman system service did not answer on {self.url}",
                           hint=f"see {self.folder / 'service.log'}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


class PodmanRunner(DockerRunner):
    name = "podman"

    def __init__(self, settings: DockerSettings | None = None, selection: str | None = None):
        from docker.types import Ulimit

        self.service = PodmanService()
        super().__init__(settings, self.service.client, selection)
        self.ulimits = [Ulimit(name="nofile", soft=1024, hard=1024), Ulimit(name="nproc", soft=1024, hard=1024)]


def make(settings: Settings, selection: str) -> PodmanRunner:
    """The registry's factory (harness.core.registries.RUNNERS)."""
    return PodmanRunner(settings.docker,
                        selection=f"{selection} (a `podman system service` of its own)")


def check(settings: Settings, teams: list) -> list[Finding]:
    """Podman itself: its service is started by the runner."""
    podman = shutil.which("podman")
    return [Finding("podman", "ok", podman) if podman else
            Finding("podman", "missing", "podman is not installed", "apt-get install podman",
                    failure="engine_unavailable")]
