"""Workers planned from each learned metric's measured cost and memory (harness.catalogue.metric_costs)."""

from harness.catalogue import metric_costs


def test_maniqa_costs_the_same_whatever_the_image_size():
    small = metric_costs.scoring_seconds(["maniqa"], 0.1, 1)
    large = metric_costs.scoring_seconds(["maniqa"], 2.8, 1)
    assert small == large == metric_costs.COSTS["maniqa"].per_image_s
    assert metric_costs.scoring_seconds(["dists"], 2.8, 1) > metric_costs.scoring_seconds(["lpips"], 2.8, 1)


def test_no_more_workers_than_the_memory_holds(monkeypatch):
    every = list(metric_costs.COSTS)
    one = metric_costs.worker_gib(every, 2.77)
    monkeypatch.setattr(metric_costs, "available_gib", lambda: 2.5 * one)
    assert metric_costs.workers_that_fit(every, 2.77) == 2
    monkeypatch.setattr(metric_costs, "available_gib", lambda: 0.5 * one)
    assert metric_costs.workers_that_fit(every, 2.77) == 1  # one is always allowed: scored in this process
    assert metric_costs.worker_gib(every, 8.0) > one  # larger images, larger activations
