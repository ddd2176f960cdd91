"""The adapter that runs one team's model: the same code in the local runner and in every image.

    python -m harness.adapter --manifest teams/T/manifest.yaml --input LR --output OUT \
        --weights weights/T --device cpu [--run-index 1]

It writes one PNG per LR input under the same file name, and provenance.json beside them. On failure
it writes failure.json ({kind, message}) and exits 3.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness import __version__
from harness.adapter import teamcode
from harness.adapter.protocol import PROVENANCE, RUN_INDEX_VARIABLE, SESSION, progress_line, write_failure
from harness.catalogue import manifests as manifest_mod
from harness.core import records, registries
from harness.core.devices import check_device
from harness.core.errors import HarnessError, InferenceFailed, TypedFailure
from harness.core.files import sha256_file, write_json_atomic
from harness.core.provenance import session_info, torch_info
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import read_rgb8, write_rgb8

# How torch reports a failed allocation on CUDA and on the CPU.
OOM_MESSAGE = re.compile(r"out of memory|not enough memory|can't allocate memory|cannot allocate memory", re.I)


def lr_inputs(input_dir: Path) -> list[Path]:
    files = sorted(Path(input_dir).glob("*.png"))
    if not files:
        raise InferenceFailed("missing_input", f"no LR PNG in {input_dir}")
    return files


def to_uint8(tensor) -> np.ndarray:
    """The baseline's output rule: clamp to [0, 1], scale by 255, round, uint8."""
    return (tensor.clamp(0, 1).mul(255).round().byte().squeeze(0).permute(1, 2, 0).cpu().numpy())


def seed_everything(seed: int | None) -> None:
    if seed is None:
        return
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --- entry kinds (harness.core.registries.ENTRY_KINDS names the function of each) ----------------------

@dataclass(frozen=True)
class EntryCall:
    """What every entry kind's function is given: the team, its LR folder and images, where outputs go,
    its weights and code, the device and a progress callback(done, total, name)."""

    team: manifest_mod.Manifest
    input_dir: Path
    inputs: list[Path]
    output_dir: Path
    weights_dir: Path
    device: str
    code_dir: Path | None
    progress: Callable[[int, int, str], None]


def run_classical(call: EntryCall) -> dict[str, float]:
    return run_per_image(classical_predictor(call.team), call.inputs, call.output_dir, call.progress)


def run_spandrel(call: EntryCall) -> dict[str, float]:
    return run_per_image(spandrel_predictor(call.team, call.weights_dir, call.device), call.inputs, call.output_dir,
                         call.progress)


def run_none(call: EntryCall) -> dict[str, float]:
    raise InferenceFailed("not_runnable", f"{call.team.id} released no code")


def run_per_image(predict, inputs: list[Path], output_dir: Path, progress) -> dict[str, float]:
    times = {}
    for index, path in enumerate(inputs):
        start = time.perf_counter()
        write_rgb8(output_dir / path.name, predict(read_rgb8(path)))
        times[path.name] = time.perf_counter() - start
        progress(index + 1, len(inputs), path.name)
    return times


def classical_predictor(team: manifest_mod.Manifest):
    method = team.entry["method"]
    scale = team.runtime["scale"]
    if method == "bicubic":
        return lambda lr: imresize(lr, scale)
    raise InferenceFailed("entry_error", f"unknown classical method '{method}'")


