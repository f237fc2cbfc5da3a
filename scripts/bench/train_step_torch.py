#!/usr/bin/env python3
"""PyTorch twin of trainer/benches/train_step.rs (scripts/bench/train-step.sh runs both and prints the ratio).

One training step of the shipped configuration (static/model/manifest.json -> text, embed_dim, image.feature_dim,
training.config): embedding (padding_idx 0) -> LSTM -> pooling -> proj -> L2, image head proj -> L2, symmetric
InfoNCE with same-image pairs masked, backward, global-norm clipping (clip_grad_norm_), Adam with the
embedding's lr scaled by embedding_lr_scale (torch.optim.Adam param groups), loss.item().

Variants (one JSON line each, steps/s = 1 / median step time after warm-up):
  reference  the same model, written the PyTorch way: nn.BatchNorm2d (eval mode) after each conv, GPO with
             torch.sort, and the trainer's text side op for op (each LSTM direction one fused unidirectional
             torch.lstm call over the right-padded batch; the backward direction reads each caption reversed within
             its own length, a gather, so padding is computed but never reaches a valid output; mean pooling over the
             valid positions).
  folded     reference with the trainer's batch-norm folding (conv weight x gamma/sqrt(var+eps), bias = the shift).
             scripts/bench/train-step.sh runs it with glibc's allocator set as trainer::keep_freed_memory sets it
             (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_): the trainer's speed-ups PyTorch code can copy. What is
             left between it and tch is the binding and the trainer's Rust-side GPO sort (model::descending_order),
             which PyTorch has no op for.
  packed     reference with idiomatic nn.LSTM(bidirectional=True) on pack_padded_sequence (skips the padded
             steps; same outputs on valid positions; measured slower than reference on this CPU).
The batch (caption lengths from the Flickr8k histogram, token ids, image ids) comes from the same splitmix64
stream as the Rust bench, so both time the very same batch.

Needs full torch (the project's slim venv cannot `import torch`):
    /tmp/tv-venv/bin/python scripts/bench/train_step_torch.py [--threads 2] [--iters 30] [--variant reference folded packed]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

# Keep in sync with trainer/benches/train_step.rs.
LEN_HIST = [0, 15, 125, 340, 854, 1948, 2501, 2917, 3318, 3310, 3134, 2772, 2332, 1864, 1338, 3232]
SEED = 0x1D92026
TRAIN_IMAGES = 6000
MASK64 = (1 << 64) - 1
PAD_ID = 0
# The trainer's `run_direction` passes train=true (cuDNN cannot backpropagate an inference-mode LSTM);
# --lstm-train 0 times the inference-mode call instead.
LSTM_TRAIN = True


def splitmix64(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def synthetic_batch(batch, vocab, max_len):
    rng, total = splitmix64(SEED), sum(LEN_HIST)
    caps, images = [], []
    for _ in range(batch):
        u, n = next(rng) % total, 0
        while u >= LEN_HIST[n]:
            u -= LEN_HIST[n]
            n += 1
        n = min(n + 1, max_len)
        caps.append([2 + next(rng) % (vocab - 2) for _ in range(n)])
        images.append(next(rng) % TRAIN_IMAGES)
    return caps, images


def pad_batch(seqs):
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), PAD_ID, dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


def l2(x):
    return x / x.norm(2, dim=1, keepdim=True).clamp_min(1e-12)


class TextEncoder(nn.Module):
    def __init__(self, t, embed_dim, variant):
        super().__init__()
        self.variant, self.h, self.pooling = variant, t["hidden_dim"], t["pooling"]
        assert t["layers"] == 1 and t["bidirectional"] and t["pooling"] == "mean", "bench mirrors the shipped 1-layer bi-LSTM mean"
        self.embedding = nn.Embedding(t["vocab_size"], t["word_dim"], padding_idx=PAD_ID)
        nn.init.normal_(self.embedding.weight, 0.0, 0.3)  # as the Rust init (GloVe rows in real runs)
        self.lstm = nn.LSTM(t["word_dim"], self.h, 1, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * self.h, embed_dim)

    def forward(self, ids, lens):
        b, t = ids.shape
        x = self.embedding(ids)
        steps = torch.arange(t)[None]
        mask = steps < lens[:, None]
        if self.variant == "packed":
            packed = nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)
        else:
            rev = torch.where(mask, lens[:, None] - 1 - steps, steps)

            def gather(v):
                return v.gather(1, rev[:, :, None].expand(-1, -1, v.shape[2]))

            def run(v, sfx):
                params = [getattr(self.lstm, f"{n}_l0{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                z = v.new_zeros(1, b, self.h)
                # has_biases, num_layers, dropout, train, bidirectional, batch_first: the Rust call's arguments
                return torch.lstm(v, (z, z), params, True, 1, 0.0, LSTM_TRAIN, False, True)[0]

            out = torch.cat([run(x, ""), gather(run(gather(x), "_reverse"))], 2)
        pooled = (out * mask[:, :, None].to(out.dtype)).sum(1) / lens[:, None].to(out.dtype)
        return l2(self.proj(pooled))


class Lite0Tail(nn.Module):
    """Lite0 from stage 6 (one MBConv 192 -> 1152 -> 320, 3x3 depthwise) + head conv 320 -> 1280, BN in eval mode
    (eps 1e-3; the trainer keeps running statistics frozen), ReLU6, then average or GPO pooling: the trainer's
    `--finetune-from 6` image side. Channels-last, as the trainer runs it. `fold`: each BN folded into its conv,
    as the trainer's `Conv::forward_bn` does."""

    def __init__(self, pooling, fold):
        super().__init__()

        def conv_bn(cin, cout, k=1, groups=1):
            return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=1e-3))

        self.fold = fold
        self.expand, self.depthwise = conv_bn(192, 1152), conv_bn(1152, 1152, 3, groups=1152)
        self.project, self.head = conv_bn(1152, 320), conv_bn(320, 1280)
        self.gpo = nn.Parameter(torch.zeros(49)) if pooling == "gpo" else None

    def conv_bn(self, block, x):
        if not self.fold:
            return block(x)
        conv, bn = block
        scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
        return F.conv2d(x, conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale,
                        padding=conv.padding, groups=conv.groups)

    def forward(self, x):
        x = F.relu6(self.conv_bn(self.expand, x))
        x = F.relu6(self.conv_bn(self.depthwise, x))
        x = F.relu6(self.conv_bn(self.head, self.conv_bn(self.project, x)))
        if self.gpo is None:
            return x.mean((2, 3))
        sorted_, _ = x.flatten(2).sort(2, descending=True)
        return (sorted_ * self.gpo.softmax(0)).sum(2)


