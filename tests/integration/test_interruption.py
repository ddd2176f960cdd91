"""Signals and a second process: SIGTERM stops `harness infer` and its adapter child at once, SIGKILL's
leftovers are cleared by the next run, and a second writer of the same run is refused naming the holder."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import yaml

pytestmark = pytest.mark.slow

SLOW_MAIN = """import os, time, cv2

SECONDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seconds")  # the sandbox passes no variable


def main(model_dir, input_path, output_path, device):
    open(os.path.join(output_path, "started"), "w").close()
    for name in sorted(os.listdir(input_path)):
        time.sleep(float(open(SECONDS).read()) if os.path.exists(SECONDS) else 60)
        lr = cv2.imread(os.path.join(input_path, name))
        cv2.imwrite(os.path.join(output_path, name), cv2.resize(lr, None, fx=4, fy=4))
"""


@pytest.fixture
def slow_project(project, mini_data):
    folder = project / "teams" / "slow"
    folder.mkdir()
    (folder / "model.py").write_text(SLOW_MAIN)
    (folder / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "slow", "name": "slow", "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 29.0}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test"}}},
        "entry": {"kind": "ntire-main", "module": "model.py"}, "runtime": {"scale": 4, "timeout_s": 600},
        "determinism": {"class": "deterministic"}, "status": {"runnable": True}}, sort_keys=False))
    (project / "data").mkdir(exist_ok=True)
    os.symlink(mini_data / "mini", project / "data" / "mini")
    return project


def start_infer(project, seconds: float | None = None):
    if seconds is not None:
        (project / "teams" / "slow" / "seconds").write_text(str(seconds))
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "infer", "slow"], cwd=project,
                            env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_started(project, timeout=60):
    runs = project / "runs" / "mini" / "slow"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(runs.glob(".run-*/started")):
            return
        time.sleep(0.2)
    raise AssertionError("the adapter never started")


def adapters() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "harness.adapter" in command and "slow" in command:
            found.append(process)
    return found


def test_sigterm_stops_the_adapter_and_leaves_no_staging(slow_project):
    process = start_infer(slow_project)
    wait_started(slow_project)
    assert adapters()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    deadline = time.time() + 5
    while adapters() and time.time() < deadline:
        time.sleep(0.1)
    assert adapters() == []  # the child went with its parent
    assert list((slow_project / "runs" / "mini" / "slow").glob(".run-*")) == []


def test_after_sigkill_the_next_run_clears_the_staging_and_succeeds(slow_project):
    process = start_infer(slow_project)
    wait_started(slow_project)
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group, as a scheduler does
    process.communicate(timeout=30)
    deadline = time.time() + 10
    while adapters() and time.time() < deadline:
        time.sleep(0.1)
    assert adapters() == []  # the sandbox went with the harness (its own session, killed with its parent)
    runs = slow_project / "runs" / "mini" / "slow"
    assert list(runs.glob(".run-*"))  # what SIGKILL leaves: nothing could clean up
    done = start_infer(slow_project, seconds=0)
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    assert list(runs.glob(".run-*")) == []
    assert json.loads((runs / "record.json").read_text())["status"] == "ok"


def test_a_second_writer_of_the_same_run_is_refused_naming_the_holder(slow_project):
    first = start_infer(slow_project)
    try:
        wait_started(slow_project)
        second = subprocess.run([sys.executable, "-m", "harness.cli", "infer", "slow"], cwd=slow_project,
                                capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert second.returncode == 2
        message = " ".join(second.stderr.split())
        assert f"runs of slow on 'mini' is being written by another harness process (PID {first.pid}" in message
        assert "harness infer slow" in message and "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Four 2K pairs (the mini photographs enlarged): enough scoring for the harness to start its pool."""
    from harness.catalogue.datasets import mini_images
    from harness.imaging.matlab_resize import imresize
    from harness.imaging.pictures import encode_png

    folder = tmp_path_factory.mktemp("frames")
    (folder / "sr").mkdir()
    (folder / "hr").mkdir()
    for index, photo in enumerate(list(mini_images().values())[:4]):
        hr = imresize(imresize(photo, 4), 1.6)[:1356, :2040]
        (folder / "hr" / f"{index:04d}.png").write_bytes(encode_png(hr))
        (folder / "sr" / f"{index:04d}x4.png").write_bytes(encode_png(imresize(imresize(hr, 0.25), 4)))
    return folder


def evaluate_frames(frames, niqe_cache, json_out, *extra):
    command = [sys.executable, "-m", "harness.cli", "-v", "evaluate", "--sr", str(frames / "sr"), "--hr",
               str(frames / "hr"), "--metrics", "psnr,ssim,niqe", "--json", str(json_out), *extra]
    env = {**os.environ, "HARNESS_METRIC_WEIGHTS": str(niqe_cache), "COLUMNS": "200"}
    return command, env


