"""Each learned metric's measured cost (harness.catalogue.metric_costs), behind the plan's scoring time."""

from harness.catalogue import metric_costs


def test_maniqa_costs_the_same_whatever_the_image_size():
    small = metric_costs.scoring_seconds(["maniqa"], 0.1, 1)
    large = metric_costs.scoring_seconds(["maniqa"], 2.8, 1)
    assert small == large == metric_costs.COSTS["maniqa"].per_image_s
    assert metric_costs.scoring_seconds(["dists"], 2.8, 1) > metric_costs.scoring_seconds(["lpips"], 2.8, 1)
