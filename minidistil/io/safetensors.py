"""The safetensors format in pure NumPy: a strict reader (memory-mapped) and an atomic writer.

A safetensors file is, byte by byte (the format published by Hugging Face for tensors without pickle):

    [8 bytes]  N, the header length, an unsigned 64-bit little-endian integer
    [N bytes]  a UTF-8 JSON object, padded with spaces (so the buffer starts 8-byte aligned):
               {"__metadata__": {"str": "str", ...},                       (optional)
                "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    [rest]     the byte buffer; each tensor is C-order, little-endian, at buffer[begin:end]

The reader trusts nothing in the file. Before a single tensor byte is touched it checks that the
header length is sane and inside the file, that the header is a UTF-8 JSON object without duplicate
keys, that every entry has a known dtype, a shape of non-negative integers and offsets inside the
buffer, that the byte count is exactly prod(shape) * itemsize, and that the tensors tile the buffer
with no gap and no overlap. Any violation raises ``SafetensorsError`` (a ``ValueError``) that says
what was wrong; nothing is ever read out of bounds and nothing is unpickled.

bfloat16 has no NumPy dtype. It is the top half of a float32, so it is read by widening the uint16
bits into the high half of a uint32 (exact), and written by rounding float32 to the nearest bfloat16
(ties to even).

Shapes: the module works on flat byte buffers; a tensor of shape S holds prod(S) elements.
"""
from __future__ import annotations

import json
import math
import mmap as _mmap
import os
from typing import Iterable, Mapping

import numpy as np

from ..atomic import atomic_write

__all__ = [
    "SafetensorsError", "SafetensorsFile", "load_file", "save_file", "read_header",
    "bf16_bits_to_float32", "float32_to_bf16_bits", "MAX_HEADER_BYTES", "DTYPES",
]

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference reader refuses headers above 100 MB too
_HEADER_LEN_BYTES = 8
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}

# format name -> little-endian NumPy dtype. BF16 is stored as raw uint16 bits (see module doc).
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
}
# NumPy kind+itemsize -> format name, for the writer (BF16 is only ever asked for explicitly).
_NUMPY_TO_NAME = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items() if name != "BF16"}


class SafetensorsError(ValueError):
    """A safetensors file (or a tensor dict handed to the writer) breaks the format."""


# ---------------------------------------------------------------- bfloat16 <-> float32

