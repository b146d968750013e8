"""Reader and writer for the IDX format of MNIST (and of users' own IDX files).

Header: two zero bytes, a type code, the number of dimensions, then one big-endian
uint32 per dimension; the data follow in C order, big-endian. The reader checks every
field against the file's real length before it allocates, so a hostile header cannot
make it read past the end or allocate more than the file holds.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from karuku.errors import KarukuError

# IDX type code -> big-endian numpy dtype
_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a native-endian array; raise KarukuError on any inconsistency."""
    if len(raw) < 4:
        raise KarukuError(f"{name}: not an IDX file (only {len(raw)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _TYPES:
        raise KarukuError(f"{name}: not an IDX file (bad magic {raw[:4].hex()})")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise KarukuError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = _TYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != expected:
        raise KarukuError(
            f"{name}: IDX header declares shape {tuple(dims)} ({expected} bytes) but the file holds {body}",
            "the file is truncated or corrupt; fetch it again",
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KarukuError(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise KarukuError(f"{path}: corrupt gzip data ({exc})") from None
    return parse_idx(raw, str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of `parse_idx`)."""
    arr = np.ascontiguousarray(array)
    code = _CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise KarukuError(f"IDX cannot hold dtype {arr.dtype}")
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(_TYPES[code]).tobytes()