def spandrel_predictor(team: manifest_mod.Manifest, weights_dir: Path, device: str):
    import spandrel
    import torch

    path = Path(weights_dir) / team.entry["weights"]
    if not path.is_file():
        raise InferenceFailed("weights_unavailable", f"{path} does not exist",
                              hint=f"run `harness fetch weights {team.id}`")
    descriptor = spandrel.ModelLoader(device=torch.device(device)).load_from_file(str(path))
    descriptor.eval()
    if descriptor.scale != team.runtime["scale"]:
        raise InferenceFailed("entry_error", f"{path.name} is a x{descriptor.scale} model, the manifest says "
                              f"x{team.runtime['scale']}")
    tile, overlap = team.entry.get("tile"), team.entry.get("tile_overlap", 0)

    def predict(lr: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(lr).permute(2, 0, 1).unsqueeze(0).float().div(255).to(device)
        with torch.no_grad():
            out = descriptor(tensor) if not tile else tiled(descriptor, tensor, tile, overlap, descriptor.scale)
        return to_uint8(out)

    return predict


def select_model_network(team: manifest_mod.Manifest, weights_dir: Path, device: str, code_dir: Path | None,
                         untrained: bool = False):
    """The team's network as the Efficient SR challenges' select_model builds it: the class with its
    arguments, the state dict from its place in the saved object, loaded with the code's strictness, then
    eval mode without gradients on the device. `untrained`: as constructed (seeded), for counts that need the
    architecture only."""
    entry = team.entry
    root, folder = teamcode.code_folders(team, code_dir)
    module = teamcode.import_team_module(team, root, folder, entry["module"])
    network_class = getattr(module, entry["class"], None)
    if network_class is None:
        raise InferenceFailed("entry_error", f"{entry['module']} defines no {entry['class']}")
    network = network_class(*teamcode.network_positional(entry), **entry.get("args", {}))
    if not untrained:
        _load_state(team, network, weights_dir)
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad = False
    return network.to(device)


def _load_state(team: manifest_mod.Manifest, network, weights_dir: Path) -> None:
    """The state dict from its place in the saved object, a prefix stripped, loaded with the code's strictness."""
    import torch

    entry = team.entry
    weight = next(w for w in team.weights if w["name"] == entry["weights"])
    path = teamcode.weights_file(Path(weights_dir), weight)
    if not path.is_file():
        raise InferenceFailed("weights_unavailable", f"{path} does not exist",
                              hint=f"run `harness fetch weights {team.id}`")
    state = teamcode.state_dict_at(torch.load(path, map_location="cpu", weights_only=False),
                                   entry.get("state_key", "raw"))
    prefix = entry.get("strip_prefix")
    if prefix:
        state = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}
    try:
        network.load_state_dict(state, strict=entry.get("strict", True))
    except RuntimeError as exc:
        raise InferenceFailed("weights_mismatch", f"{path.name} does not fit {entry['class']}: "
                              f"{str(exc).splitlines()[0][:300]}") from None


def select_model_predictor(network, team: manifest_mod.Manifest, device: str, stopwatch):
    """One image through the network as the organizers' test_demo.py runs it: uint8 to [0, data_range],
    the whole image (or tiles), back to uint8 by clamping and rounding; the forward pass timed."""
    import torch

    entry, scale = team.entry, team.runtime["scale"]
    data_range = float(entry.get("data_range", 1.0))
    tile, overlap = entry.get("tile"), entry.get("tile_overlap", 32)

    def predict(lr: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).float().div(255.0 / data_range)
        tensor = tensor.unsqueeze(0).to(device)
        with torch.no_grad():
            out = stopwatch.time(lambda: network(tensor) if not tile else averaged_tiles(network, tensor, tile,
                                                                                         overlap, scale))
        out = out.data.squeeze().float().clamp_(0, data_range).cpu().numpy()
        return (np.transpose(out, (1, 2, 0)) * 255.0 / data_range).round().astype(np.uint8)

    return predict


def averaged_tiles(model, image, tile: int, overlap: int, scale: int):
    """The Efficient SR challenges' tiling: tiles of `tile` LR pixels every tile - overlap, outputs summed
    and divided by how many tiles covered each pixel."""
    import torch

    _, channels, height, width = image.shape
    tile = min(tile, height, width)
    stride = tile - overlap
    rows = list(range(0, height - tile, stride)) + [height - tile]
    columns = list(range(0, width - tile, stride)) + [width - tile]
    total = torch.zeros(1, channels, height * scale, width * scale, dtype=image.dtype, device=image.device)
    weight = torch.zeros_like(total)
    for top in rows:
        for left in columns:
            out = model(image[..., top:top + tile, left:left + tile])
            total[..., top * scale:(top + tile) * scale, left * scale:(left + tile) * scale].add_(out)
            weight[..., top * scale:(top + tile) * scale, left * scale:(left + tile) * scale].add_(1)
    return total.div_(weight)


def run_select_model(call: EntryCall) -> dict[str, float]:
    """Every image through the network, then the model metrics, into MODEL_FILE beside the outputs."""
    from harness.adapter import model_metrics
    from harness.catalogue import challenges

    team, inputs, output_dir, device = call.team, call.inputs, call.output_dir, call.device
    weights_dir, code_dir, progress = call.weights_dir, call.code_dir, call.progress
    untrained = model_metrics.untrained_reason(team, weights_dir)
    if untrained:
        seed_everything(0)  # the same untrained network every time
    with teamcode.cpu_stand_ins(device):
        network = select_model_network(team, weights_dir, device, code_dir, untrained=bool(untrained))
        stopwatch = model_metrics.Stopwatch(device)
        times = run_per_image(select_model_predictor(network, team, device, stopwatch), inputs, output_dir, progress)
        rules = challenges.get(team.data["challenge"])
        probe = tuple(rules.data.get("model_probe", model_metrics.PROBE))
        stats = model_metrics.measure(network, device, probe, rules.model_counter)
    if untrained:
        stats["untrained"] = untrained
    runtime_ms = {p.name: round(ms, 4) for p, ms in zip(inputs, stopwatch.times, strict=True)}
    write_json_atomic(output_dir / model_metrics.MODEL_FILE, records.model_record(stats, device, stopwatch.clock(),
                                                                                runtime_ms))
    return times