def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns -> float32 values (exact: bf16 is a truncated float32)."""
    bits = np.asarray(bits)
    if bits.dtype.kind != "u" or bits.dtype.itemsize != 2:
        raise TypeError(f"bits must be a uint16 array, got dtype {bits.dtype}")
    wide = bits.astype(np.uint32) << np.uint32(16)  # same shape as bits
    return wide.view(np.float32)


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 values -> uint16 bfloat16 bits, rounded to nearest, ties to even; NaN stays NaN."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)  # same shape as x; uint64 so the rounding add cannot wrap
    # Adding 0x7FFF plus the lowest kept bit, then dropping 16 bits, is round-half-to-even.
    rounded = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    out = rounded.astype(np.uint16)  # same shape as x
    nan = np.isnan(x)
    # Truncating a NaN could clear every mantissa bit (turning it into inf): keep it a quiet NaN.
    out[nan] = ((u[nan] >> np.uint64(16)) | np.uint64(0x0040)).astype(np.uint16)
    return out


# ---------------------------------------------------------------- header parsing and validation

def _reject_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise SafetensorsError(f"header has the key {key!r} twice")
        obj[key] = value
    return obj


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true must not pass as 1


def _parse_header(raw: bytes, buffer_len: int, where: str):
    """Validate the JSON header bytes; returns (entries {name: (dtype_name, shape, begin, end)}, metadata)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError(f"{where}: header is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    if not text.startswith("{"):
        raise SafetensorsError(f"{where}: header must start with '{{', got {text[:20]!r}")
    try:
        header = json.loads(text, object_pairs_hook=_reject_duplicates)
    except SafetensorsError as e:
        raise SafetensorsError(f"{where}: {e}") from None
    except (ValueError, RecursionError) as e:  # json.JSONDecodeError is a ValueError
        raise SafetensorsError(f"{where}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where}: header must be a JSON object, got {type(header).__name__}")

    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError(f"{where}: __metadata__ must be an object of string -> string")

    entries = {}
    for name, info in header.items():
        what = f"{where}: tensor {name!r}"
        if not isinstance(info, dict):
            raise SafetensorsError(f"{what}: entry must be an object, got {type(info).__name__}")
        if set(info) != _ENTRY_KEYS:
            raise SafetensorsError(f"{what}: entry must have exactly the keys {sorted(_ENTRY_KEYS)}, "
                                   f"got {sorted(info)}")
        dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
            raise SafetensorsError(f"{what}: unknown dtype {dtype_name!r} (known: {sorted(DTYPES)})")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise SafetensorsError(f"{what}: shape must be a list of non-negative integers, got {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= buffer_len):
            raise SafetensorsError(f"{what}: data_offsets must be [begin, end] with "
                                   f"0 <= begin <= end <= {buffer_len} (the buffer size), got {offsets!r}")
        begin, end = offsets
        expected = math.prod(shape) * DTYPES[dtype_name].itemsize  # Python ints: no overflow
        if end - begin != expected:
            raise SafetensorsError(f"{what}: {end - begin} bytes in the buffer but dtype {dtype_name} "
                                   f"and shape {shape} need {expected}")
        entries[name] = (dtype_name, tuple(shape), begin, end)

    # The tensors must tile the buffer exactly: sorted by offsets, each starts where the last ended.
    position = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != position:
            kind = "overlaps the previous tensor" if begin < position else "leaves a gap before it"
            raise SafetensorsError(f"{where}: tensor {name!r} at bytes [{begin}, {end}) {kind} "
                                   f"(expected it to start at {position})")
        position = end
    if position != buffer_len:
        raise SafetensorsError(f"{where}: tensors cover {position} bytes but the buffer holds {buffer_len}")
    return entries, metadata


def read_header(path) -> tuple[dict, dict | None, int]:
    """Validate ``path`` and return (entries, metadata, data_start) without reading any tensor.

    ``entries`` maps name -> (dtype_name, shape, begin, end), offsets relative to ``data_start``.
    """
    path = os.fspath(path)
    where = repr(path)
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            if file_size < _HEADER_LEN_BYTES:
                raise SafetensorsError(f"{where}: file has {file_size} bytes, fewer than the 8-byte header length")
            n = int.from_bytes(f.read(_HEADER_LEN_BYTES), "little")
            if n > MAX_HEADER_BYTES:
                raise SafetensorsError(f"{where}: header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
            if _HEADER_LEN_BYTES + n > file_size:
                raise SafetensorsError(f"{where}: header length {n} runs past the end of the "
                                       f"{file_size}-byte file (truncated?)")
            raw = f.read(n)
    except OSError as e:
        raise SafetensorsError(f"{where}: cannot read the file ({e.strerror or e})") from None
    if len(raw) != n:  # the file shrank while we read it
        raise SafetensorsError(f"{where}: file ended inside the header")
    data_start = _HEADER_LEN_BYTES + n
    entries, metadata = _parse_header(raw, file_size - data_start, where)
    return entries, metadata, data_start


# ---------------------------------------------------------------- reading

class SafetensorsFile:
    """A validated, memory-mapped safetensors file; use as a context manager.

    >>> with SafetensorsFile("model.safetensors") as f:           # doctest: +SKIP
    ...     w = f.get("embeddings.word_embeddings.weight")          # (V, C), read-only view
    """

    def __init__(self, path, use_mmap: bool = True):
        self.path = os.fspath(path)
        self.entries, self.metadata, self._data_start = read_header(self.path)
        buffer_len = max((e[3] for e in self.entries.values()), default=0)
        self._buffer: np.ndarray
        if buffer_len == 0:  # mmap refuses empty ranges; every tensor here is empty anyway
            self._buffer = np.zeros(0, dtype=np.uint8)  # (0,)
        elif use_mmap:
            with open(self.path, "rb") as f:
                mm = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
            if len(mm) < self._data_start + buffer_len:  # the file shrank after validation
                mm.close()
                raise SafetensorsError(f"{self.path!r}: file was truncated while opening it")
            self._buffer = np.frombuffer(mm, dtype=np.uint8, count=buffer_len,
                                         offset=self._data_start)  # (buffer_len,) read-only
        else:
            with open(self.path, "rb") as f:
                f.seek(self._data_start)
                data = f.read(buffer_len)
            if len(data) != buffer_len:
                raise SafetensorsError(f"{self.path!r}: file ended inside the data buffer")
            self._buffer = np.frombuffer(data, dtype=np.uint8)  # (buffer_len,) read-only

    def keys(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name) -> bool:
        return name in self.entries

    def dtype_name(self, name: str) -> str:
        return self.entries[name][0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def get(self, name: str, bf16_as: str = "float32") -> np.ndarray:
        """The tensor ``name``: a read-only view into the file (BF16 is converted, so a new array)."""
        if name not in self.entries:
            raise KeyError(f"no tensor {name!r} in {self.path!r}; it has {len(self.entries)} tensors")
        dtype_name, shape, begin, end = self.entries[name]
        raw = self._buffer[begin:end]  # (nbytes,) uint8, inside the buffer by validation
        # .view needs no alignment, but only views of whole elements, which the byte count guarantees.
        arr = raw.view(DTYPES[dtype_name]).reshape(shape)  # shape
        if dtype_name == "BOOL" and arr.size and int(raw.max()) > 1:
            raise SafetensorsError(f"{self.path!r}: tensor {name!r} has BOOL bytes other than 0 and 1")
        if dtype_name == "BF16":
            if bf16_as == "float32":
                return bf16_bits_to_float32(arr)  # shape, float32
            if bf16_as != "bits":
                raise ValueError(f"bf16_as must be 'float32' or 'bits', got {bf16_as!r}")
        return arr

    def close(self) -> None:
        self._buffer = np.zeros(0, dtype=np.uint8)  # drop our reference; views handed out keep the map alive

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_file(path, use_mmap: bool = True, copy: bool = False) -> dict[str, np.ndarray]:
    """Read every tensor of a safetensors file into a dict (name -> array).

    With ``use_mmap`` the arrays are read-only views of the mapped file (pages load on first touch);
    ``copy=True`` returns writeable private copies instead. BF16 tensors come back as float32.
    A mapped file must not be truncated by another process while its arrays are in use (the OS
    would then kill the reader with SIGBUS, as with any mmap); ``use_mmap=False`` reads it whole.
    """
    with SafetensorsFile(path, use_mmap=use_mmap) as f:
        out = {name: f.get(name) for name in f.keys()}
    if copy:
        out = {k: np.array(v, copy=True) for k, v in out.items()}
    return out


# ---------------------------------------------------------------- writing

def _format_name(name: str, arr: np.ndarray, bf16: bool) -> str:
    if bf16:
        if arr.dtype.kind != "f":
            raise SafetensorsError(f"tensor {name!r}: only floating arrays can be stored as BF16, got {arr.dtype}")
        return "BF16"
    key = (arr.dtype.kind, arr.dtype.itemsize)
    if key not in _NUMPY_TO_NAME:
        raise SafetensorsError(f"tensor {name!r}: dtype {arr.dtype} has no safetensors equivalent "
                               f"(supported: bool, int8-64, uint8-64, float16/32/64, BF16 on request)")
    return _NUMPY_TO_NAME[key]


def save_file(tensors: Mapping[str, np.ndarray], path, metadata: Mapping[str, str] | None = None,
              bf16: Iterable[str] | bool = ()) -> None:
    """Write ``tensors`` (name -> array) to ``path`` atomically (temp file in the same folder + rename).

    Keys are written in sorted order, the header is padded with spaces to a multiple of 8 bytes,
    data is C-order little-endian. ``bf16`` names tensors to store as bfloat16 (True: every float one).
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of name -> array, got {type(tensors).__name__}")
    if metadata is not None and (not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("metadata must be a mapping of str -> str")
    bf16_names = set(tensors) if bf16 is True else set(bf16 or ())
    unknown = bf16_names - set(tensors)
    if unknown:
        raise ValueError(f"bf16 names tensors that are not in tensors: {sorted(unknown)}")

    header: dict = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str) or name == "__metadata__":
            raise SafetensorsError(f"tensor names must be strings other than '__metadata__', got {name!r}")
        arr = np.asarray(tensors[name])
        wants_bf16 = name in bf16_names and (bf16 is not True or arr.dtype.kind == "f")
        dtype_name = _format_name(name, arr, wants_bf16)
        if dtype_name == "BF16":
            data = float32_to_bf16_bits(arr).tobytes()
        else:
            data = np.ascontiguousarray(arr, dtype=DTYPES[dtype_name]).tobytes()  # little-endian C order
        header[name] = {"dtype": dtype_name, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)

    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the reference writer pads with spaces so the buffer is 8-aligned
    if len(raw) > MAX_HEADER_BYTES:
        raise SafetensorsError(f"header would be {len(raw)} bytes, above the {MAX_HEADER_BYTES}-byte limit")

    path = os.fspath(path)

    def write(f):
        f.write(len(raw).to_bytes(_HEADER_LEN_BYTES, "little"))
        f.write(raw)
        for data in chunks:
            f.write(data)

    atomic_write(path, write)
