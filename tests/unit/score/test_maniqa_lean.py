"""ManIQA with its ViT cut after the last block it reads (harness.score.maniqa_lean) equals pyiqa's ManIQA bit
for bit, on a network of seeded random weights (the values are compared, not judged). One crop instead of 20
keeps it quick; the stand-in fidelity test compares the full metric."""

import pytest
import torch

from harness.fetch.stand_ins import quiet_imports
from harness.score import maniqa_lean


@pytest.fixture(scope="module")
def network():
    with quiet_imports():
        from pyiqa.archs import maniqa_arch
    real_create = maniqa_arch.timm.create_model
    torch.manual_seed(0)
    maniqa_arch.timm.create_model = lambda name, **kwargs: real_create(name, pretrained=False)
    try:
        net = maniqa_arch.MANIQA(pretrained=False, test_sample=1).eval()
    finally:
        maniqa_arch.timm.create_model = real_create
    return net


def test_the_cut_vit_gives_pyiqas_value_bit_for_bit_and_runs_fewer_blocks(network):
    image = torch.rand(1, 3, 240, 300, generator=torch.Generator().manual_seed(1))
    ran = []
    hooks = [block.register_forward_hook(lambda module, i, o, k=k: ran.append(k))
             for k, block in enumerate(network.vit.blocks)]
    try:
        with torch.no_grad():
            theirs = network(image)
            blocks_theirs, ran[:] = list(ran), []
            ours = maniqa_lean.score(network, image)
            blocks_ours, ran[:] = list(ran), []
            again = maniqa_lean.score(network, image)  # cut once: a second call reuses it
    finally:
        for hook in hooks:
            hook.remove()
    assert ours.shape == theirs.shape and torch.equal(ours, theirs) and torch.equal(again, theirs)
    assert blocks_theirs == list(range(12)) and blocks_ours == list(range(maniqa_lean.LAST_BLOCK_READ + 1))


def test_a_vit_that_never_reaches_the_last_block_read_is_an_error(network):
    short = torch.nn.Module()
    short.blocks = torch.nn.ModuleList(torch.nn.Identity() for _ in range(maniqa_lean.LAST_BLOCK_READ + 1))
    short.forward = lambda x: x  # never calls block 9
    with pytest.raises(RuntimeError, match="without running block 9"):
        maniqa_lean.UpToLastBlockRead(short)(torch.zeros(1))