def tiled(model, image, tile: int, overlap: int, scale: int):
    """Run model over overlapping tiles; each output pixel comes from the tile whose core holds it."""
    import torch

    _, channels, height, width = image.shape
    out = torch.zeros(1, channels, height * scale, width * scale, dtype=image.dtype, device=image.device)
    step = tile
    for top in range(0, height, step):
        for left in range(0, width, step):
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t1, l1 = min(top + step + overlap, height), min(left + step + overlap, width)
            result = model(image[:, :, t0:t1, l0:l1])
            core_h, core_w = min(step, height - top), min(step, width - left)
            ot, ol = (top - t0) * scale, (left - l0) * scale
            out[:, :, top * scale:(top + core_h) * scale, left * scale:(left + core_w) * scale] = \
                result[:, :, ot:ot + core_h * scale, ol:ol + core_w * scale]
    return out


def run_ntire_main(call: EntryCall) -> dict[str, float]:
    """Call the team's callable with the organizers' arguments; time outputs by their appearance."""
    import torch

    team, input_dir, output_dir, weights_dir, device = (call.team, call.input_dir, call.output_dir, call.weights_dir,
                                                        call.device)
    entry = team.entry
    root, folder = teamcode.code_folders(team, call.code_dir)
    module = teamcode.import_team_module(team, root, folder, entry["module"])
    teamcode.check_weights(team, root, folder, Path(weights_dir))
    function = getattr(module, entry.get("function", "main"), None)
    if function is None:
        raise InferenceFailed("entry_error", f"{entry['module']} defines no {entry.get('function', 'main')}()")
    model_dir = teamcode.model_dir_argument(team, Path(weights_dir))
    target = output_dir / entry["output_dir_name"] if entry.get("output_dir_name") else output_dir
    target.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with teamcode.organizers_workdir(root, entry.get("working_dir_links", {}), Path(weights_dir)), \
            teamcode.cpu_stand_ins(device):
        function(model_dir=model_dir, input_path=str(input_dir), output_path=str(target),
                 device=torch.device(device), **entry.get("kwargs", {}))
    restore_output_names(target, output_dir, entry.get("output_name"))
    times, previous = {}, start
    for path in sorted(output_dir.glob("*.png"), key=lambda p: p.stat().st_mtime):
        times[path.name] = path.stat().st_mtime - previous
        previous = path.stat().st_mtime
    return times


def restore_output_names(target: Path, output_dir: Path, output_name: str | None) -> None:
    """Move outputs out of a required sub-folder and undo a renaming pattern, keeping the LR names."""
    pattern = None
    if output_name:
        head, _, tail = output_name.partition("{stem}")
        pattern = re.compile(re.escape(head) + r"(?P<stem>.+)" + re.escape(tail) + "$")
    for path in sorted(target.glob("*.png")):
        name = path.name
        match = pattern.match(name) if pattern else None
        if match:
            name = f"{match.group('stem')}.png"
        if path != output_dir / name:
            os.replace(path, output_dir / name)
    if target != output_dir:
        shutil.rmtree(target, ignore_errors=True)


# --- main ------------------------------------------------------------------------------------

def run(manifest_path: Path, input_dir: Path, output_dir: Path, weights_dir: Path, device: str,
        run_index: int = 1, repo_root: Path | None = None, progress=None, code_dir: Path | None = None) -> dict:
    team = manifest_mod.load(manifest_path)
    repo_root = repo_root or Path.cwd()
    output_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or (lambda done, total, name: None)
    if device.split(":")[0] not in team.runtime.get("devices", ["cpu", "cuda"]):
        raise InferenceFailed("unsupported_device", f"{team.id} does not run on {device}")
    check_device(device)
    inputs = lr_inputs(input_dir)
    seed_everything(team.seed)
    os.environ[RUN_INDEX_VARIABLE] = str(run_index)  # for team code that varies by run (and its children)
    started = datetime.now(timezone.utc)
    wall = time.perf_counter()
    kind = team.entry["kind"]
    entry_kind = registries.entry_kind(kind)
    times = registries.load(entry_kind.run)(EntryCall(team, input_dir, inputs, output_dir, Path(weights_dir), device,
                                                   code_dir, progress))
    wall = time.perf_counter() - wall
    record = records.provenance(team, run_index, kind, __version__, torch_info(device),
                                {p.name: sha256_file(p) for p in inputs}, weights_checksums(team, Path(weights_dir)),
                                {p.name: sha256_file(p) for p in sorted(output_dir.glob("*.png"))})
    write_json_atomic(output_dir / PROVENANCE, record)
    write_json_atomic(output_dir / SESSION, records.run_session(
        session_info(repo_root), started.isoformat(timespec="seconds"), round(wall, 4),
        {k: round(v, 4) for k, v in times.items()}, entry_kind.timing))
    return record


