"""The wheel works outside the checkout: manifests validate against a checkout given by --root, and
`harness evaluate --sr --hr` runs from an empty folder."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from conftest import REPO

pytestmark = pytest.mark.pypi  # `uv build` takes setuptools from PyPI into its build environment


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the harness wheel installed; the dependencies are those of the
    environment running the tests, seen through a .pth file (the checkout's editable install is not)."""
    if not shutil.which("uv"):
        pytest.fail("uv is needed to build the wheel (make setup installs it)")
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(["uv", "build", "--wheel", "-o", str(work / "dist"), str(REPO)], check=True,
                   capture_output=True)
    [wheel] = (work / "dist").glob("harness-*.whl")
    venv = work / "venv"
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(["uv", "pip", "install", "-q", "--no-deps", "--python", str(venv / "bin" / "python"),
                    str(wheel)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run(venv, *args, cwd, cache=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_ROOT", "PYTHONPATH", "HARNESS_METRIC_WEIGHTS")}
    if cache:
        env["XDG_CACHE_HOME"] = str(cache)  # the user's cache, as platformdirs finds it
    return subprocess.run([str(venv / "bin" / "harness"), *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_installed_package_is_the_wheel(installed, tmp_path):
    done = subprocess.run([str(installed / "bin" / "python"), "-c", "import harness, harness.catalogue.manifests as m; "
                           "print(harness.__file__); print(m.SCHEMA_PATH)"], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    module, schema = done.stdout.split()
    assert str(installed) in module and str(installed) in schema  # not the checkout's copy


def test_validate_against_a_checkout_given_by_root(installed, tmp_path):
    done = run(installed, "--root", str(REPO), "validate", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith(" valid, 0 invalid")
    outside = run(installed, "validate", cwd=tmp_path)
    assert outside.returncode == 2 and "no teams/ folder" in outside.stderr and "Traceback" not in outside.stderr


def test_evaluate_runs_from_an_empty_folder(installed, tmp_path, mini_data):
    empty = tmp_path / "empty"
    empty.mkdir()
    outputs = mini_data / "mini" / "HR"  # the ground truth scored against itself
    cache = tmp_path / "user-cache"
    done = run(installed, "evaluate", "--sr", str(outputs), "--hr", str(mini_data / "mini" / "HR"),
               "--metrics", "ssim,niqe", "--json", "out.json", "--allow-unavailable", cwd=empty, cache=cache)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((empty / "out.json").read_text())
    assert result["n_images"] == 6 and result["mean"]["ssim"] == pytest.approx(1.0)
    assert "niqe" in result["unavailable"]  # no weights here: said, not zero
    assert str(cache / "harness" / "metric-weights") in result["unavailable"]["niqe"]["reason"]
    assert sorted(p.name for p in empty.iterdir()) == ["out.json"]


def test_evaluate_prints_niqe_once_its_weights_are_in_the_user_cache(installed, tmp_path, mini_data, niqe_cache):
    """The newcomer's route: `harness fetch metric-weights niqe` fills the user's cache outside a checkout
    (here: the same file placed there), then `harness evaluate --sr --hr` prints NIQE with no --json."""
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "user-cache"
    shutil.copytree(niqe_cache, cache / "harness" / "metric-weights")
    done = run(installed, "evaluate", "--sr", str(mini_data / "mini" / "HR"), "--hr", str(mini_data / "mini" / "HR"),
               "--metrics", "ssim,niqe", cwd=empty, cache=cache)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[1]: line.split()[3] for line in done.stdout.splitlines() if line.startswith("│ ")}
    assert float(rows["ssim"]) == pytest.approx(1.0) and 2.0 < float(rows["niqe"]) < 20.0, done.stdout
    assert list(empty.iterdir()) == []  # nothing written where it ran


def test_the_wheel_carries_the_report_template(installed, tmp_path):
    done = subprocess.run([str(installed / "bin" / "python"), "-c",
                           "import jinja2; loader = jinja2.PackageLoader('harness.report', 'templates');"
                           "print(loader.get_source(jinja2.Environment(), 'report.html')[1])"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert str(installed) in done.stdout
