"""The two FLOPs counters of the Efficient SR challenges (harness.adapter.flop_counters), each rule of the organizers'
utils/model_summary.py checked on one layer against a count worked out by hand, and the evidence a divergence
carries."""

import pytest
from torch import nn

from harness.adapter import flop_counters


def counted(network, probe=(8, 8)) -> dict:
    return flop_counters.count(network.eval(), "cpu", probe)


def layer(result, name) -> dict:
    return next(row for row in result["layers"] if row["layer"] == name)


def test_a_convolution_counts_kernel_times_in_times_out_per_group_per_position_in_both():
    network = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1, groups=3),
                            nn.ConvTranspose2d(6, 2, 2, stride=2))
    result = counted(network)
    assert layer(result, "0")["model_summary"] == 9 * 3 * 6 * 64
    # in_channels x (out_channels / groups), as the organizers write it: the same product as fvcore's
    assert layer(result, "1")["model_summary"] == 9 * 6 * 2 * 64 == layer(result, "1")["fvcore"]
    assert layer(result, "2")["model_summary"] == 4 * 6 * 2 * 256  # the transposed one on its 16x16 output
    assert layer(result, "2")["output"] == [1, 2, 16, 16]


def test_batch_norm_relu_family_and_linear_follow_the_organizers_rules():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn, self.bare = nn.BatchNorm2d(3), nn.BatchNorm2d(3, affine=False)
            self.act, self.leaky, self.sig = nn.ReLU(), nn.LeakyReLU(0.1), nn.Sigmoid()
            self.linear = nn.Linear(3, 5)
            self.flat = nn.Linear(3 * 64, 4)

        def forward(self, x):
            x = self.sig(self.leaky(self.act(self.bare(self.bn(x)))))
            y = self.linear(x.permute(0, 2, 3, 1))  # channels last: 1 x 8 x 8 x 5
            return y.sum() + self.flat(x.flatten(1)).sum()

    result = counted(Block())
    assert layer(result, "bn")["model_summary"] == 2 * 3 * 64 and layer(result, "bare")["model_summary"] == 3 * 64
    assert layer(result, "act")["model_summary"] == layer(result, "leaky")["model_summary"] == 3 * 64
    assert not any(row["layer"] == "sig" and row["model_summary"] for row in result["layers"])  # not counted
    assert layer(result, "linear")["model_summary"] == 1 * 8 * 8  # batch x H x H: no W, no channels
    assert layer(result, "linear")["fvcore"] == 64 * 3 * 5
    assert layer(result, "flat")["model_summary"] == 1 * 192 * 4 == layer(result, "flat")["fvcore"]


def test_a_module_called_twice_counts_twice_and_the_totals_are_the_layers_sums():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    result = counted(Twice())
    assert layer(result, "conv")["calls"] == 2 and layer(result, "conv")["model_summary"] == 2 * 9 * 64
    assert result["totals"]["model_summary"] == sum(row["model_summary"] for row in result["layers"])
    assert result["totals"]["fvcore"] == 2 * 9 * 64


def test_the_evidence_names_the_counter_that_gives_the_published_value_and_where_they_part():
    network = nn.Sequential(nn.Conv2d(3, 4, 1))

    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.mix = nn.Conv2d(3, 4, 1), nn.Linear(4, 4)

        def forward(self, x):
            return self.mix(self.head(x).permute(0, 2, 3, 1))

    result = counted(Mixer(), probe=(64, 64))
    model = {"flops_by_counter": result["totals"], "layers": result["layers"]}
    fvcore_g = result["totals"]["fvcore"] / 1e9
    evidence = flop_counters.evidence_of(model, round(fvcore_g, 6), 6, "model_summary")
    assert evidence["matches"] == ["fvcore"] and evidence["by_type"]["Linear"]["layers"] == 1
    assert "only fvcore gives it" in evidence["reason"]
    neither = flop_counters.evidence_of(model, 1.0, 2, "model_summary")
    assert neither["matches"] == [] and "neither counter gives it" in neither["reason"]
    assert counted(network)["totals"]["model_summary"] == counted(network)["totals"]["fvcore"] == 12 * 64


@pytest.mark.parametrize("totals, published, found", [({"model_summary": 19.6953, "fvcore": 19.6716}, 19.70,
                                                        ["model_summary"]),
                                                       ({"model_summary": 2.02, "fvcore": 9.45}, 9.50, [])])
def test_matching_compares_at_the_published_precision(totals, published, found):
    assert flop_counters.matching(totals, published, 2) == found



def test_a_count_that_does_not_reproduce_says_what_was_counted_layer_by_layer():
    result = counted(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1)))
    evidence = flop_counters.count_evidence({"layers": result["layers"], "flop_counter": "model_summary"},
                                            "conv2d", 64, 2)
    assert [row["type"] for row in evidence["layers"]] == ["Conv2d", "ReLU", "Conv2d"]
    assert "conv2d 64 published, 2 counted here" in evidence["reason"]
    assert "2 convolution call(s) in 2 layer(s)" in evidence["reason"]