def weights_checksums(team: manifest_mod.Manifest, weights_dir: Path) -> dict:
    """sha256 of every weights file the run could read (each file of a declared folder)."""
    out = {}
    for weight in team.weights:
        path = weights_dir / weight["name"]
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out.update({str(f.relative_to(weights_dir)): sha256_file(f) for f in files if f.exists()})
    return out


def write_stand_ins(manifest_path: Path, output_dir: Path, code_dir: Path | None = None) -> list[Path]:
    """Stand-in weights for every described network of the team, written into output_dir."""
    team = manifest_mod.load(manifest_path)
    root, folder = teamcode.code_folders(team, code_dir)
    written = teamcode.write_random_weights(team, root, folder, output_dir)
    write_json_atomic(output_dir / PROVENANCE, records.stand_ins(team.id, {p.name: sha256_file(p) for p in written}))
    return written


def smoke(manifest_path: Path, input_dir: Path, output_dir: Path, device: str, repo_root: Path, progress,
          code_dir: Path | None = None) -> dict:
    """Stand-in weights written into a scratch folder, then inference on them twice (runs 1 and 2, as repeats
    are numbered), in this one process: the provenance says whether the two runs' outputs were byte-identical."""
    team = manifest_mod.load(manifest_path)
    root, folder = teamcode.code_folders(team, code_dir)
    with tempfile.TemporaryDirectory(prefix="harness-stand-ins-") as weights, \
            tempfile.TemporaryDirectory(prefix="harness-repeat-") as again:
        teamcode.write_random_weights(team, root, folder, Path(weights))
        first = run(manifest_path, input_dir, output_dir, Path(weights), device, 1, repo_root, progress, code_dir)
        second = run(manifest_path, input_dir, Path(again), Path(weights), device, 2, repo_root, None, code_dir)
    differing = sorted(name for name, digest in first["outputs_sha256"].items()
                       if second["outputs_sha256"].get(name) != digest)
    first["repeat"] = {"run_index": 2, "identical": not differing, "differing": differing}
    write_json_atomic(output_dir / PROVENANCE, first)
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.adapter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--input", type=Path, help="folder of LR PNGs (read only)")
    parser.add_argument("--output", required=True, type=Path, help="folder for SR PNGs (or the stand-in weights)")
    parser.add_argument("--weights", type=Path, help="the team's model directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run-index", type=int, default=1)
    parser.add_argument("--repo-root", type=Path, default=Path.cwd())
    parser.add_argument("--code-dir", type=Path, default=None,
                        help="checkout of the team's code repository (default: $HARNESS_CODE_DIR or /opt/code)")
    parser.add_argument("--task", choices=("infer", "stand-ins", "smoke"), default="infer",
                        help="infer: run the team; stand-ins: write randomly initialised weights for its networks; "
                             "smoke: both, inferring with the stand-ins")
    args = parser.parse_args(argv)
    if args.task in ("infer", "smoke") and args.input is None:
        parser.error(f"--input is required to {args.task}")
    if args.task == "infer" and args.weights is None:
        parser.error("--weights is required to infer")

    def progress(done, total, name):
        print(progress_line(done, total, name), flush=True)

    try:
        if args.task == "stand-ins":
            write_stand_ins(args.manifest, args.output, args.code_dir)
        elif args.task == "smoke":
            smoke(args.manifest, args.input, args.output, args.device, args.repo_root, progress, args.code_dir)
        else:
            run(args.manifest, args.input, args.output, args.weights, args.device, args.run_index,
                args.repo_root, progress, args.code_dir)
    except TypedFailure as exc:
        return _fail(args.output, exc.kind, exc.message, exc.hint)
    except HarnessError as exc:
        return _fail(args.output, "entry_error", exc.message, exc.hint)
    except Exception as exc:
        kind = "out_of_memory" if isinstance(exc, MemoryError) or OOM_MESSAGE.search(str(exc)) else "entry_error"
        traceback.print_exc()
        return _fail(args.output, kind, f"{type(exc).__name__}: {exc}", None)
    return 0


def _fail(output_dir: Path, kind: str, message: str, hint: str | None) -> int:
    print(f"failed ({kind}): {message}", file=sys.stderr, flush=True)
    return write_failure(output_dir, kind, message, hint)


teamcode.install_from_environment()  # a spawned child resolves the team's import names like its parent


if __name__ == "__main__":
    sys.exit(main())