def info_nce(img, txt, image_ids, tau):
    scores = img @ txt.t()
    b = scores.shape[0]
    same = image_ids[:, None] == image_ids[None, :]
    logits = (scores / tau).masked_fill(same & ~torch.eye(b, dtype=torch.bool), float("-inf"))
    target = torch.arange(b)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    ap.add_argument("--manifest", default=os.path.join(root, "static", "model", "manifest.json"))
    ap.add_argument("--batch", type=int, default=0, help="0: the shipped batch size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--variant", nargs="+", default=["reference", "folded", "packed"],
                    choices=["reference", "folded", "packed"])
    ap.add_argument("--lstm-train", type=int, default=1, help="the `train` flag of torch.lstm (1, as the trainer)")
    ap.add_argument("--phases", action="store_true", help="also print where a step goes (median ms per phase), as "
                    "IMGPICK_BENCH_PHASES=1 does for the Rust bench")
    args = ap.parse_args()
    global LSTM_TRAIN
    LSTM_TRAIN = bool(args.lstm_train)
    torch.set_num_threads(args.threads)
    with open(args.manifest) as f:
        m = json.load(f)
    cfg = m["training"]["config"]
    assert cfg["loss"] == "infonce", "the bench implements the shipped InfoNCE loss only"
    batch = args.batch or cfg["batch_size"]
    caps, images = synthetic_batch(batch, m["text"]["vocab_size"], args.max_len)
    image_ids = torch.tensor(images)
    # Same line as the Rust bench prints: equal lines = equal batches.
    print(f"batch: {batch} captions, mean length {sum(map(len, caps)) / batch:.2f}, first ids {caps[0][:3]}, "
          f"image ids {images[:3]}", file=sys.stderr)
    for variant in args.variant:
        torch.manual_seed(0)
        text = TextEncoder(m["text"], m["embed_dim"], variant)
        image = nn.Linear(m["image"]["feature_dim"], m["embed_dim"])
        finetune = cfg.get("finetune_from")
        assert finetune in (None, 6), "the bench implements the frozen backbone and --finetune-from 6 only"
        tail = Lite0Tail(cfg.get("image_pooling", "avg"), variant == "folded").eval().to(memory_format=torch.channels_last) if finetune else None
        if tail is None:
            feats = torch.rand(batch, m["image"]["feature_dim"]) * 2.0
        else:  # cached stage-6 activations, stored f16 (the trainer converts each batch to f32)
            feats = torch.randn(batch, 192, 7, 7).half()
        emb = [text.embedding.weight]
        backbone = [p for n, p in tail.named_parameters() if n != "gpo"] if tail is not None else []
        heads = list(image.parameters()) + ([tail.gpo] if tail is not None and tail.gpo is not None else [])
        rest = [p for p in list(text.parameters()) + heads if p is not text.embedding.weight]
        opt = torch.optim.Adam([{"params": rest}, {"params": emb, "lr": cfg["lr"] * cfg["embedding_lr_scale"]},
                                {"params": backbone, "lr": cfg["lr"] * cfg.get("backbone_lr_scale", 0.1)}],
                               lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg["weight_decay"])
        params = rest + emb + backbone

        def image_side():
            if tail is None:
                return l2(image(feats))
            x = feats.float().contiguous(memory_format=torch.channels_last)
            return l2(image(tail(x)))

        def step():
            ids, lens = pad_batch(caps)
            loss = info_nce(image_side(), text(ids, lens), image_ids, cfg["tau"])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
            opt.step()
            return loss.item()

        if args.phases:
            ph = [[], [], []]
            for i in range(args.warmup + 20):
                t0 = time.perf_counter()
                ids, lens = pad_batch(caps)
                loss = info_nce(image_side(), text(ids, lens), image_ids, cfg["tau"])
                t1 = time.perf_counter()
                opt.zero_grad()
                loss.backward()
                t2 = time.perf_counter()
                nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
                opt.step()
                loss.item()
                t3 = time.perf_counter()
                if i >= args.warmup:
                    for v, d in zip(ph, (t1 - t0, t2 - t1, t3 - t2)):
                        v.append(d * 1e3)
            f, b, o = (sorted(v)[len(v) // 2] for v in ph)
            print(f"pytorch {variant} phases (median ms): forward {f:.1f}, zero_grad+backward {b:.1f}, clip+adam {o:.1f}",
                  file=sys.stderr)
        for _ in range(args.warmup):
            step()
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        print(json.dumps({"impl": "pytorch", "variant": variant, "batch": batch, "threads": args.threads,
                          "torch": torch.__version__, "median_s": round(med, 5), "steps_per_s": round(1 / med, 3),
                          "captions_per_s": round(batch / med, 1)}), flush=True)


if __name__ == "__main__":
    main()
