"""The metric registry: every fact about a metric in one entry (kind, direction, published precision,
tolerance, weight files and their sources). Report order and the manifest schema's metric names derive
from it, with the derived scores that challenges define (harness.catalogue.challenges: a score's formula and its
rounding slack) after the computed metrics.

How the metrics are computed lives in harness.score.formulas.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from harness.core.errors import EvaluationError, ManifestError


@dataclass(frozen=True)
class WeightFile:
    """One file a metric loads, where it lives in the cache, and how it is obtained.

    kind: 'url' (downloaded as is; a mirror may replace the host), 'hf-hub' (a Hugging Face snapshot
    of `location`), or 'niqe-from-pypi' (NIQE's parameters converted from basicsr's sdist on PyPI)."""

    path: str  # relative to the metric-weights cache
    kind: str
    location: str  # the URL or the hub repository; for niqe-from-pypi, the sdist's file name

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    title: str
    # "FR" (full reference), "NR" (no reference), "model" (measured on the network alone, not on images),
    # "device" (measured on the network, comparable only on the device the challenge measured on), "derived"
    reference: str
    lower_better: bool
    precision: int  # decimals as published by the organizers
    tolerance_abs: float = 0.0
    tolerance_rel: float = 0.0
    # How it is computed: a name of harness.core.registries.METRIC_BACKENDS ("builtin-fr", "builtin-nr": the
    # harness's own code; "pyiqa"; "model": by the adapter, on the team's network; "derived": from other metrics)
    backend: str = "pyiqa"
    weight_files: tuple[WeightFile, ...] = field(default=())

    def tolerance(self, published: float, precision: int | None = None, override: dict | None = None) -> float:
        """How far a reproduced mean may fall from the published value: absolute + relative, widened by
        half a unit of the published last digit; an override (the manifest's, else the challenge's)
        replaces abs/rel."""
        absolute = (override or {}).get("abs", self.tolerance_abs)
        relative = (override or {}).get("rel", self.tolerance_rel)
        rounding = 0.5 * 10 ** -precision if precision is not None else 0.0
        return absolute + relative * abs(published) + rounding


PYIQA_WEIGHTS = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main"
TORCHVISION = "https://download.pytorch.org/models"


def _pyiqa(name: str) -> WeightFile:
    return WeightFile(f"torch/hub/pyiqa/{name}", "url", f"{PYIQA_WEIGHTS}/{name}")


def _torchvision(name: str) -> WeightFile:
    return WeightFile(f"torch/hub/checkpoints/{name}", "url", f"{TORCHVISION}/{name}")


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        MetricSpec("psnr", "PSNR (dB, Y)", "FR", False, 2, tolerance_abs=0.01, backend="builtin-fr"),
        # The Efficient SR challenges' PSNR: on RGB, a 4-pixel border shaved, after a crop to a multiple of 4.
        MetricSpec("psnr_rgb", "PSNR (dB, RGB)", "FR", False, 2, tolerance_abs=0.01, backend="builtin-fr"),
        MetricSpec("ssim", "SSIM (Y)", "FR", False, 4, tolerance_abs=0.0005, backend="builtin-fr"),
        MetricSpec("lpips", "LPIPS", "FR", True, 4, tolerance_abs=0.002,
                   weight_files=(_pyiqa("LPIPS_v0.1_alex-df73285e.pth"), _torchvision("alexnet-owt-7be5be79.pth"))),
        MetricSpec("dists", "DISTS", "FR", True, 4, tolerance_abs=0.002,
                   weight_files=(_pyiqa("DISTS_weights-f5e65c96.pth"), _torchvision("vgg16-397923af.pth"))),
        MetricSpec("niqe", "NIQE", "NR", True, 4, tolerance_rel=0.01, backend="builtin-nr",  # harness.score.niqe
                   weight_files=(WeightFile("torch/hub/pyiqa/niqe_modelparameters.mat", "niqe-from-pypi",
                                            "basicsr-1.4.2.tar.gz"),)),
        MetricSpec("maniqa", "ManIQA", "NR", False, 4, tolerance_rel=0.01,
                   weight_files=(_pyiqa("ckpt_koniq10k.pt"),
                                 WeightFile("huggingface/hub/models--timm--vit_base_patch8_224.augreg2_in21k_ft_in1k",
                                            "hf-hub", "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k"))),
        MetricSpec("musiq", "MUSIQ", "NR", False, 4, tolerance_rel=0.005,
                   weight_files=(_pyiqa("musiq_koniq_ckpt-e95806b9.pth"),)),
        MetricSpec("clipiqa", "CLIP-IQA", "NR", False, 4, tolerance_rel=0.01,
                   weight_files=(WeightFile("torch/hub/clip/RN50.pt", "url",
                                            "https://openaipublic.azureedge.net/clip/models/afeb0e10f9e5a86da6080e"
                                            "35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"),)),
        # Model metrics (the Efficient SR challenges'): deterministic counts, exact but for the published rounding.
        MetricSpec("params", "Parameters (M)", "model", True, 3, backend="model"),
        # FLOPs as the challenge's counter counts them (its model_counter: the organizers' model_summary or fvcore).
        MetricSpec("flops", "FLOPs (G)", "model", True, 2, backend="model"),
        MetricSpec("activations", "Activations (M)", "model", True, 2, backend="model"),
        MetricSpec("conv2d", "Conv layers run", "model", True, 0, backend="model"),
        # Milliseconds per image: compared only on the challenge's device, as a ratio to its baseline measured in
        # the same audit (harness.verdict.rules), never as milliseconds measured elsewhere.
        MetricSpec("runtime", "Runtime (ms per image)", "device", True, 2, tolerance_rel=0.1, backend="model"),
        # torch.cuda.max_memory_allocated() over a dataset, in MiB: only the challenge's GPU can say.
        MetricSpec("gpu_memory", "GPU memory (MB)", "device", True, 2, tolerance_rel=0.1, backend="model"),
    ]
}

FETCH_COMMAND = "harness fetch metric-weights"


@functools.lru_cache(maxsize=1)
def all_specs() -> dict[str, MetricSpec]:
    """Every metric in report order: the computed ones as registered, then the challenges' scores (better
    the way each score says). Read-only."""
    from harness.catalogue.challenges import catalogue, metric_problems, scores

    problems = metric_problems(catalogue(), METRICS)
    if problems:
        raise ManifestError(problems)
    return {**METRICS, **{name: MetricSpec(name, score.title, "derived", score.direction == "lower", score.precision,
                                           score.tolerance_abs, score.tolerance_rel, backend="derived")
                          for name, score in scores().items()}}


def spec(name: str) -> MetricSpec:
    specs = all_specs()
    try:
        return specs[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(specs), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(specs)}"
        raise EvaluationError(f"unknown metric '{name}'", hint=hint) from None


def parse_metric_list(text: str | list[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    for name in names:
        spec(name)
    return names


def computed_metrics(names: list[str]) -> list[str]:
    """The metrics to compute for `names`: each one, and the components of a derived one."""
    from harness.catalogue.challenges import scores

    out = [n for n in names if spec(n).backend != "derived"]
    derived = scores()
    for name in (n for n in names if n in derived):
        out += [n for n in derived[name].components if n not in out]
    return out
