"""FLOPs as the two counters of the Efficient SR challenges count them, layer by layer, on one probe input.

- model_summary: the counter of the organizers' utils/model_summary.py (AIM 2020 to NTIRE 2023), re-implemented
  here from its rules: a forward hook on every module of a counted type, summed over every call:
  Conv2d and ConvTranspose2d: kernel elements x in_channels x (out_channels / groups) x output positions;
  BatchNorm2d: batch x channels x positions, twice with affine parameters; the ReLU family (ReLU, PReLU, ELU,
  LeakyReLU, ReLU6): the output's elements; Linear: batch x input.shape[1] x output.shape[1] (on a channels-last
  B x H x W x C input that is B x H x H: the H x W positions are not counted); nothing else (no functional call,
  no attention matrix product).
- fvcore: FlopCountAnalysis (NTIRE 2024 to 2026): every traced operator, a multiply-add counted once, attributed
  to the module whose forward ran it.

A challenge names the counter its published FLOPs come from (model_counter); both are counted, so that a value
that does not reproduce says where the counters part (evidence_of).
"""

from __future__ import annotations

COUNTERS = ("model_summary", "fvcore")


def _model_summary_flops(module, inputs, output) -> int:
    """FLOPs of one call of `module` by the organizers' rules (0 for a type they do not count)."""
    import torch
    from torch import nn

    if not isinstance(output, torch.Tensor):
        return 0
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        kernel = 1
        for size in module.kernel_size:
            kernel *= size
        positions = output.shape[0] * output[0, 0].numel()
        return kernel * module.in_channels * (module.out_channels // module.groups) * positions
    if isinstance(module, nn.BatchNorm2d):
        return output.shape[0] * module.num_features * output[0, 0].numel() * (2 if module.affine else 1)
    if isinstance(module, (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6)):
        return output.numel()
    if isinstance(module, nn.Linear):
        first = inputs[0]
        if first.dim() == 1:
            return first.shape[0] * output.shape[0]
        return first.shape[0] * first.shape[1] * output.shape[1]
    return 0


def _traced_calls(network, device: str, probe: tuple[int, int]) -> dict[str, dict]:
    """Module name -> its type, last output shape and model_summary FLOPs, from one forward pass."""
    import torch

    calls: dict[str, dict] = {}
    hooks = []

    def hook_for(name):
        def record(module, inputs, output):
            row = calls.setdefault(name, {"type": type(module).__name__, "calls": 0, "model_summary": 0})
            row["calls"] += 1
            row["model_summary"] += int(_model_summary_flops(module, inputs, output))
            if isinstance(output, torch.Tensor):
                row["output"] = list(output.shape)
        return record

    for name, module in network.named_modules():
        hooks.append(module.register_forward_hook(hook_for(name)))
    try:
        with torch.no_grad():
            network(torch.zeros(1, 3, *probe, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def _fvcore_by_module(network, device: str, probe: tuple[int, int]) -> dict[str, int] | str:
    """Module name -> fvcore's FLOPs of the operators its own forward ran (not its children's); or why not."""
    import torch

    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        return "fvcore is not installed in the team's environment (its recipe family should pin it)"
    analysis = FlopCountAnalysis(network, torch.rand(1, 3, *probe, device=device))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    try:
        with torch.no_grad():
            inclusive = analysis.by_module()
    except Exception as exc:  # a trace fvcore cannot follow is the team's code, not ours: say so
        return f"fvcore could not trace the network: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    children = {name: [f"{name}.{child}" if name else child for child, _ in module.named_children()]
                for name, module in network.named_modules()}
    return {name: int(inclusive.get(name, 0)) - sum(int(inclusive.get(c, 0)) for c in kids)
            for name, kids in children.items()}


def count(network, device: str, probe: tuple[int, int]) -> dict:
    """Both counters' totals (FLOPs, not G) and the layers where either counts something:
    {"totals": {counter: flops}, "layers": [{layer, type, calls, output, model_summary, fvcore}],
     "unavailable": {counter: why}}."""
    calls = _traced_calls(network, device, probe)
    own = _fvcore_by_module(network, device, probe)
    unavailable = {"fvcore": own} if isinstance(own, str) else {}
    fvcore = own if isinstance(own, dict) else {}
    layers = []
    for name in list(dict.fromkeys([*calls, *fvcore])):
        row = calls.get(name, {"type": "", "calls": 0, "model_summary": 0})
        flops = {"model_summary": row["model_summary"], "fvcore": fvcore.get(name) if fvcore else None}
        if flops["model_summary"] or flops["fvcore"]:
            layers.append({"layer": name or "(the network's own forward)", "type": row["type"],
                           "calls": row["calls"], "output": row.get("output"), **flops})
    totals = {"model_summary": sum(r["model_summary"] for r in layers)}
    if fvcore:
        totals["fvcore"] = sum(r["fvcore"] or 0 for r in layers)
    return {"totals": totals, "layers": layers, "unavailable": unavailable}


def matching(totals_g: dict[str, float], published: float, precision: int) -> list[str]:
    """The counters whose total (in G), rounded as published, is the published value."""
    return [name for name, value in totals_g.items() if round(value, precision) == round(published, precision)]


def evidence_of(model: dict, published: float, precision: int, counter: str) -> dict:
    """Where the counters part, for a FLOPs value that did not reproduce: each counter's total, which of them
    give the published value, the layer types that account for the difference and a one-line reason."""
    totals = {name: value / 1e9 for name, value in (model.get("flops_by_counter") or {}).items()}
    layers = model.get("layers") or []
    by_type: dict[str, list] = {}
    for row in layers:
        if row.get("fvcore") is not None and row["model_summary"] != row["fvcore"]:
            entry = by_type.setdefault(row["type"] or "(functional)", [0, 0.0])
            entry[0] += 1
            entry[1] += (row["fvcore"] - row["model_summary"]) / 1e9
    parts = sorted(by_type.items(), key=lambda item: -abs(item[1][1]))
    found = matching(totals, published, precision)
    shown = ", ".join(f"{name} {value:.{precision}f} G" + (" (the challenge's)" if name == counter else "")
                      for name, value in totals.items())
    verdict = (f"only {', '.join(found)} gives it" if found and counter not in found else
               "neither counter gives it" if not found else f"{counter} gives it")
    where = "; ".join(f"{count} {kind} layer(s) {delta:+.{precision}f} G (fvcore - model_summary)"
                      for kind, (count, delta) in parts[:3])
    reason = f"FLOPs {published:.{precision}f} G published; {shown}: {verdict}" + (f"; where they part: {where}"
                                                                                    if where else "")
    return {"counter": counter, "totals_g": totals, "matches": found, "by_type": {k: {"layers": c, "delta_g": d}
                                                                                 for k, (c, d) in parts},
            "layers": layers, "reason": reason}


WHAT_IS_COUNTED = {
    "params": "every element of the network's parameters, as constructed with the manifest's arguments",
    "activations": "the elements of every Conv2d and ConvTranspose2d output in one forward pass of the probe",
    "conv2d": "every call of a Conv2d or ConvTranspose2d in one forward pass of the probe",
}


def count_evidence(model: dict, name: str, published: float, reproduced: float) -> dict:
    """For a parameter, activation or convolution count that did not reproduce: the per-layer table (each
    layer's type, calls and output shape) and a one-line reason saying what was counted."""
    layers = model.get("layers") or []
    convolutions = [r for r in layers if r["type"] in ("Conv2d", "ConvTranspose2d")]
    reason = (f"{name} {published} published, {reproduced:.6g} counted here ({WHAT_IS_COUNTED.get(name, name)}; "
              f"{sum(r['calls'] for r in convolutions)} convolution call(s) in {len(convolutions)} layer(s)): the "
              "published row is not this network as the organizers' select_model builds it")
    return {"counter": model.get("flop_counter"), "layers": layers, "reason": reason}
