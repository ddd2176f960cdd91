"""The runner contract: what every way of executing the adapter takes and does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.catalogue.manifests import Manifest

ImageProgress = Callable[[int, int, str], None]  # done, total, image name (the adapter's progress lines)


@dataclass(frozen=True)
class RunRequest:
    """One pass of the adapter over an LR folder into a fresh output folder."""

    team: Manifest
    lr_dir: Path
    out_dir: Path
    weights_dir: Path
    device: str
    run_index: int
    log_path: Path
    repo_root: Path
    on_progress: ImageProgress | None = None
    code_dir: Path | None = None  # the checkout of the team's code repository, for code_root 'code'
    task: str = "infer"  # infer; stand-ins (write randomly initialised weights into out_dir); smoke (both)

    def adapter_args(self, manifest: str, lr: str, out: str, weights: str, repo_root: str,
                     code_dir: str | None = None) -> list[str]:
        """The adapter's command-line arguments, with paths as the adapter will see them."""
        args = ["--manifest", manifest, "--output", out, "--device", self.device, "--task", self.task,
                "--run-index", str(self.run_index), "--repo-root", repo_root]
        if self.task in ("infer", "smoke"):
            args += ["--input", lr]
        if self.task == "infer":
            args += ["--weights", weights]
        return args + (["--code-dir", code_dir] if code_dir else [])


class Runner(Protocol):
    name: str
    selection: str | None  # why this runner was chosen (runner: auto), for the log and the record

    def run_once(self, request: RunRequest) -> None:
        """Run the adapter once; return when the outputs are in request.out_dir, or raise InferenceFailed."""
