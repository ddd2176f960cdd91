"""Model metrics as the Efficient SR challenges count them, measured on a team's network (in the adapter,
in the team's own environment), and the runtime of each image.

- params: every element of the network's parameters, in millions;
- flops: for one input of the probe size, in billions, by the challenge's counter (harness.adapter.flop_counters: the
  organizers' model_summary rules, or fvcore's FlopCountAnalysis), both counters' totals and their per-layer table
  kept beside it as evidence;
- activations, conv2d: during one forward pass of a probe input, every call of a Conv2d or ConvTranspose2d
  adds the number of elements of its output (in millions) and one, respectively;
- runtime: milliseconds per image of the forward pass alone, timed with CUDA events on a GPU (as the
  organizers did) and with the process clock on a CPU (then it is not comparable, and said so).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

MODEL_FILE = "model.json"  # written by the adapter beside a run's outputs
# Beside a team's weights when its weights file is absent and its model is checked on the architecture alone
# (the counts do not depend on trained values): {"reason": why the weights are absent}.
ARCHITECTURE_ONLY = "architecture-only.json"
PROBE = (256, 256)  # the probe's height and width, unless the challenge names another (model_probe)


def measure(network, device: str, probe: tuple[int, int] = PROBE, counter: str = "fvcore") -> dict:
    """params, flops (by `counter`), activations and conv2d of `network` (in eval mode, on `device`)."""
    import torch

    height, width = probe
    out = {"params": sum(p.numel() for p in network.parameters()) / 1e6, "probe": [height, width]}
    activations, convolutions, hooks = [0], [0], []

    def count(module, inputs, output):
        activations[0] += output.numel()
        convolutions[0] += 1

    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            hooks.append(module.register_forward_hook(count))
    try:
        with torch.no_grad():
            network(torch.zeros(1, 3, height, width, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    out.update(activations=activations[0] / 1e6, conv2d=convolutions[0])
    out.update(_flops(network, device, probe, counter))
    return out


def _flops(network, device: str, probe: tuple[int, int], counter: str) -> dict:
    from harness.adapter import flop_counters

    counted = flop_counters.count(network, device, probe)
    out: dict = {"flop_counter": counter, "flops_by_counter": counted["totals"], "layers": counted["layers"],
                 "unavailable": {"gpu_memory": GPU_MEMORY_ABSENT}}
    if counter in counted["totals"]:
        out["flops"] = counted["totals"][counter] / 1e9
    else:
        out["unavailable"]["flops"] = counted["unavailable"].get(counter, f"{counter} counted nothing")
    return out


GPU_MEMORY_ABSENT = ("needs the challenge's GPU: torch.cuda.max_memory_allocated() over its dataset, on the device "
                     "it was measured on")


class Stopwatch:
    """Milliseconds of one forward pass: CUDA events on a GPU, the performance counter on a CPU."""

    def __init__(self, device: str):
        import torch

        self.cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.times: list[float] = []

    def time(self, work):
        import torch

        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = work()
            end.record()
            torch.cuda.synchronize()
            self.times.append(start.elapsed_time(end))
        else:
            begun = time.perf_counter()
            result = work()
            self.times.append((time.perf_counter() - begun) * 1000)
        return result

    def clock(self) -> str:
        return "cuda-events" if self.cuda else "cpu-perf-counter"


def untrained_reason(team, weights_dir: Path) -> str | None:
    """Why the network is counted untrained (its weights file absent, and the harness said the model check may
    go on without it), or None when its weights are to be loaded."""
    marker = Path(weights_dir) / ARCHITECTURE_ONLY
    if not marker.is_file() or (Path(weights_dir) / team.entry["weights"]).exists():
        return None
    return json.loads(marker.read_text()).get("reason", "its weights file is absent")
