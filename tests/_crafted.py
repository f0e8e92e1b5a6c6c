"""Builders of hostile bundles for the crafted-bundle tests (issue 11's corpus).

Every bundle here is self-consistent: its hashes match (``write_bundle`` computes them), as an
attacker who can write one store object makes them; with ``sign_key`` it is even signed, as a
careless or compromised author would. What is hostile is the payload:

- skops forests whose tree node arrays point outside themselves or cycle;
- zip members that decompress to hundreds of MB or GB from a few MB of file. They are written
  without ever holding (or compressing) the whole member: one deflate block of a 16 MiB chunk
  after a full flush is the same bytes every time, so it is compressed once and repeated;
- ONNX graphs whose ``ConstantOfShape`` of a constant shape onnxruntime would fold at session
  creation into gigabytes.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphazoo.bundle import read_bundle, write_bundle

__all__ = ["Bomb", "constant_of_shape_onnx", "rebundle", "write_zip", "zip_members"]

_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class Bomb:
    """A zip member of ``prefix``, ``size`` bytes of ``fill`` repeated, then ``suffix``
    (deflated). ``fill`` is one byte value or a short pattern."""

    prefix: bytes
    fill: int | bytes
    size: int
    suffix: bytes = b""

    @property
    def total(self) -> int:
        return len(self.prefix) + self.size + len(self.suffix)

    def deflated_and_crc(self) -> tuple[Iterable[bytes], int]:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        head = compressor.compress(self.prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
        pattern = bytes([self.fill]) if isinstance(self.fill, int) else self.fill
        chunk = pattern * (_CHUNK // len(pattern))
        block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
        again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
        assert block == again, "a full-flush deflate block must repeat byte for byte"
        whole, rest = divmod(self.size, len(chunk))
        crc = zlib.crc32(self.prefix)
        for _ in range(whole):
            crc = zlib.crc32(chunk, crc)
        tail_input = chunk[:rest] + self.suffix
        crc = zlib.crc32(tail_input, crc)
        # After a full flush the compressor starts afresh, so the tail compresses as it would
        # after `whole` blocks: the stream is head, the block `whole` times, then the tail.
        tail = compressor.compress(tail_input) + compressor.flush()
        pieces = [head] + [block] * whole + [tail]
        return pieces, crc


def write_zip(path: Path, members: list[tuple[str, bytes | Bomb]]) -> None:
    """A zip archive of ``members``: bytes are stored, :class:`Bomb` members deflated."""
    central = []
    with open(path, "wb") as out:
        for name, content in members:
            offset = out.tell()
            raw_name = name.encode()
            if isinstance(content, Bomb):
                pieces, crc = content.deflated_and_crc()
                pieces = list(pieces)
                method, size = zipfile.ZIP_DEFLATED, content.total
                compressed = sum(len(p) for p in pieces)
            else:
                pieces, crc = [content], zlib.crc32(content)
                method, size, compressed = zipfile.ZIP_STORED, len(content), len(content)
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc,
                                  compressed, size, len(raw_name), 0) + raw_name)
            for piece in pieces:
                out.write(piece)
            central.append((raw_name, method, crc, compressed, size, offset))
        start = out.tell()
        for raw_name, method, crc, compressed, size, offset in central:
            out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                                  crc, compressed, size, len(raw_name), 0, 0, 0, 0, 0, offset)
                      + raw_name)
        end = out.tell()
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central),
                              end - start, start, 0))


def zip_members(path: Path) -> list[tuple[str, bytes]]:
    """The members of a (small, real) zip archive, in order."""
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def rebundle(store: Any, source_key: str, key: str, payload: Path, *,
             sign_key: bytes | None = None, edit: Any = None) -> dict[str, Any]:
    """Store ``payload`` under ``key`` with the manifest of the bundle at ``source_key``
    (``edit(manifest)`` may change it), hashes recomputed, signed when ``sign_key``."""
    manifest = dict(read_bundle(store, source_key, None).manifest)
    for field in ("files", "protocol", "signature"):
        manifest.pop(field, None)
    manifest["key"] = key
    if edit is not None:
        edit(manifest)
    return write_bundle(store, key, manifest, payload.parent, [payload.name], sign_key)


def constant_of_shape_onnx(path: Path, rows: int, columns: int, *, via: str = "constant",
                           producer: str = "skl2onnx") -> None:
    """An ONNX regressor graph whose output adds a ``ConstantOfShape([rows, columns])`` of
    float32 zeros to its input: onnxruntime folds the constant when the session is created.

    ``via`` feeds the shape from a ``Constant`` node or from an ``initializer``.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([rows, columns], dtype=np.int64), "shape")
    nodes, initializers = [], []
    if via == "constant":
        nodes.append(helper.make_node("Constant", [], ["shape"], value=shape))
    else:
        initializers.append(shape)
    nodes.append(helper.make_node("ConstantOfShape", ["shape"], ["big"], name="bomb",
                                  value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])))
    nodes.append(helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0))
    nodes.append(helper.make_node("Add", ["X", "total"], ["Y"]))
    graph = helper.make_graph(
        nodes, "bomb", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])], initializers)
    model = helper.make_model(graph, producer_name=producer,
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
