#!/usr/bin/env python3
"""PyTorch reference for the Lite0 feature-extraction benchmark (scripts/bench/backbone.sh runs it).

The same EfficientNet-Lite0 as trainer/src/backbone/efficientnet_lite.rs (TF-SAME padding, BN eps 1e-3,
ReLU6, no SE), loading the same safetensors weights, timed the same way: batch B at 224 px, eval,
no grad, T threads, NCHW and channels-last. Prints one JSON line per layout:
    {"impl": "pytorch", "layout": "channels_last", "batch": 32, "threads": 2, "images_per_s": ...}
Also checks that the port classifies the coffee photo as espresso (so the timing is of a working net).

Needs full torch (the project's slim venv cannot `import torch`):
    /tmp/tv-venv/bin/python scripts/bench/backbone_torch.py [--batch 32] [--threads 2] [--iters 5]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def same_conv(x, w, stride, groups=1):
    k = w.shape[-1]
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / stride) - 1) * stride + k - ih, 0)
    pw = max((math.ceil(iw / stride) - 1) * stride + k - iw, 0)
    if ph or pw:
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    return F.conv2d(x, w, None, stride, 0, 1, groups)


def bn(x, sd, key):
    return F.batch_norm(x, sd[key + ".running_mean"], sd[key + ".running_var"], sd[key + ".weight"],
                        sd[key + ".bias"], False, 0.0, 1e-3)


def lite0_features(x, sd):
    x = F.relu6(bn(same_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    i = 0
    for repeats, k, stride, expand, cin, cout in STAGES:
        for r in range(repeats):
            s, c = (stride, cin) if r == 0 else (1, cout)
            p = f"_blocks.{i}."
            h = x
            if expand != 1:
                h = F.relu6(bn(same_conv(h, sd[p + "_expand_conv.weight"], 1), sd, p + "_bn0"))
            h = F.relu6(bn(same_conv(h, sd[p + "_depthwise_conv.weight"], s, groups=h.shape[1]), sd, p + "_bn1"))
            h = bn(same_conv(h, sd[p + "_project_conv.weight"], 1), sd, p + "_bn2")
            x = h + x if s == 1 and c == cout else h
            i += 1
    return F.relu6(bn(same_conv(x, sd["_conv_head.weight"], 1), sd, "_bn1"))


def check_espresso(sd, assets):
    from PIL import Image
    img = Image.open(os.path.join(assets, "photos", "skimage_coffee.png")).convert("RGB")
    w, h = img.size
    s = 224 / min(w, h)
    img = img.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BILINEAR)
    w, h = img.size
    img = img.crop(((w - 224) // 2, (h - 224) // 2, (w - 224) // 2 + 224, (h - 224) // 2 + 224))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x * 255.0 - 127.0) / 128.0  # TF Lite normalisation, as trainer/src/backbone/preprocess.rs
    with torch.no_grad():
        logits = F.linear(lite0_features(x[None], sd).mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])
    top = int(logits.argmax())
    assert top == 967, f"PyTorch Lite0 port predicts class {top} for the coffee photo, expected 967 (espresso)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", default=os.environ.get("IMGPICK_ASSETS", "assets"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sd = load_file(os.path.join(args.assets, "efficientnet_lite0.safetensors"))
    check_espresso(sd, args.assets)
    x = torch.randn(args.batch, 3, 224, 224)
    for layout in ["nchw", "channels_last"]:
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        w = {k: (v.contiguous(memory_format=fmt) if v.dim() == 4 else v) for k, v in sd.items()}
        xi = x.contiguous(memory_format=fmt)
        with torch.no_grad():
            lite0_features(xi, w)  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.iters):
                lite0_features(xi, w)
            dt = (time.perf_counter() - t0) / args.iters
        print(json.dumps({"impl": "pytorch", "layout": layout, "batch": args.batch, "threads": args.threads,
                          "images_per_s": round(args.batch / dt, 2)}), flush=True)


if __name__ == "__main__":
    main()
