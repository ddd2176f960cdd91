"""Convert ncnn Real-ESRGAN models (.param text + .bin weights) into PyTorch state dicts.

The .bin holds, per Convolution layer, a 4-byte storage tag followed by the weights (tag 0x01306B47:
float16), then the bias as raw float32; per PReLU layer the slopes as raw float32. Layers appear in
forward order, which fixes the state-dict names of the two architectures shipped:
- RRDBNet (Real-ESRGAN x4plus): conv_first, body.B.rdbR.convC, conv_body, conv_up1/2, conv_hr, conv_last;
- SRVGGNetCompact (realesr-animevideov3): body.0 (conv), body.1 (PReLU), ..., body.N (last conv).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.errors import ConversionError

FP16_TAG = 0x01306B47
FP32_TAG = 0x00000000


@dataclass
class Layer:
    kind: str
    name: str
    params: dict[int, str]


def parse_param(text: str) -> list[Layer]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != "7767517":
        raise ConversionError("not an ncnn .param file (magic 7767517 missing)")
    layers = []
    for line in lines[2:]:
        fields = line.split()
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        params = {}
        for item in fields[4 + n_in + n_out:]:
            key, _, value = item.partition("=")
            params[int(key)] = value
        layers.append(Layer(kind, name, params))
    return layers


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def tagged(self, count: int) -> np.ndarray:
        tag = int.from_bytes(self.data[self.offset:self.offset + 4], "little")
        self.offset += 4
        if tag == FP16_TAG:
            size = count * 2
            values = np.frombuffer(self.data, np.float16, count, self.offset).astype(np.float32)
            self.offset += (size + 3) // 4 * 4
            return values
        if tag == FP32_TAG:
            return self.raw(count)
        raise ConversionError(f"unsupported ncnn weight storage tag 0x{tag:08X} at byte {self.offset - 4}")

    def raw(self, count: int) -> np.ndarray:
        if self.offset + count * 4 > len(self.data):
            raise ConversionError("the .bin file ends before the layers the .param file declares")
        values = np.frombuffer(self.data, np.float32, count, self.offset).copy()
        self.offset += count * 4
        return values


def _tensors(layers: list[Layer], data: bytes) -> list[tuple[str, dict[str, np.ndarray]]]:
    reader = _Reader(data)
    out = []
    for layer in layers:
        if layer.kind == "Convolution":
            n_out = int(layer.params[0])
            k_w = int(layer.params.get(1, 1))
            k_h = int(layer.params.get(11, k_w))
            size = int(layer.params[6])
            n_in = size // (n_out * k_w * k_h)
            if n_in * n_out * k_w * k_h != size:
                raise ConversionError(f"{layer.name}: weight size {size} does not factor into {n_out}x?x{k_h}x{k_w}")
            tensors = {"weight": reader.tagged(size).reshape(n_out, n_in, k_h, k_w)}
            if int(layer.params.get(5, 0)):
                tensors["bias"] = reader.raw(n_out)
            out.append(("conv", tensors))
        elif layer.kind == "PReLU":
            out.append(("prelu", {"weight": reader.raw(int(layer.params.get(0, 1)))}))
        elif layer.kind in ("Deconvolution", "InnerProduct", "BatchNorm", "Scale"):
            raise ConversionError(f"layer type {layer.kind} ({layer.name}) is not supported")
    if reader.offset != len(data):
        raise ConversionError(f"the .bin file has {len(data) - reader.offset} bytes the .param file does not "
                              "account for")
    return out


def _rrdb_names(n_conv: int) -> list[str]:
    blocks, rest = divmod(n_conv - 6, 15)
    if rest or blocks < 1:
        raise ConversionError(f"{n_conv} convolutions do not fit RRDBNet (6 + 15 per block)")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(blocks) for r in (1, 2, 3) for c in range(1, 6)]
    return names + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def convert(param_text: str, bin_data: bytes) -> tuple[str, dict]:
    """(architecture, state dict of torch tensors) for an ncnn Real-ESRGAN model."""
    import torch

    layers = parse_param(param_text)
    kinds = {layer.kind for layer in layers}
    tensors = _tensors(layers, bin_data)
    state: dict[str, np.ndarray] = {}
    if "PixelShuffle" in kinds and "PReLU" in kinds:
        architecture = "SRVGGNetCompact"
        for index, (_, layer_tensors) in enumerate(tensors):
            for key, value in layer_tensors.items():
                state[f"body.{index}.{key}"] = value
    elif "Concat" in kinds and "Interp" in kinds:
        architecture = "RRDBNet"
        names = _rrdb_names(len(tensors))
        for name, (kind, layer_tensors) in zip(names, tensors, strict=True):
            if kind != "conv":
                raise ConversionError(f"expected only convolutions in RRDBNet, found {kind}")
            for key, value in layer_tensors.items():
                state[f"{name}.{key}"] = value
    else:
        raise ConversionError(f"unrecognised architecture (layer types: {', '.join(sorted(kinds))})")
    return architecture, {k: torch.from_numpy(v) for k, v in state.items()}
