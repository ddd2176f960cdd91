"""Docker images for teams and for the evaluator.

An image is built from a recipe under containers/ (the build context is the repository root, filtered
by .dockerignore), or taken as declared when a manifest pins one by digest. A built image is tagged
harness/<name>:<inputs> and labelled with the hash of everything it was built from (recipe, build
arguments, the harness package, the team folder), the manifest hash and the harness version, so it is
rebuilt only when one of those changes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness import __version__
from harness.catalogue.manifests import dockerfile_args
from harness.core.errors import ImageError

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

LABEL = "org.harness"
ENGINE_CHECK = "docker engine"  # the name of every finding about the engine (doctor, runners)
EVALUATOR_RECIPE = "evaluator"
# What every recipe copies from the repository root besides the team folder.
SHARED_INPUTS = ("harness", "schemas", "challenges", "requirements.lock")
ENGINE_TIMEOUT_S = 10


def engine(timeout: int = ENGINE_TIMEOUT_S):
    """A client of the Docker engine that answers, or ImageError('engine_unavailable')."""
    import docker
    from docker.errors import DockerException

    client = None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except (DockerException, OSError) as exc:
        if client is not None:
            client.close()
        raise ImageError("engine_unavailable", f"no Docker engine answers ({exc})",
                         hint="start dockerd (or set DOCKER_HOST), or use runner: local") from None


def engine_description(client) -> str:
    version = client.version()
    return f"Docker engine {version.get('Version')} at {client.api.base_url}"


def tree_digest(root: Path, relative_paths) -> str:
    """sha256 over the names and bytes of every file under the given paths (caches excluded)."""
    digest = hashlib.sha256()
    for relative in relative_paths:
        base = Path(root) / relative
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class ImageRecipe:
    """How to obtain one image: build `recipe` with `build_args`, or use `pinned` as it is."""

    name: str
    recipe: str | None
    pinned: str | None
    build_args: dict = field(default_factory=dict)
    inputs: str = ""
    labels: dict = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.pinned or f"harness/{self.name}:{self.inputs[:12]}"

    @property
    def dockerfile(self) -> str:
        return f"containers/{self.recipe}/Dockerfile"


def _recipe(repo_root: Path, name: str, recipe: str, build_args: dict, extra_inputs: tuple,
            labels: dict) -> ImageRecipe:
    dockerfile = Path(repo_root) / "containers" / recipe / "Dockerfile"
    if not dockerfile.is_file():
        raise ImageError("build_failed", f"no recipe {dockerfile.relative_to(repo_root)}")
    args = {k: str(v) for k, v in sorted(build_args.items()) if v is not None}
    inputs = hashlib.sha256(json.dumps({
        "dockerfile": dockerfile.read_text(), "build_args": args, "harness": __version__,
        "tree": tree_digest(repo_root, SHARED_INPUTS + extra_inputs)}, sort_keys=True).encode()).hexdigest()
    return ImageRecipe(name, recipe, None, args, inputs,
                       {f"{LABEL}.inputs": inputs, f"{LABEL}.version": __version__, f"{LABEL}.recipe": recipe,
                        **labels})


def team_recipe(team: Manifest, repo_root: Path, base_image: str | None = None) -> ImageRecipe:
    container = team.container
    if not container:
        raise ImageError("image_missing", f"{team.id} declares no container (recipe or pinned image)",
                         hint=f"add a container: section to {team.path}, or use runner: local")
    if container.get("image"):
        return ImageRecipe(team.id, None, container["image"],
                           labels={f"{LABEL}.manifest-hash": team.hash})
    args = {**container.get("build_args", {}), "TEAM_ID": team.id}
    if team.runtime.get("extra_packages") and "EXTRA_PACKAGES" in dockerfile_args(
            Path(repo_root) / "containers" / container["recipe"] / "Dockerfile"):
        args["EXTRA_PACKAGES"] = " ".join(team.runtime["extra_packages"])  # what the manifest says it needs
    if base_image:
        args["BASE_IMAGE"] = base_image
    return _recipe(repo_root, team.id, container["recipe"], args,
                   (f"teams/{team.id}", f"containers/{container['recipe']}"),
                   {f"{LABEL}.team": team.id, f"{LABEL}.manifest-hash": team.hash})


def evaluator_recipe(repo_root: Path, base_image: str | None = None) -> ImageRecipe:
    return _recipe(repo_root, "evaluator", EVALUATOR_RECIPE, {"BASE_IMAGE": base_image}, (), {})


def image_info(image) -> dict:
    return {"id": image.id, "tags": image.tags, "repo_digests": image.attrs.get("RepoDigests") or [],
            "size": image.attrs.get("Size"), "labels": image.labels}


def ensure_image(client, recipe: ImageRecipe, repo_root: Path, log_path: Path, network: str | None = None,
                 on_line=None) -> dict:
    """The image for `recipe`, built if absent; returns image_info plus whether and how long it built."""
    from docker.errors import APIError, ImageNotFound

    if recipe.pinned:
        try:
            return {**image_info(client.images.get(recipe.pinned)), "built": False}
        except ImageNotFound:
            pass
        try:
            return {**image_info(client.images.pull(recipe.pinned)), "built": False}
        except APIError as exc:
            raise ImageError("image_missing", f"image {recipe.pinned} is neither present nor pullable: "
                             f"{exc.explanation or exc}",
                             hint="load it with `docker load` or check the digest") from None
    try:
        return {**image_info(client.images.get(recipe.tag)), "built": False}
    except ImageNotFound:
        pass
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    with open(log_path, "w") as log:
        log.write(f"# docker build -f {recipe.dockerfile} -t {recipe.tag} "
                  + " ".join(f"--build-arg {k}={v}" for k, v in recipe.build_args.items()) + "\n")
        try:
            stream = client.api.build(path=str(repo_root), dockerfile=recipe.dockerfile, tag=recipe.tag,
                                      buildargs=recipe.build_args, labels=recipe.labels, network_mode=network,
                                      rm=True, forcerm=True, decode=True)
            for chunk in stream:
                text = chunk.get("stream") or chunk.get("status") or ""
                if chunk.get("error"):
                    error = chunk["error"]
                    text = chunk["error"] + "\n"
                if text:
                    log.write(text)
                    log.flush()
                    if on_line and text.strip():
                        on_line(text.strip())
        except APIError as exc:
            error = exc.explanation or str(exc)
            log.write(error + "\n")
    if error:
        from harness.adapter.protocol import log_tail

        raise ImageError("build_failed", f"building {recipe.tag} from {recipe.dockerfile} failed: "
                         f"{error.strip().splitlines()[-1]}", hint=f"full build log: {log_path}",
                         log_tail=log_tail(log_path))
    seconds = time.perf_counter() - start
    return {**image_info(client.images.get(recipe.tag)), "built": True, "build_s": round(seconds, 1)}
