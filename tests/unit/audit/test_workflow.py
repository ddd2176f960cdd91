"""The audit workflow as a library (harness.audit.workflow), with a fake runner: staging, records, the reuse rule,
failed rows and the files the pipeline reads. No subprocess, no model."""

import json
import shutil

import numpy as np
import pytest

from harness.adapter.protocol import PROVENANCE
from harness.audit import workflow
from harness.catalogue import audit_params, datasets
from harness.core.errors import InferenceFailed
from harness.core.progress import Step
from harness.core.project import Project
from harness.core.records import RecordError, RunRecord, TeamEvaluation
from harness.core.settings import Settings
from harness.fetch import dataset_files
from harness.imaging.pictures import read_rgb8, write_rgb8
from harness.run import inference, runners

from conftest import copy_project


class FakeRunner:
    """Writes nearest-neighbour x4 outputs and a provenance file, or fails as told."""

    name = "fake"
    selection = "fake (tests)"

    def __init__(self, fail_kind=None, fail_on_run=1):
        self.fail_kind, self.fail_on_run, self.requests = fail_kind, fail_on_run, []

    def run_once(self, request):
        self.requests.append(request)
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        request.log_path.write_text("starting\nsomething went wrong\n")
        inputs = sorted(request.lr_dir.glob("*.png"))
        for index, path in enumerate(inputs, start=1):
            if self.fail_kind and request.run_index == self.fail_on_run and index == 2:
                raise InferenceFailed(self.fail_kind, f"{request.team.id}: told to fail", "a hint",
                                      log_tail=request.log_path.read_text())
            lr = read_rgb8(path)
            write_rgb8(request.out_dir / path.name, np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1))
            if request.on_progress:
                request.on_progress(index, len(inputs), path.name)
        (request.out_dir / PROVENANCE).write_text(json.dumps({"team": request.team.id, "run": request.run_index,
                                                              "executed_on": {"device": "cpu"}}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("audit") / "project", teams=["bicubic", "random-tta"])
    dataset_files.fetch(datasets.get("mini"), root / "data")
    return root


@pytest.fixture
def proj(workspace, tmp_path):
    """A project of its own per test, sharing the built mini dataset."""
    root = tmp_path / "project"
    shutil.copytree(workspace, root, symlinks=True)
    return Project(root)


@pytest.fixture
def fake(monkeypatch):
    runner = FakeRunner()
    monkeypatch.setitem(runners.RUNNERS, "fake", lambda settings, selection: runner)
    return runner


def options(**changes):
    return Settings(**{"runner": "fake", "device": "cpu", **changes})


def load(proj, team_id):
    from harness.catalogue import roster

    return roster.load(proj, team_id)


def test_infer_stages_every_run_and_writes_the_record(proj, fake):
    team = load(proj, "random-tta")  # nondeterministic: 3 repeats
    steps = []
    record = workflow.infer(proj, team, datasets.get("mini"), options(), steps.append)
    assert record["status"] == "ok" and record["runner"] == "fake" and record["runner_selection"] == "fake (tests)"
    assert [r["dir"] for r in record["runs"]] == ["run-1", "run-2", "run-3"]
    assert record["runs"][2]["provenance"] == {"team": "random-tta", "run": 3, "executed_on": {"device": "cpu"}}
    assert record["ran_on"]["device"] == "cpu"  # measured by what ran, not the device asked for
    folder = proj.team_runs("mini", team.id)
    assert sorted(p.name for p in folder.iterdir()) == ["logs", "record.json", "run-1", "run-2", "run-3",
                                                        "session.json"]
    written = json.loads((folder / "record.json").read_text())
    assert written["schema"] == "harness.run-record/1" and "wall_s" not in written and "started" not in written
    assert json.loads((folder / "session.json").read_text())["wall_s"] == record["wall_s"]  # when, beside it
    assert [r.run_index for r in fake.requests] == [1, 2, 3]
    assert fake.requests[0].weights_dir == proj.team_weights(team.id)
    assert all(isinstance(s, Step) for s in steps)
    assert steps[0].note == "random-tta: runner fake (tests)"
    assert any(s.label == "random-tta run 3/3 0006x4.png" and s.done == 6 and s.total == 6 for s in steps)
    assert steps[-1].record == record


def test_a_typed_failure_leaves_no_half_run_and_keeps_the_log_tail(proj, fake):
    fake.fail_kind, fake.fail_on_run = "timeout", 2
    record = workflow.infer(proj, load(proj, "random-tta"), datasets.get("mini"), options())
    assert record["status"] == "failed"
    assert record["failure"]["kind"] == "timeout" and "something went wrong" in record["failure"]["log_tail"]
    folder = proj.team_runs("mini", "random-tta")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("logs")) == ["record.json", "run-1",
                                                                                          "session.json"]


