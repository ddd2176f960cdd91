"""Settings: params.yaml over the defaults as one frozen, typed object; a command's options over it."""

import dataclasses

import pytest
import yaml

from harness.core import settings
from harness.core.settings import DockerSettings, Settings


def write(tmp_path, values: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_params_yaml_becomes_typed_sections_over_the_defaults(tmp_path):
    loaded = settings.load(write(tmp_path, {"device": "cuda:1", "docker": {"memory_gb": 8}, "slurm": {"poll_s": 1},
                                            "metrics": ["psnr"]}))
    assert loaded.device == "cuda:1" and loaded.metrics == ("psnr",) and loaded.teams == ()
    assert loaded.docker == DockerSettings(memory_gb=8) and loaded.docker.cpus == 4
    assert loaded.slurm.poll_s == 1 and loaded.slurm.mem_gb == 8 and loaded.local.threads is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.device = "cpu"  # type: ignore[misc]


def test_the_defaults_are_written_once_and_read_back_as_params_yaml_spells_them(tmp_path):
    assert settings.load(tmp_path / "absent.yaml") == Settings()
    assert settings.DEFAULT_PARAMS["docker"]["shm_gb"] == DockerSettings().shm_gb
    spelled = settings.load(write(tmp_path, settings.DEFAULT_PARAMS)).as_params()
    assert spelled == settings.DEFAULT_PARAMS and "unsafe_no_sandbox" not in spelled


def test_a_commands_options_lay_over_the_settings_and_none_is_not_given():
    base = Settings(runner="docker", device="cpu", mode="faithful")
    chosen = base.given(device="cuda", runner=None, gpus="device=1", mode=None, metrics=["psnr", "ssim"])
    assert (chosen.device, chosen.runner, chosen.mode, chosen.metrics) == ("cuda", "docker", "faithful",
                                                                          ("psnr", "ssim"))
    assert chosen.docker.gpus == "device=1" and chosen.docker.memory_gb == base.docker.memory_gb
    assert base.device == "cpu" and base.docker.gpus == "all"  # the original is untouched
    with pytest.raises(settings.InvalidSetting) as refused:
        base.given(device="gpu")
    assert "'gpu' is not cpu, cuda or cuda:N" in refused.value.message and "'cuda'" in refused.value.hint


def test_scoring_workers_follow_eval_workers_and_the_device():
    assert Settings(eval_workers=3).workers == 3
    assert Settings(eval_workers=3, device="cuda").workers == 1  # one process drives the GPU
    assert Settings().workers >= 1


def test_running_without_a_sandbox_is_only_ever_switched_on(monkeypatch, tmp_path):
    monkeypatch.delenv(settings.UNSAFE_VARIABLE, raising=False)
    loaded = settings.load(tmp_path / "absent.yaml")
    assert not loaded.unsafe_no_sandbox and loaded.given(unsafe_no_sandbox=True).unsafe_no_sandbox
    assert loaded.given(unsafe_no_sandbox=True).given(unsafe_no_sandbox=False).unsafe_no_sandbox
    monkeypatch.setenv(settings.UNSAFE_VARIABLE, "1")
    assert settings.load(tmp_path / "absent.yaml").unsafe_no_sandbox
    monkeypatch.setenv(settings.UNSAFE_VARIABLE, "0")
    assert not settings.load(tmp_path / "absent.yaml").unsafe_no_sandbox
