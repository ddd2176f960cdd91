"""The cost of running a team in its locked-down container, as a ratio against the local runner in this run.

For each mini-suite team, one pass over the mini LR images with the local runner and with the docker
runner (its image built first and not timed), best of N, plus the image's size. Ratios > 1 mean the
container is slower; the difference is the per-run container overhead (create, start, torch import in
a cold layer, teardown). Needs an engine and the local base (`make engine`); no thresholds.

    python benchmarks/bench_docker.py [--repeat 3] [--base-image harness-local/pytorch:2.6.0]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from harness.catalogue import datasets as data_mod
from harness.catalogue import roster
from harness.core.project import Project
from harness.core.settings import DockerSettings
from harness.fetch import dataset_files
from harness.run import docker_images
from harness.run.runners.base import RunRequest
from harness.run.runners.docker import DockerRunner
from harness.run.runners.local import LocalRunner

TEAMS = ["bicubic", "realesr-animevideov3", "realesrgan-x4plus"]


def one_pass(runner, team, proj: Project, lr_dir: Path) -> float:
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    (scratch / "out").mkdir()
    try:
        start = time.perf_counter()
        runner.run_once(RunRequest(team, lr_dir, scratch / "out", proj.team_weights(team.id), "cpu", 1,
                                   scratch / "run.log", proj.root))
        return time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base-image", default="harness-local/pytorch:2.6.0")
    args = parser.parse_args()
    proj = Project.find()
    mini = data_mod.get("mini")
    dataset_files.fetch(mini, proj.data_dir)
    lr_dir = mini.lr_dir(proj.data_dir)
    docker = DockerRunner(DockerSettings(base_image=args.base_image, cpus=2, memory_gb=4), docker_images.engine())
    local = LocalRunner()
    print(f"{'team':24} {'local s':>8} {'docker s':>9} {'overhead s':>11} {'ratio':>6} {'image GB':>9}")
    for team_id in TEAMS:
        team = roster.load(proj, team_id)
        image = docker.image_for(team, proj.root, proj.root / ".cache" / "bench-build.log")
        one_pass(docker, team, proj, lr_dir)  # warm-up: the first container of a new image reads cold layers
        local_s = min(one_pass(local, team, proj, lr_dir) for _ in range(args.repeat))
        docker_s = min(one_pass(docker, team, proj, lr_dir) for _ in range(args.repeat))
        print(f"{team_id:24} {local_s:8.2f} {docker_s:9.2f} {docker_s - local_s:11.2f} "
              f"{docker_s / local_s:6.2f} {image['size'] / 1e9:9.2f}")


if __name__ == "__main__":
    main()
