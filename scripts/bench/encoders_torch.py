#!/usr/bin/env python3
"""PyTorch twin of trainer/examples/encoder_timing.rs: image side and text side alone, forward and
forward + backward, median ms of 20 after 5. Run from the repository root with a full torch:
/tmp/tv-venv/bin/python scripts/bench/encoders_torch.py"""
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step_torch import Lite0Tail, TextEncoder, l2, pad_batch  # noqa: E402


def timed(forward):
    """Median ms of forward and of forward + backward (`forward()` returns the output to sum and backpropagate)."""
    f, fb = [], []
    for i in range(25):
        t0 = time.perf_counter()
        y = forward()
        t1 = time.perf_counter()
        y.sum().backward()
        t2 = time.perf_counter()
        if i >= 5:
            f.append((t1 - t0) * 1e3)
            fb.append((t2 - t0) * 1e3)
    med = lambda v: sorted(v)[len(v) // 2]
    return f"forward {med(f):.1f} ms, forward+backward {med(fb):.1f} ms"


torch.set_num_threads(2)
torch.manual_seed(0)
x = torch.randn(128, 192, 7, 7).half()
for fold in (False, True):  # nn.BatchNorm2d / batch norm folded into the convs, as the trainer runs it
    tail = Lite0Tail("gpo", fold).eval().to(memory_format=torch.channels_last)
    proj = nn.Linear(1280, 512)
    side = timed(lambda: l2(proj(tail(x.float().contiguous(memory_format=torch.channels_last)))))
    print(f"pytorch image side{' (BN folded)' if fold else ''}: {side}")
m = json.load(open("static/model/manifest.json"))
text = TextEncoder(m["text"], 512, "reference")
lens = [5 + (i * 7919 % 12) for i in range(128)]
seqs = [[2 + ((i * 31 + j * 17) % 15000) for j in range(n)] for i, n in enumerate(lens)]
print(f"pytorch text side: {timed(lambda: text(*pad_batch(seqs)))}")