def test_missing_inputs_become_a_failed_record_only_when_asked(proj, fake):
    team = load(proj, "random-tta")  # its weights were never fetched here
    with pytest.raises(workflow.InputsUnavailable, match="weights missing"):
        workflow.produce_runs(proj, team, datasets.get("mini"), options())
    record = workflow.produce_runs(proj, team, datasets.get("mini"), options(), record_failure=True)
    assert record["status"] == "failed" and record["failure"]["kind"] == "inputs_unavailable"
    assert "harness fetch weights random-tta" in record["failure"]["hint"] and not fake.requests


def test_runs_complete_follows_the_run_key_and_the_output_checks(proj, fake):
    team = load(proj, "bicubic")
    assert not workflow.runs_complete(proj, team, datasets.get("mini"))
    workflow.infer(proj, team, datasets.get("mini"), options())
    assert workflow.runs_complete(proj, team, datasets.get("mini"))
    (proj.team_runs("mini", "bicubic") / "run-1" / "0003x4.png").unlink()
    assert not workflow.runs_complete(proj, team, datasets.get("mini"))


RAN_ON_CPU = {"device": "cpu", "gpu": None, "containment": "sandbox", "environment": "harness"}
REUSABLE = TeamEvaluation(team="bicubic", dataset="mini", mode="faithful", metrics=["psnr", "ssim"], run_key="",
                          harness_version="0", pyiqa_version=None, metric_weights={},
                          inference={"status": "ok", "runner": "local", "ran_on": RAN_ON_CPU}).as_dict()


@pytest.mark.parametrize("change, asked, reused", [
    ({}, {}, True),
    ({}, {"runner": "auto"}, True),
    ({"mode": "strict"}, {}, False),
    ({"run_key": "another"}, {}, False),
    ({"metrics": ["psnr"]}, {}, False),
    ({"inference": {"status": "failed", "runner": "local", "ran_on": RAN_ON_CPU}}, {}, False),
    ({"inference": {"status": "ok", "runner": "published-outputs", "ran_on": RAN_ON_CPU}}, {}, False),
    ({"schema": "harness.team-evaluation/0"}, {}, False),  # another harness version's record is not read as this one
    ({"harness_version": None, "runs": None, "legacy": 1}, {}, False),
    # the run's identity: a CPU run never stands for a CUDA check, nor one of another runner or containment
    ({}, {"device": "cuda"}, False),
    ({}, {"device": "cuda:1"}, False),
    ({}, {"runner": "docker"}, False),
    ({"inference": {"status": "ok", "runner": "local"}}, {}, False),  # where it ran is unknown
    ({"inference": {"status": "ok", "runner": "local", "ran_on": {**RAN_ON_CPU, "containment": "unsafe"}}}, {}, False),
    ({"inference": {"status": "ok", "runner": "local", "ran_on": {**RAN_ON_CPU, "containment": "unsafe"}}},
     {"unsafe_no_sandbox": True}, True),
])
def test_the_reuse_rule(proj, change, asked, reused):
    team = load(proj, "bicubic")
    earlier = {**REUSABLE, "run_key": team.run_key, **change}
    path = proj.evaluation_file("mini", team.id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(earlier))
    settings = Settings(**{"runner": "local", "device": "cpu", **asked})
    assert (workflow.reusable_evaluation(proj, team, "mini", settings, ["psnr", "ssim"]) is not None) == reused


def test_verify_team_runs_scores_and_writes_the_pipeline_files(proj, fake):
    team = load(proj, "bicubic")
    settings = audit_params.read(proj).given(metrics=["psnr", "ssim"], runner="fake", mode="faithful")
    steps = []
    result = workflow.verify_team(proj, team, datasets.get("mini"), settings, progress=steps.append)
    assert result["verdict"] == "diverged"  # nearest-neighbour outputs are not bicubic's
    assert result["metrics"]["psnr"]["ok"] is False and result["metrics"]["niqe"]["status"] == "unavailable"
    evaluation = json.loads(proj.evaluation_file("mini", "bicubic").read_text())
    assert evaluation["schema"] == "harness.team-evaluation/1" and evaluation["dataset"] == "mini"
    assert evaluation["device"] == "cpu" and evaluation["evaluator"]["runner"] == "local"
    assert set(json.loads(proj.metrics_file("mini", "bicubic").read_text())) == {"psnr", "ssim"}
    assert any(s.task == "evaluating bicubic" and s.done == 6 for s in steps)
    again = workflow.verify_team(proj, team, datasets.get("mini"), settings, progress=steps.append)
    assert again["verdict"] == "diverged" and steps[-1].note.startswith("bicubic: reusing evaluations/mini/")
    assert len(fake.requests) == 1  # reused: not run again


