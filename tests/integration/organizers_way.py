"""pyiqa called the way the organizers' eval.py calls it (NTIRE 2025 SR x4): each metric made by
`pyiqa.create_metric(name, device=...)`, each image read with PIL and made a tensor with torchvision's
to_tensor, one image at a time; a stand-in cache gets the CLIP digest hook and nothing else.

Run as a script in a fresh process: python organizers_way.py CACHE SR_DIR HR_DIR METRIC,... [DEVICE]  -> JSON on
stdout, {output file name: {metric: value}}.
"""

import json
import os
import sys
from pathlib import Path


def main(cache: str, sr_dir: str, hr_dir: str, names: list[str], device: str = "cpu") -> dict:
    from harness.fetch import stand_ins
    from harness.score import formulas

    os.environ.update(formulas.cache_env(Path(cache)))
    import pyiqa
    import torchvision.transforms.functional as F
    from PIL import Image

    stand_ins.allow_stand_in_clip(Path(cache))
    metrics = {name: pyiqa.create_metric(name, device=device) for name in names}
    values = {}
    for output in sorted(p for p in os.listdir(sr_dir) if p.endswith(".png")):
        sr = F.to_tensor(Image.open(Path(sr_dir) / output)).unsqueeze(0).to(device)
        hr = F.to_tensor(Image.open(Path(hr_dir) / output.replace("x4", ""))).unsqueeze(0).to(device)
        values[output] = {name: (metric(sr, hr) if metric.metric_mode == "FR" else metric(sr)).item()
                          for name, metric in metrics.items()}
    return values


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4], sys.argv[4].split(","), *sys.argv[5:6])))
