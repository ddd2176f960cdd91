"""NIQE of the harness (harness/score/niqe.py, numpy) against pyiqa 0.1.13's on this CPU's arithmetic paths: pyiqa in
a child process per path (ATEN_CPU_CAPABILITY, MKL_CBWR), the same 2K images (the mini photographs enlarged
to 2040x1356, as benchmarks/bench_evaluation.py makes them). Prints a table of relative differences per image
and path, and writes them as JSON. No thresholds: the numbers set NIQE's tolerance (docs/scoring.md).

    python benchmarks/niqe_paths.py --cache METRIC_WEIGHTS [--images 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = {  # name: environment of the child process running pyiqa
    "auto": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "default": {"ATEN_CPU_CAPABILITY": "default"},
    "default+cbwr": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
}
PYIQA = textwrap.dedent("""
    import json, sys
    import numpy as np, torch, pyiqa, cv2
    metric = pyiqa.create_metric("niqe", device="cpu")
    out = {}
    for path in sys.argv[1:]:
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        out[path] = float(metric(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0))
    print(json.dumps(out))
""")


def pyiqa_values(cache: Path, images: list[Path], environment: dict) -> dict[str, float]:
    from harness.score import formulas

    env = {**os.environ, **formulas.cache_env(cache), **environment}
    done = subprocess.run([sys.executable, "-c", PYIQA, *map(str, images)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def harness_values(cache: Path, images: list[Path]) -> dict[str, float]:
    from harness.catalogue.metrics import METRICS
    from harness.imaging.pictures import read_rgb8
    from harness.score import niqe

    model = niqe.PristineModel.load(cache / METRICS["niqe"].weight_files[0].path)
    return {str(p): niqe.score(read_rgb8(p), model) for p in images}


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_evaluation import make_images

    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        sr_dir, _ = make_images(Path(scratch), args.images)
        images = sorted(sr_dir.glob("*.png"))
        ours = harness_values(args.cache, images)
        print(json.dumps({"harness": ours}), flush=True)
        theirs = {}
        for name, env in PATHS.items():  # each path as it comes: a long run still leaves its numbers
            theirs[name] = pyiqa_values(args.cache, images, env)
            print(json.dumps({name: theirs[name]}), flush=True)
    rows = {Path(p).name: {"harness": v, **{n: theirs[n][p] for n in PATHS}} for p, v in ours.items()}
    print(f"{'image':<12}{'harness':>12}" + "".join(f"{n:>24}" for n in PATHS))
    for image, row in rows.items():
        cells = "".join(f"{row[n]:>12.6f} {abs(row[n] - row['harness']) / row['harness']:>10.1e}" for n in PATHS)
        print(f"{image:<12}{row['harness']:>12.6f}{cells}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