def test_a_failing_team_is_its_own_row_and_the_audit_goes_on(proj, fake):
    (proj.data_dir / "mini" / "HR" / "0001.png").unlink()  # the copy of this test's project only
    settings = audit_params.read(proj).given(runner="fake")
    results = workflow.audit(proj, ["bicubic", "random-tta"], datasets.get("mini"), settings)
    assert [r["verdict"] for r in results] == ["failed", "failed"]
    assert results[0]["failure"]["kind"] == "checksum_mismatch"
    assert "HR/0001.png: missing" in results[0]["failure"]["message"]
    assert not workflow.all_passed(results)


def test_an_unknown_dataset_is_refused_before_any_team(tmp_path):
    from harness.core.errors import DatasetError

    with pytest.raises(DatasetError, match="unknown dataset 'no-such-dataset'"):
        datasets.get("no-such-dataset")


def test_report_files_at_the_project_layout(proj):
    results = workflow.verifications(proj, ["bicubic"], "mini")
    assert results[0]["failure"]["kind"] == "not_evaluated"
    built, paths = workflow.write_report(proj, results, "mini", audit_params.read(proj))
    assert [p.relative_to(proj.report_dir).as_posix() for p in paths] == ["report.json", "report.md", "summary.csv",
                                                                         "index.html"]
    assert built["summary"] == "SUMMARY: 1 team(s): 0 exact, 0 reproduced, 0 diverged, 1 failed, 0 not runnable"


def test_records_read_back_as_their_types_and_another_schema_is_refused(proj, fake):
    team = load(proj, "bicubic")
    written = workflow.infer(proj, team, datasets.get("mini"), options())
    record = inference.load_record(proj.runs_dir, "mini", "bicubic")
    assert isinstance(record, RunRecord) and record.ok and record.run_key == team.run_key
    assert record.as_written() == {k: v for k, v in written.items() if k not in RunRecord.VOLATILE}
    path = proj.team_runs("mini", "bicubic") / "record.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema": "harness.run-record/0"}))
    with pytest.raises(RecordError) as refused:
        inference.load_record(proj.runs_dir, "mini", "bicubic")
    assert "harness.run-record/0" in refused.value.message and "--rerun" in refused.value.hint
    assert not workflow.runs_complete(proj, team, datasets.get("mini"))  # not a record of these runs: they run again
    older = proj.evaluation_file("mini", "bicubic")
    older.parent.mkdir(parents=True)
    older.write_text(json.dumps({**REUSABLE, "schema": "harness.team-evaluation/0"}))
    [row] = workflow.verifications(proj, ["bicubic"], "mini")  # the report stage: a row that says why
    assert row["verdict"] == "failed" and row["failure"]["kind"] == "not_evaluated"
    assert "harness.team-evaluation/0" in row["failure"]["message"]


def test_a_slurm_job_runs_the_same_infer_into_the_results_folder(proj, fake, monkeypatch):
    from harness.run import slurm

    monkeypatch.setattr(slurm, "job_id", lambda: "42")
    record = workflow.run_team_job(str(proj.root), "bicubic", "mini", options())
    assert record["status"] == "ok" and record["slurm_job_id"] == "42" and len(fake.requests) == 1
    written = inference.load_record(proj.slurm_results("mini"), "mini", "bicubic")
    assert written.slurm_job_id == "42" and written.runner == "fake"
    assert (proj.slurm_results("mini") / "mini" / "bicubic" / "run-1" / "0001x4.png").is_file()
    assert not proj.team_runs("mini", "bicubic").exists()  # the waiting stage moves it into runs/


def test_scoring_on_a_gpu_that_is_not_there_is_no_gpu_not_the_cpu(proj, fake):
    import torch

    from harness.core.errors import TypedFailure

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    team = load(proj, "bicubic")
    workflow.infer(proj, team, datasets.get("mini"), options())
    with pytest.raises(TypedFailure) as caught:
        workflow.evaluate_team(proj, team, datasets.get("mini"), Settings(metrics=("psnr",), device="cuda"))
    assert caught.value.kind == "no_gpu" and "--device cpu" in caught.value.hint
    assert not proj.evaluation_file("mini", "bicubic").exists()


def test_a_cpu_run_is_never_taken_for_a_cuda_check(proj, fake):
    """verify on cuda after a CPU run: not reused (another device), and with no GPU here the run is refused
    as no_gpu before the runner starts: no CPU run stands in for it."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    team = load(proj, "bicubic")
    settings = audit_params.read(proj).given(metrics=["psnr", "ssim"], runner="fake", mode="faithful")
    assert workflow.verify_team(proj, team, datasets.get("mini"), settings)["verdict"] == "diverged"  # ran on the CPU
    row = workflow.verify_team(proj, team, datasets.get("mini"), settings.given(device="cuda"))
    assert row["verdict"] == "failed" and row["failure"]["kind"] == "no_gpu", row
    assert len(fake.requests) == 1  # the CUDA check started nothing
