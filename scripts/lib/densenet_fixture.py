#!/usr/bin/env python3
"""Regenerate trainer/tests/fixtures/backbone/densenet121_reference.safetensors.

torchvision's densenet121, filled with formula-defined weights (no download; no random state), run in
eval mode on a formula-defined 2x3x64x64 input. The fixture stores only the outputs (logits, pooled
features) and, in its metadata, the state-dict key -> shape list. trainer/tests/backbone_densenet.rs
regenerates the same weights with the same formula, saves them as a safetensors state dict, loads that
through the trainer's DenseNet loader, and compares.

Needs a full torch + torchvision, which the project's slim venv cannot import; use a throwaway venv:
    python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch==2.11.0 torchvision safetensors
    /tmp/tv-venv/bin/python scripts/lib/densenet_fixture.py trainer/tests/fixtures/backbone/densenet121_reference.safetensors

The formula must stay identical to `formula_tensor` in trainer/tests/backbone_densenet.rs. It uses
Python's math.sin/cos (the platform libm, as Rust's f64::sin/cos do) in float64, then casts to float32.
"""
import json
import math
import sys

import torch
import torchvision
from safetensors.torch import save_file

FORMULA_VERSION = "1"


def fnv1a32(name: str) -> int:
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def unit_values(name: str, n: int) -> list:
    """n quasi-random values in [-1, 1], a closed-form function of (name, index)."""
    phase = (fnv1a32(name) % 10007) * 0.001
    return [math.sin(0.5 * i + phase) * math.cos(0.0013 * i + 0.7 * phase) for i in range(n)]


def formula_tensor(name: str, shape: list) -> torch.Tensor:
    n = math.prod(shape)
    u = unit_values(name, n)
    leaf = name.rsplit(".", 1)[-1]
    if name == "input":  # like ImageNet-normalised pixels, roughly [-2, 2]
        v = [2.0 * x for x in u]
    elif leaf == "weight" and len(shape) >= 2:  # conv / linear: keep activations O(1)
        scale = math.sqrt(6.0 / (n // shape[0]))
        v = [scale * x for x in u]
    elif leaf == "weight":  # batch-norm gamma
        v = [1.0 + 0.25 * x for x in u]
    elif leaf == "running_var":
        v = [1.0 + 0.5 * x for x in u]
    else:  # bias, running_mean
        v = [0.1 * x for x in u]
    return torch.tensor(v, dtype=torch.float64).to(torch.float32).reshape(shape)


def main(out_path: str) -> None:
    torch.set_num_threads(2)
    model = torchvision.models.densenet121(weights=None).eval()
    state = model.state_dict()
    shapes = {}
    filled = {}
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            filled[name] = t
            continue
        shapes[name] = list(t.shape)
        filled[name] = formula_tensor(name, list(t.shape))
    model.load_state_dict(filled)
    x = formula_tensor("input", [2, 3, 64, 64])
    with torch.no_grad():
        feats = torch.nn.functional.relu(model.features(x))
        pooled = torch.nn.functional.adaptive_avg_pool2d(feats, 1).flatten(1)
        logits = model(x)
    assert torch.allclose(logits, model.classifier(pooled), atol=1e-5)
    meta = {
        "formula_version": FORMULA_VERSION,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "input": "formula_tensor('input', [2, 3, 64, 64])",
        "shapes": json.dumps(shapes),
    }
    save_file({"logits": logits.contiguous(), "pooled": pooled.contiguous()}, out_path, metadata=meta)
    print(f"wrote {out_path}: logits {tuple(logits.shape)} range [{logits.min():.3f}, {logits.max():.3f}], "
          f"pooled range [{pooled.min():.3f}, {pooled.max():.3f}], {len(shapes)} tensors")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
