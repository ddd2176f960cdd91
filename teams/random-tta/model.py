"""Random self-ensemble over realesr-animevideov3: for each image, 4 of the 8 flips/rotations are
drawn and their outputs averaged. The draws come from a generator seeded with the run's index
(HARNESS_RUN_INDEX): two runs give slightly different images, as an unseeded sampler's would, while
an audit repeats exactly.

Follows the NTIRE convention main(model_dir, input_path, output_path, device).
"""

import os
import random

import cv2
import numpy as np
import spandrel
import torch

DRAWS = 4


def _transform(t, k, flip):
    t = torch.rot90(t, k, dims=(2, 3))
    return torch.flip(t, dims=(3,)) if flip else t


def _inverse(t, k, flip):
    t = torch.flip(t, dims=(3,)) if flip else t
    return torch.rot90(t, -k, dims=(2, 3))


def main(model_dir, input_path, output_path, device):
    model = spandrel.ModelLoader(device=device).load_from_file(
        os.path.join(model_dir, "realesr-animevideov3-x4.pth"))
    model.eval()
    rng = random.Random(f"random-tta run {os.environ.get('HARNESS_RUN_INDEX', '1')}")  # differs from run to run
    transforms = [(k, flip) for k in range(4) for flip in (False, True)]
    os.makedirs(output_path, exist_ok=True)
    for name in sorted(os.listdir(input_path)):
        if not name.endswith(".png"):
            continue
        bgr = cv2.imread(os.path.join(input_path, name), cv2.IMREAD_COLOR)
        lr = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1).unsqueeze(0).float().div(255).to(device)
        total = None
        with torch.no_grad():
            for k, flip in rng.sample(transforms, DRAWS):
                out = _inverse(model(_transform(lr, k, flip)), k, flip)
                total = out if total is None else total + out
        sr = (total / DRAWS).clamp(0, 1).mul(255).round().byte().squeeze(0).permute(1, 2, 0).cpu().numpy()
        cv2.imwrite(os.path.join(output_path, name), np.ascontiguousarray(sr[:, :, ::-1]))
