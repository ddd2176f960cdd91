"""What the audit writes does not depend on the CPU that wrote it: the mini suite's bicubic outputs scored
with PSNR, SSIM, NIQE and the LR-consistency check give byte for byte the evaluation kept in
tests/data/reference/, which was written on another machine (an AMD EPYC with AVX2). Run on a CPU of
another model (an Intel with AVX-512, say), this test is the cross-CPU check; to regenerate the reference
after a deliberate change: `HARNESS_WRITE_REFERENCE=1 pytest tests/integration/test_cpu_independence.py`."""

import json
import os
from pathlib import Path

from harness.core import records
from harness.core.files import sha256_file
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import read_rgb8, write_rgb8
from harness.score import evaluation

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "reference" / "mini-bicubic-evaluation.json"


def test_an_evaluation_is_the_same_bytes_on_every_cpu(mini_data, niqe_cache, tmp_path, monkeypatch):
    lr_dir, hr_dir = mini_data / "mini" / "LR", mini_data / "mini" / "HR"
    outputs = tmp_path / "sr"
    for lr in sorted(lr_dir.glob("*.png")):
        write_rgb8(outputs / lr.name, imresize(read_rgb8(lr), 4))
    monkeypatch.chdir(tmp_path)  # paths in the evaluation are relative to where it runs
    result = evaluation.evaluate(outputs, hr_dir, ["psnr", "ssim", "niqe"], metric_cache=niqe_cache, lr_dir=lr_dir)
    written = json.dumps(records.stated(result.as_dict()), indent=1, sort_keys=True) + "\n"
    if os.environ.get("HARNESS_WRITE_REFERENCE"):
        REFERENCE.write_text(written)
    reference = json.loads(REFERENCE.read_text())
    digests = {p.name: sha256_file(p) for p in sorted(outputs.glob("*.png"))}
    assert digests == reference["output_sha256"], "bicubic's outputs themselves differ on this CPU"
    assert written == REFERENCE.read_text()
