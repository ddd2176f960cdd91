"""LR files named by their stem alone (NTIRE 2022 Efficient SR's test set: 0901.png) are imported under the
layout's name (0901x4.png)."""

import shutil

from harness.catalogue import datasets
from harness.catalogue.datasets import BUILTIN_DATASETS, Dataset
from harness.fetch.dataset_files import import_dataset


def test_lr_named_without_x4_is_imported_under_the_layouts_name(mini_data, tmp_path):
    BUILTIN_DATASETS["stand-in"] = Dataset("stand-in", "stand-in", "test", None, ("0001", "0002"), "tests")
    try:
        hr, lr = tmp_path / "hr", tmp_path / "lr"
        hr.mkdir(), lr.mkdir()
        for stem in ("0001", "0002"):
            shutil.copy(mini_data / "mini" / "HR" / f"{stem}.png", hr)
            shutil.copy(mini_data / "mini" / "LR" / f"{stem}x4.png", lr / f"{stem}.png")  # as the organizers name it
        root = import_dataset(datasets.get("stand-in"), tmp_path / "data", hr, lr)
        assert sorted(p.name for p in (root / "LR").iterdir()) == ["0001x4.png", "0002x4.png"]
    finally:
        del BUILTIN_DATASETS["stand-in"]