def group_members(group: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == group:
                found.append(process)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def test_a_parallel_evaluation_imports_no_torch_and_leaves_no_process(frames, niqe_cache, tmp_path):
    command, env = evaluate_frames(frames, niqe_cache, tmp_path / "result.json", "--workers", "2")
    process = subprocess.Popen([sys.executable, "-X", "importtime", *command[1:]], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert "scored in 2 process(es)" in stdout  # -v says how many, and why
    imported = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "pyiqa", "torchvision")}
    time.sleep(0.5)
    assert group_members(process.pid) == []  # nothing of the command outlives it


def test_sigterm_during_a_parallel_evaluation_leaves_no_worker_and_the_last_result_intact(frames, niqe_cache,
                                                                                          tmp_path):
    result = tmp_path / "result.json"
    command, env = evaluate_frames(frames, niqe_cache, result, "--workers", "2")
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = result.read_bytes()

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    parent = psutil.Process(process.pid)
    deadline = time.time() + 120
    while len(parent.children(recursive=True)) < 2 and time.time() < deadline:
        time.sleep(0.02)
    workers = parent.children(recursive=True)
    assert len(workers) == 2, "the pool never started"
    os.killpg(process.pid, signal.SIGTERM)  # the whole group, workers included, as a scheduler does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr  # no worker says anything either
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [] and group_members(process.pid) == []
    assert result.read_bytes() == before  # the interrupted run wrote nothing

    again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert again.returncode == 0
    assert json.loads(result.read_text())["per_image"] == json.loads(before)["per_image"]


@pytest.fixture
def many_frames(frames, tmp_path):
    """The four 2K pairs ten times over (hard links, no copies): an evaluation long enough to interrupt on any
    machine."""
    folder = tmp_path / "many"
    for side in ("sr", "hr"):
        (folder / side).mkdir(parents=True)
        for copy in range(10):
            for image in sorted((frames / side).iterdir()):
                os.link(image, folder / side / f"{copy}{image.name}")
    return folder


def test_ctrl_c_says_what_was_kept(many_frames, niqe_cache, tmp_path):
    """Ctrl-C (SIGINT to the command) during the evaluation ends it with 130 and one sentence on what was kept,
    not "Aborted!"."""
    command, env = evaluate_frames(many_frames, niqe_cache, tmp_path / "result.json")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:  # the first progress line: scoring has begun, 40 images remain
        seen.append(line)
        if "evaluating: 0/40" in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "kept" in stderr and "Aborted!" not in stderr and "Traceback" not in stderr


def test_sigterm_during_an_import_download_then_the_same_command_resumes(project, tmp_path):
    """`harness data import` of an archive URL served slowly: SIGTERM mid-transfer leaves no staging and
    no dataset; the same command again resumes the download and imports."""
    import io
    import threading
    import zipfile
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import numpy as np

    from harness.imaging.pictures import encode_png

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(901, 1001):
            noise = np.random.default_rng(index).integers(0, 256, (96, 96, 3), dtype=np.uint8)
            archive.writestr(f"LR/{index:04d}x4.png", encode_png(noise))
    payload, ranges = buffer.getvalue(), []

    class Slow(BaseHTTPRequestHandler):
        delay = 0.05

        def log_message(self, *args):
            pass

        def do_GET(self):
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
            ranges.append(start)
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(payload) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            self.end_headers()
            for offset in range(start, len(payload), 16384):  # about 8 s for the whole archive
                self.wfile.write(payload[offset:offset + 16384])
                time.sleep(type(self).delay)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # the client hanging up mid-transfer is the point
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/lr.zip"
    command = [sys.executable, "-m", "harness.cli", "data", "import", "ntire2025-test", "--lr", url]
    env = {**os.environ, "HARNESS_DOWNLOADS": str(tmp_path / "downloads"), "COLUMNS": "200"}
    try:
        process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        deadline = time.time() + 60
        def written():  # the download writes whole blocks: wait for the first one
            return sum(p.stat().st_size for p in (tmp_path / "downloads").rglob("*.part"))

        while written() == 0 and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
        data = project / "data"
        assert not (data / "ntire2025-test").exists()
        assert not any(p.is_dir() and p.name.startswith(".ntire2025-test") for p in data.iterdir())

        Slow.delay = 0
        again = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert ranges[-1] > 0  # the second transfer resumed where the first stopped
        assert len(list((data / "ntire2025-test" / "LR").glob("*.png"))) == 100
    finally:
        server.shutdown()
        server.server_close()


def test_a_weights_fetch_while_another_process_writes_them_is_refused(project, tmp_path, monkeypatch):
    from harness.core import locks

    downloads = tmp_path / "downloads"
    env = {**os.environ, "HARNESS_DOWNLOADS": str(downloads), "HARNESS_LOCKS": str(tmp_path / "locks"),
           "COLUMNS": "200"}
    monkeypatch.setenv(locks.LOCKS_VARIABLE, env["HARNESS_LOCKS"])
    with locks.held(downloads / "weights" / "realesrgan-x4plus", "the weights of realesrgan-x4plus"):
        done = subprocess.run([sys.executable, "-m", "harness.cli", "fetch", "weights", "realesrgan-x4plus"],
                              cwd=project, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert f"the weights of realesrgan-x4plus is being written by another harness process (PID {os.getpid()}" in message
    assert not (project / "weights" / "realesrgan-x4plus").exists()
