#!/usr/bin/env python3
"""PyTorch twin of trainer/examples/encoder_timing.rs: image side and text side alone, forward and
forward + backward, median ms. Run from the repository root with a full torch: /tmp/tv-venv/bin/python scripts/bench_encoders_torch.py"""
import sys, time, torch
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from bench_train_step_torch import Lite0Tail, l2
from torch import nn
torch.set_num_threads(2)
torch.manual_seed(0)
med = lambda v: sorted(v)[len(v) // 2]
x = torch.randn(128, 192, 7, 7).half()
for fold in (False, True):  # nn.BatchNorm2d / batch norm folded into the convs, as the trainer runs it
    tail = Lite0Tail("gpo", fold).eval().to(memory_format=torch.channels_last)
    proj = nn.Linear(1280, 512)
    f, fb = [], []
    for i in range(25):
        t0 = time.perf_counter()
        y = l2(proj(tail(x.float().contiguous(memory_format=torch.channels_last))))
        t1 = time.perf_counter()
        y.sum().backward()
        t2 = time.perf_counter()
        if i >= 5:
            f.append((t1 - t0) * 1e3); fb.append((t2 - t0) * 1e3)
    print(f"pytorch image side{' (BN folded)' if fold else ''}: forward {med(f):.1f} ms, forward+backward {med(fb):.1f} ms")
from bench_train_step_torch import TextEncoder, pad_batch
import json
m = json.load(open("static/model/manifest.json"))
text = TextEncoder(m["text"], 512, "reference")
lens = [5 + (i * 7919 % 12) for i in range(128)]
seqs = [[2 + ((i * 31 + j * 17) % 15000) for j in range(l)] for i, l in enumerate(lens)]
f, fb = [], []
for i in range(25):
    t0 = time.perf_counter()
    ids, l = pad_batch(seqs)
    y = text(ids, l)
    t1 = time.perf_counter()
    y.sum().backward()
    t2 = time.perf_counter()
    if i >= 5:
        f.append((t1 - t0) * 1e3); fb.append((t2 - t0) * 1e3)
print(f"pytorch text side: forward {med(f):.1f} ms, forward+backward {med(fb):.1f} ms")
