"""Every learned metric and the perceptual score, computed by `harness evaluate` from a stand-in cache, equal
pyiqa called the way the organizers' eval.py calls it, value for value (NIQE: the harness's own code, within
the tolerance docs/scoring.md gives). The stand-ins are built once for the session (about 2 GiB, under a
minute); ManIQA costs about a minute per image on a CPU, whatever its size."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.score.niqe import PYIQA_AGREEMENT_REL

from conftest import harness_cli

pytestmark = pytest.mark.slow
LEARNED = ["lpips", "dists", "musiq", "maniqa", "clipiqa"]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def stand_in_cache(tmp_path_factory, downloads) -> Path:
    from harness.fetch import stand_in_files

    cache = tmp_path_factory.mktemp("stand-in-weights")
    stand_in_files.build(cache, downloads)
    return cache


@pytest.fixture(scope="session")
def small_pairs(mini_data, tmp_path_factory) -> Path:
    """A 96x128 crop of one mini HR image and a whole 320x320 one (past torch's 32768-element grain, so its sums
    are split across threads), and x4 outputs made from them by area down, bicubic up."""
    folder = tmp_path_factory.mktemp("small")
    for name, (height, width) in (("0001.png", (96, 128)), ("0002.png", (320, 320))):
        hr = cv2.imread(str(mini_data / "mini" / "HR" / name))[:height, :width]
        sr = cv2.resize(cv2.resize(hr, (width // 4, height // 4), interpolation=cv2.INTER_AREA), (width, height),
                        interpolation=cv2.INTER_CUBIC)
        for sub, image, file in (("HR", hr, name), ("SR", sr, name.replace(".png", "x4.png"))):
            (folder / sub).mkdir(exist_ok=True)
            cv2.imwrite(str(folder / sub / file), image)
    return folder


def organizers_values(cache: Path, pairs: Path, names: list[str]) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "organizers_way.py"), str(cache), str(pairs / "SR"),
                           str(pairs / "HR"), ",".join(names)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def organizers_threads() -> int:
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def organizers_score(means: dict) -> float:
    """eval.py's Total Score, its terms added in its order (the metric names sorted)."""
    total = 0.0
    for name in sorted(["clipiqa", "dists", "lpips", "maniqa", "musiq", "niqe"]):
        value = means[name]
        total += {"dists": 1 - value, "lpips": 1 - value, "niqe": max(0, (10 - value) / 10),
                  "musiq": value / 100}.get(name, value)
    return total


def test_learned_metrics_and_the_score_equal_the_organizers(stand_in_cache, small_pairs, tmp_path):
    """Two workers allowed: the learned metrics are still scored in one process with torch's default threads,
    as eval.py scores them (one-thread workers changed LPIPS and CLIP-IQA in the last bits on 2K images)."""
    names = ["psnr", "ssim", "niqe", *LEARNED, "perceptual_score"]
    done = harness_cli("evaluate", "--sr", str(small_pairs / "SR"), "--hr", str(small_pairs / "HR"), "--metrics",
                       ",".join(names), "--workers", "2", "--json", str(tmp_path / "e.json"), cwd=tmp_path,
                       env={"HARNESS_METRIC_WEIGHTS": str(stand_in_cache)})
    assert done.returncode == 0, done.stderr
    assert "STAND-IN" in done.stdout
    ours = json.loads((tmp_path / "e.json").read_text())
    assert ours["torch_threads"] == organizers_threads()
    assert ours["stand_in"] is True and ours["unavailable"] == {} and ours["findings"] == []
    theirs = organizers_values(stand_in_cache, small_pairs, ["niqe", *LEARNED])
    for output, values in theirs.items():
        row = ours["per_image"][output.replace("x4.png", "")]
        assert {n: row[n] for n in LEARNED} == {n: values[n] for n in LEARNED}, output  # bit for bit
        assert row["niqe"] == pytest.approx(values["niqe"], rel=PYIQA_AGREEMENT_REL)
    means = {n: float(np.mean([v[n] for v in theirs.values()])) for n in ["niqe", *LEARNED]}
    niqe_slack = abs(ours["mean"]["niqe"] - means["niqe"]) / 10
    assert abs(ours["mean"]["perceptual_score"] - organizers_score(means)) <= niqe_slack + 1e-12
    exact = organizers_score({**means, "niqe": ours["mean"]["niqe"]})
    assert ours["mean"]["perceptual_score"] == pytest.approx(exact, abs=1e-12)


def test_two_builds_are_the_same_bytes(stand_in_cache, tmp_path, downloads):
    from harness.fetch import stand_in_files, stand_ins

    assert stand_in_files.build(tmp_path / "again", downloads) == stand_ins.marked_digests(stand_in_cache)


def test_a_strictly_loaded_file_with_other_keys_is_refused_naming_it(stand_in_cache, tmp_path):
    """ManIQA's checkpoint cannot be checked on the meta device: pyiqa's strict load refuses it, and the harness
    names the file with a typed error."""
    import torch

    from harness.fetch import metric_pins, stand_in_files, stand_ins
    from harness.score import formulas

    cache = tmp_path / "cache"
    for entry in ("torch", "huggingface"):  # the stand-ins by link, ManIQA's checkpoint replaced
        (cache / entry).mkdir(parents=True)
        for item in (stand_in_cache / entry).iterdir():
            (cache / entry / item.name).symlink_to(item)
    pyiqa_dir = cache / "torch" / "hub"
    (pyiqa_dir).unlink()
    pyiqa_dir.mkdir()
    for item in (stand_in_cache / "torch" / "hub").iterdir():
        if item.name != "pyiqa":
            (pyiqa_dir / item.name).symlink_to(item)
    (pyiqa_dir / "pyiqa").mkdir()
    for item in (stand_in_cache / "torch" / "hub" / "pyiqa").iterdir():
        if item.name != "ckpt_koniq10k.pt":
            (pyiqa_dir / "pyiqa" / item.name).symlink_to(item)
    stand_in_files.save_torch(pyiqa_dir / "pyiqa" / "ckpt_koniq10k.pt", {"head.weight": torch.zeros(1)})
    digests = {**stand_ins.marked_digests(stand_in_cache),
               "torch/hub/pyiqa/ckpt_koniq10k.pt": metric_pins.digest_of(pyiqa_dir / "pyiqa" / "ckpt_koniq10k.pt")}
    stand_ins.write_marker(cache, digests)
    code = ("import sys; from pathlib import Path; from harness.score import formulas\n"
            "try:\n    formulas.PyiqaMetrics(Path(sys.argv[1])).get('maniqa')\n"
            "except Exception as exc:\n    print(type(exc).__name__, getattr(exc, 'kind', ''), exc.message)")
    done = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True, text=True)
    said = done.stdout.split("WrongWeightFile ", 1)[-1]
    assert said.startswith("wrong_metric_weights maniqa: torch/hub/pyiqa/ckpt_koniq10k.pt"), done.stdout + done.stderr
    assert 'Unexpected key(s) in state_dict: "head.weight"' in said or said.endswith(" …\n")
    assert formulas.weights_unavailable("maniqa", cache) is None  # its digest is the marked one: only the keys fail
