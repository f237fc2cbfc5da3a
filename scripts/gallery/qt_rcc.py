"""Reads the files inside a Qt binary resource bundle (.rcc), the format GCompris ships its images in.

Standard library only. Format (qtbase src/corelib/io/qresource.cpp, rcc.cpp): a "qres" header with three
offsets (tree, data, names); the tree is an array of fixed-size nodes (14 bytes, 22 from format version 2 on:
+ an 8-byte modification time), each naming a directory (child count, first child index) or a file (locale,
data offset). A file's data is a 4-byte length and the bytes, zlib-compressed (with a 4-byte size prefix) when
flag 1 is set; flag 4 (zstd) is reported as an error since no bundle we read uses it.
"""
import struct
import zlib

FLAG_COMPRESSED = 0x01
FLAG_DIRECTORY = 0x02
FLAG_COMPRESSED_ZSTD = 0x04


class RccError(ValueError):
    pass


class RccBundle:
    def __init__(self, data: bytes, name: str = "<rcc>"):
        if data[:4] != b"qres" or len(data) < 20:
            raise RccError(f"{name}: not a Qt resource bundle (no 'qres' header)")
        self.name = name
        self.data = data
        self.version, self.tree, self.payload, self.names = struct.unpack(">IIII", data[4:20])
        if self.version not in (1, 2, 3):
            raise RccError(f"{name}: unsupported rcc format version {self.version}")
        self.node_size = 14 if self.version == 1 else 22

    @classmethod
    def open(cls, path):
        with open(path, "rb") as f:
            return cls(f.read(), str(path))

    def _name(self, offset):
        at = self.names + offset
        (length,) = struct.unpack(">H", self.data[at : at + 2])
        return self.data[at + 6 : at + 6 + 2 * length].decode("utf-16-be")

    def _node(self, index):
        at = self.tree + index * self.node_size
        name_offset, flags = struct.unpack(">IH", self.data[at : at + 6])
        return at, name_offset, flags

    def files(self):
        """Yields (path, node index) of every file, in tree order; paths use '/' and have no leading slash."""
        stack = [(0, "")]
        while stack:
            index, prefix = stack.pop()
            at, name_offset, flags = self._node(index)
            name = "" if index == 0 else self._name(name_offset)
            path = f"{prefix}/{name}" if prefix else name
            if flags & FLAG_DIRECTORY:
                count, first = struct.unpack(">II", self.data[at + 6 : at + 14])
                stack.extend((first + i, path) for i in reversed(range(count)))
            else:
                yield path, index

    def read(self, index) -> bytes:
        at, _, flags = self._node(index)
        (offset,) = struct.unpack(">I", self.data[at + 10 : at + 14])
        start = self.payload + offset
        (length,) = struct.unpack(">I", self.data[start : start + 4])
        blob = self.data[start + 4 : start + 4 + length]
        if flags & FLAG_COMPRESSED_ZSTD:
            raise RccError(f"{self.name}: zstd-compressed entries are not supported")
        if flags & FLAG_COMPRESSED:
            return zlib.decompress(blob[4:])
        return blob

    def as_dict(self):
        return {path: self.read(index) for path, index in self.files()}
