"""DISTS with bounded memory, equal to pyiqa's value bit for bit.

pyiqa's DISTS keeps every VGG16 stage's features of both images before it compares them: about 5 GiB for a
2K pair on a CPU. The comparison of stage k needs only stage k's features of the two images, so here both
images go through the network in step, each stage's statistics are taken as soon as its features exist, and
the features of a stage are released when the next one is made; the squared deviations are formed in place.
Every statistic is the same torch operation on the same tensor as in pyiqa (a mean over the whole feature
map, never over pieces), so the values are identical; tests/unit/score/test_dists_lean.py holds them to it.
"""

from __future__ import annotations

C1 = C2 = 1e-6  # DISTS's stabilising constants


def _deviation_energy(features, mean):
    """mean((features - mean) ** 2) over the feature map, with one temporary instead of two."""
    deviation = features - mean
    deviation.pow_(2)
    return deviation.mean([2, 3], keepdim=True)


def score(network, image, reference):
    """DISTS of `image` against `reference` (1x3xHxW in [0, 1]) with pyiqa's DISTS network (its stages,
    normalisation, alpha and beta); a 1x1 tensor, as pyiqa returns it."""
    weights_total = network.alpha.sum() + network.beta.sum()
    import torch

    alphas = torch.split(network.alpha / weights_total, network.chns, dim=1)
    betas = torch.split(network.beta / weights_total, network.chns, dim=1)
    stages = [network.stage1, network.stage2, network.stage3, network.stage4, network.stage5]
    first, second = image, reference  # stage 0 is the image itself, not normalised
    structure = texture = 0
    for k in range(len(network.chns)):
        if k == 1:
            first = stages[0]((image - network.mean) / network.std)
            second = stages[0]((reference - network.mean) / network.std)
        elif k > 1:
            first = stages[k - 1](first)
            second = stages[k - 1](second)
        first_mean = first.mean([2, 3], keepdim=True)
        second_mean = second.mean([2, 3], keepdim=True)
        similarity = (2 * first_mean * second_mean + C1) / (first_mean ** 2 + second_mean ** 2 + C1)
        structure = structure + (alphas[k] * similarity).sum(1, keepdim=True)
        first_var = _deviation_energy(first, first_mean)
        second_var = _deviation_energy(second, second_mean)
        covariance = (first * second).mean([2, 3], keepdim=True) - first_mean * second_mean
        correlation = (2 * covariance + C2) / (first_var + second_var + C2)
        texture = texture + (betas[k] * correlation).sum(1, keepdim=True)
    return (1 - (structure + texture)).squeeze(-1).squeeze(-1)
