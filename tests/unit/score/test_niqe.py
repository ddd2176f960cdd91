"""The harness's NIQE against pyiqa 0.1.13's own, on real photographs of several sizes (scikit-image's,
as the mini suite holds them, cut to sizes whose rows and columns are not multiples of the kernels'
vector widths, and one enlarged to a 2K frame), with NIQE's real parameter file from PyPI.

pyiqa's value depends on the CPU's arithmetic (harness.score.niqe says how), so its reference runs in a child
process whose torch and MKL are held to plain IEEE float32 operations, as on an AVX2 machine without MKL's
fused kernels: the same values on every machine the suite runs on."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.catalogue.datasets import mini_images
from harness.core.errors import EvaluationError
from harness.imaging.matlab_resize import imresize
from harness.score import niqe

PYIQA_NIQE = "torch/hub/pyiqa/niqe_modelparameters.mat"
SIZES = [(96, 96), (131, 250), (300, 451), (509, 386)]  # height x width
PLAIN_ARITHMETIC = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}

REFERENCE = textwrap.dedent("""
    import json, sys
    import numpy as np, torch, pyiqa
    from pyiqa.matlab_utils import imresize
    folder = sys.argv[1]
    names = json.load(open(f"{folder}/names.json"))
    metric = pyiqa.create_metric("niqe", device="cpu")
    values = {n: float(metric(torch.from_numpy(np.load(f"{folder}/{n}.npy")).permute(2, 0, 1)[None].float() / 255.0))
              for n in names}
    luma = np.load(f"{folder}/luma.npy")
    np.save(f"{folder}/half.npy", imresize(torch.from_numpy(luma)[None, None] / 255.0, scale=0.5,
                                           antialiasing=True)[0, 0].numpy())
    np.save(f"{folder}/grid.npy", torch.arange(0.2, 10 + 0.001, 0.001).double().numpy())
    print(json.dumps(values))
""")


def photographs() -> dict[str, np.ndarray]:
    photos = list(mini_images().values())
    out = {}
    for index, (height, width) in enumerate(SIZES):
        photo = photos[index % len(photos)]
        while photo.shape[0] < height or photo.shape[1] < width:
            photo = imresize(photo, 2)
        out[f"{width}x{height}"] = np.ascontiguousarray(photo[:height, :width])
    out["2040x1356"] = imresize(imresize(photos[0], 4), 1.6)[:1356, :2040]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, niqe_cache):
    """pyiqa's values, its half-size image and its shape grid, from a child process."""
    from harness.score import formulas

    folder = tmp_path_factory.mktemp("niqe-reference")
    photos = photographs()
    for name, photo in photos.items():
        np.save(folder / f"{name}.npy", photo)
    (folder / "names.json").write_text(json.dumps(list(photos)))
    np.save(folder / "luma.npy", np.round(np.random.default_rng(7).random((288, 391)) * 255))
    env = {**os.environ, **formulas.cache_env(niqe_cache), **PLAIN_ARITHMETIC}
    done = subprocess.run([sys.executable, "-c", REFERENCE, str(folder)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folder, photos, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def model(niqe_cache):
    return niqe.PristineModel.load(niqe_cache / PYIQA_NIQE)


@pytest.mark.parametrize("name", [f"{w}x{h}" for h, w in SIZES] + ["2040x1356"])
def test_niqe_equals_pyiqa_on_real_photographs(name, reference, model):
    _, photos, values = reference
    ours = niqe.score(photos[name], model)
    assert abs(ours - values[name]) <= 1e-9 * abs(values[name]), (name, ours, values[name])


def test_the_half_size_image_and_the_shape_grid_are_pyiqas_bit_for_bit(reference):
    folder = reference[0]
    luma = np.load(folder / "luma.npy")
    assert np.array_equal(niqe._half_size(luma / 255.0).astype(np.float64), np.load(folder / "half.npy"))
    assert np.array_equal(niqe.SHAPES, np.load(folder / "grid.npy"))


def test_a_float_image_in_0_1_scores_as_its_bytes_do(model):
    photo = next(iter(mini_images().values()))
    assert niqe.score(photo, model) == niqe.score(photo.astype(np.float32) / np.float32(255), model)


def test_an_image_smaller_than_a_block_is_refused(model):
    with pytest.raises(EvaluationError, match="at least 96x96"):
        niqe.score(np.zeros((95, 200, 3), np.uint8), model)


def test_a_file_that_is_not_the_parameter_file_is_refused(tmp_path):
    (tmp_path / "bad.mat").write_bytes(b"not a MAT file")
    with pytest.raises(EvaluationError, match="not NIQE's parameter file"):
        niqe.PristineModel.load(tmp_path / "bad.mat")
