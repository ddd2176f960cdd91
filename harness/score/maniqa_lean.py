"""ManIQA without the work it throws away, equal to pyiqa's value bit for bit.

pyiqa's ManIQA reads the outputs of blocks 6 to 9 of its ViT-B/8 (a hook on every block keeps them) and drops
what the ViT itself returns: blocks 10 and 11, the last norm and the classifier head run on its 20 crops for
nothing, about a tenth of the metric's time on a CPU. Here the ViT stops as soon as block 9's output is kept,
and the rest of pyiqa's forward runs unchanged on the same kept outputs, so the value is the same bits;
tests/unit/score/test_maniqa_lean.py and the stand-in fidelity test hold it to that.
"""

from __future__ import annotations

import torch

LAST_BLOCK_READ = 9  # pyiqa's MANIQA.extract_feature reads outputs 6, 7, 8 and 9


class _LastBlockKept(Exception):
    """Raised once the last block ManIQA reads has run and its output is kept."""


def _stop(module, inputs, output):
    raise _LastBlockKept


class UpToLastBlockRead(torch.nn.Module):
    """The ViT run only as far as ManIQA reads it; returns nothing (pyiqa ignores the ViT's output)."""

    def __init__(self, vit: torch.nn.Module):
        super().__init__()
        self.vit = vit
        # registered after pyiqa's own hooks, so block 9's output is kept before the run stops
        vit.get_submodule(f"blocks.{LAST_BLOCK_READ}").register_forward_hook(_stop)

    def forward(self, x):
        try:
            self.vit(x)
        except _LastBlockKept:
            return None
        raise RuntimeError(f"the ViT finished without running block {LAST_BLOCK_READ}")


def score(network, image, reference=None):
    """ManIQA of `image` (1x3xHxW in [0, 1]) with pyiqa's MANIQA network, its ViT cut after the last block it
    reads (once, on first use); a 1x1 tensor, as pyiqa returns it."""
    if not isinstance(network.vit, UpToLastBlockRead):
        network.vit = UpToLastBlockRead(network.vit)
    return network(image)
