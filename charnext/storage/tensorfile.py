"""safetensors files, read and written with numpy alone: no pickle, no torch, nothing run.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian header
length N, N bytes of JSON (padded with spaces), then the tensors' raw little-endian bytes:

    {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...,
     "__metadata__": {"key": "string value", ...}}

Offsets count from the first byte after the header; the tensors tile that buffer exactly.
This module reads and checks every part of that before trusting it, and refuses anything else
with a `TensorFileError` naming the first problem. bfloat16 has no numpy dtype: its tensors
are read as uint16 bit patterns and marked in `TensorFile.bf16` (see `bf16_to_float32`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from charnext.errors import TensorFileError

MAX_HEADER = 100_000_000  # bytes of JSON header at most, as the reference implementation allows

# safetensors dtype name <-> numpy dtype (little-endian); BF16 travels as its uint16 bits.
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {dt: name for name, dt in DTYPES.items() if name not in ("BF16",)}


@dataclass
class TensorFile:
    """The tensors of a safetensors file, in header order, and its string metadata."""

    tensors: dict[str, np.ndarray]  # name -> array (read-only view of the file's bytes)
    metadata: dict[str, str] = field(default_factory=dict)
    bf16: set[str] = field(default_factory=set)  # names whose uint16 arrays hold bfloat16 bits


def looks_like(head: bytes) -> bool:
    """Whether the first bytes of a file could start a safetensors file (length, then `{`)."""
    return len(head) >= 9 and head[8:9] == b"{"


def read(data: bytes) -> TensorFile:
    """Parse a whole safetensors file held in memory; raise TensorFileError if malformed."""
    if len(data) < 8:
        raise TensorFileError(f"{len(data)} bytes, too short for a header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise TensorFileError("the header length points past the end of the file (truncated?)")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise TensorFileError(f"the header is not JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise TensorFileError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TensorFileError("__metadata__ is not a map of strings to strings")
    buffer = memoryview(data)[8 + n :]
    tensors: dict[str, np.ndarray] = {}
    bf16: set[str] = set()
    spans = []
    for name, info in header.items():
        if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}):
            raise TensorFileError(f"tensor {name!r}: entry is not dtype/shape/data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise TensorFileError(f"tensor {name!r}: unsupported dtype {dtype!r}")
        if not (isinstance(shape, list) and all(_natural(d) for d in shape)):
            raise TensorFileError(f"tensor {name!r}: malformed shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_natural(o) for o in offsets)):
            raise TensorFileError(f"tensor {name!r}: malformed data_offsets")
        begin, end = offsets
        size = DTYPES[dtype].itemsize * int(np.prod(shape, dtype=object))
        if end - begin != size or end > len(buffer):
            raise TensorFileError(f"tensor {name!r}: its bytes do not match its shape, or lie past the end")
        spans.append((begin, end))
        tensors[name] = np.frombuffer(buffer[begin:end], dtype=DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":
            bf16.add(name)
    # the tensors must tile the buffer exactly: no gaps, no overlaps, nothing after the last
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise TensorFileError("the tensors' bytes overlap or leave gaps")
        position = end
    if position != len(buffer):
        raise TensorFileError("the data section's size does not match the header (truncated or padded)")
    return TensorFile(tensors, dict(metadata), bf16)


def _natural(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def write(
    f: BinaryIO, tensors: dict[str, np.ndarray], metadata: dict[str, str], bf16: set[str] = frozenset()
) -> None:
    """Write `tensors` (and string `metadata`) to the open binary file `f` as safetensors.

    Tensors are laid out widest dtype first, so that every tensor starts at a multiple of its
    item size (the header is padded to a multiple of 8); `bf16` names uint16 arrays that hold
    bfloat16 bits.
    """
    # little-endian and C-ordered (np.require keeps 0-d arrays 0-d, unlike ascontiguousarray)
    arrays = {name: np.require(a, a.dtype.newbyteorder("<"), "C") for name, a in tensors.items()}
    order = sorted(arrays, key=lambda name: -arrays[name].dtype.itemsize)  # stable: ties keep order
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in order:
        a = arrays[name]
        dtype = "BF16" if name in bf16 else _NAMES.get(a.dtype)
        if dtype is None:
            raise TypeError(f"tensor {name!r}: dtype {a.dtype} has no safetensors equivalent")
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for name in order:
        f.write(arrays[name].tobytes())


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 values (exact: bfloat16 is float32's top half)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)
