"""DISTS with bounded memory (harness.score.dists_lean) equals pyiqa's DISTS bit for bit, on a network of seeded
random weights (no weight file is needed: the values are compared, not judged)."""

import pytest
import torch

from harness.fetch.stand_ins import quiet_imports
from harness.score import dists_lean


@pytest.fixture(scope="module")
def network():
    import torchvision

    with quiet_imports():
        from pyiqa.archs import dists_arch
    real_vgg16 = torchvision.models.vgg16
    torch.manual_seed(0)
    original = dists_arch.models.vgg16
    dists_arch.models.vgg16 = lambda **kwargs: real_vgg16(weights=None)
    try:
        net = dists_arch.DISTS(pretrained=False).eval()
    finally:
        dists_arch.models.vgg16 = original
    return net


@pytest.mark.parametrize("size", [(64, 64), (97, 131)])
def test_the_lean_dists_equals_pyiqa_bit_for_bit(network, size):
    generator = torch.Generator().manual_seed(size[0])
    image = torch.rand(1, 3, *size, generator=generator)
    reference = (image + 0.1 * torch.rand(1, 3, *size, generator=generator)).clamp(0, 1)
    with torch.no_grad():
        theirs = network(image, reference)
        ours = dists_lean.score(network, image, reference)
    assert ours.shape == theirs.shape and torch.equal(ours, theirs)
