"""The `.krk` byte layout (docs/FORMAT.md, "Packed model"): write and read, refusing hostile input.

`write_bytes(doc, tensors)` serialises a JSON document and tensors (dense torch tensors or
`CodedTensor`s). `read_bytes(data)` checks the header and the sha256 first, then parses every
record header with bounds checks *before* decoding anything, so no declared length or count
can make it allocate more than the file's size (or the element limit) allows.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

import numpy as np
import torch

from karuku.codec import huffman
from karuku.codec.bits import fixed_len
from karuku.codec.coded import CodedTensor, decode_stream
from karuku.errors import KarukuError

MAGIC = b"\x89KRK\r\n\x1a\n"
VERSION = 1
HEADER = struct.Struct("<8sHHII")  # magic, version, flags, doc_len, n_tensors
DIGEST = 32
MIN_BYTES = HEADER.size + DIGEST
MAX_FILE_BYTES = 2 << 30
MAX_DOC_BYTES = 1 << 20
MAX_TENSORS = 1 << 16
MAX_NAME = 1024
MAX_NDIM = 8
MAX_ELEMENTS = 1 << 28  # over the whole file: bounds what a tiny file can make a reader allocate

DTYPES: dict[int, torch.dtype] = {1: torch.float32, 2: torch.float16, 3: torch.bfloat16, 4: torch.int64,
                                  5: torch.int32, 6: torch.int8, 7: torch.uint8, 8: torch.bool}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
CORRUPT = "the file is corrupt or was not written by karuku pack; re-pack the model"


def write_bytes(doc: dict, tensors: dict[str, torch.Tensor | CodedTensor]) -> bytes:
    """Serialise a document and tensors into a `.krk` file's bytes."""
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    parts = [HEADER.pack(MAGIC, VERSION, 0, len(body), len(tensors)), body]
    for name, t in tensors.items():
        raw = name.encode()
        parts.append(struct.pack("<H", len(raw)) + raw)
        shape = tuple(t.shape)
        if isinstance(t, CodedTensor):
            parts.append(struct.pack(f"<BB{len(shape)}I", 1, len(shape), *shape))
            parts.append(_coded(t))
        else:
            if t.dtype not in DTYPE_CODES:
                raise KarukuError(f"tensor {name} has dtype {t.dtype}, which .krk files do not store")
            parts.append(struct.pack(f"<BB{len(shape)}IB", 0, len(shape), *shape, DTYPE_CODES[t.dtype]))
            flat = t.detach().contiguous().cpu().reshape(-1)
            parts.append(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    blob = b"".join(parts)
    return blob + hashlib.sha256(blob).digest()


def _coded(t: CodedTensor) -> bytes:
    coding = (t.weights.lengths is not None) | ((t.gaps.lengths is not None) << 1)
    out = [struct.pack("<BBBBII", t.bits, t.index_bits, coding, 0, t.nnz, t.gaps.codes.size),
           t.codebook.astype("<f4").tobytes()]
    for s in (t.weights, t.gaps):
        payload = s.payload()
        if s.lengths is not None:
            out.append(huffman.pack_lengths(s.lengths))
        out.append(struct.pack("<I", len(payload)) + payload)
    return b"".join(out)


class _Reader:
    """Bounds-checked reads over the record area; running past its end is 'truncated'."""

    def __init__(self, buf: memoryview, end: int, source: str):
        self.buf, self.pos, self.end, self.source = buf, HEADER.size, end, source

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.end - self.pos:
            raise KarukuError(f"{self.source}: {what} declares {n} bytes but only {self.end - self.pos} remain",
                              CORRUPT)
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


@dataclass
class _Pending:
    """A shared record whose sizes are checked but whose streams are not decoded yet."""

    shape: tuple[int, ...]
    codebook: np.ndarray
    streams: list[tuple[bytes, int, int, np.ndarray | None]]  # payload, count, width, lengths


def read_bytes(data: bytes, source: str = "packed model", max_elements: int = MAX_ELEMENTS
               ) -> tuple[dict, dict[str, torch.Tensor], dict[str, CodedTensor]]:
    """Parse a `.krk` file into (document, dense tensors by name, coded form of the shared ones).

    Every kind of damage is one KarukuError naming the problem.
    """
    if len(data) < MIN_BYTES:
        raise KarukuError(f"{source} is too short to be a .krk file ({len(data)} bytes)", CORRUPT)
    magic, version, flags, doc_len, n_tensors = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise KarukuError(f"{source} is not a .krk file (wrong magic {magic[:8]!r})",
                          "pass a file written by `karuku pack`")
    if version > VERSION or flags:
        raise KarukuError(f"{source} has .krk version {version} flags {flags}, newer than this karuku reads",
                          "upgrade karuku")
    if version < 1:
        raise KarukuError(f"{source} has invalid .krk version {version}", CORRUPT)
    end = len(data) - DIGEST
    if hashlib.sha256(memoryview(data)[:end]).digest() != bytes(data[end:]):
        raise KarukuError(f"{source} is corrupt: checksum mismatch", "re-copy or re-pack the file")
    if doc_len > MAX_DOC_BYTES or n_tensors > MAX_TENSORS:
        raise KarukuError(f"{source} declares a {doc_len}-byte document and {n_tensors} tensors, over the limits "
                          f"({MAX_DOC_BYTES}, {MAX_TENSORS})", CORRUPT)
    r = _Reader(memoryview(data), end, source)
    try:
        doc = json.loads(bytes(r.take(doc_len, "the document")).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KarukuError(f"{source}: the document is not valid UTF-8 JSON", CORRUPT) from None
    if not isinstance(doc, dict) or doc.get("format") != "karuku.krk":
        raise KarukuError(f"{source}: the document does not describe a karuku.krk model", CORRUPT)
    pending: dict[str, torch.Tensor | _Pending] = {}
    budget = max_elements
    for i in range(n_tensors):
        name, t = _record(r, i, source)
        numel = int(np.prod(t.shape if isinstance(t, _Pending) else tuple(t.shape), dtype=np.int64))
        budget -= numel
        if budget < 0:
            raise KarukuError(f"{source}: tensors declare more than {max_elements:,} elements in all",
                              "the file is hostile or corrupt; pass a larger max_elements only if you trust it")
        if name in pending:
            raise KarukuError(f"{source}: tensor {name} appears twice", CORRUPT)
        pending[name] = t
    if r.pos != end:
        raise KarukuError(f"{source}: {end - r.pos} unexpected bytes after the last tensor", CORRUPT)
    tensors, coded = {}, {}
    for name, t in pending.items():
        if isinstance(t, _Pending):
            coded[name], tensors[name] = _decode(name, t, source)
        else:
            tensors[name] = t
    return doc, tensors, coded


def _record(r: _Reader, i: int, source: str) -> tuple[str, torch.Tensor | _Pending]:
    (name_len,) = r.unpack("<H", f"tensor #{i} name length")
    if not 1 <= name_len <= MAX_NAME:
        raise KarukuError(f"{source}: tensor #{i} has a name of {name_len} bytes (1..{MAX_NAME})", CORRUPT)
    try:
        name = bytes(r.take(name_len, f"tensor #{i} name")).decode("utf-8")
    except UnicodeDecodeError:
        raise KarukuError(f"{source}: tensor #{i} has a name that is not UTF-8", CORRUPT) from None
    if not name.isprintable():  # later messages quote the name: a newline or escape would break them
        raise KarukuError(f"{source}: tensor #{i} has a name with control characters ({name!r})", CORRUPT)
    kind, ndim = r.unpack("<BB", f"tensor {name} header")
    if ndim > MAX_NDIM:
        raise KarukuError(f"{source}: tensor {name} has {ndim} dimensions (at most {MAX_NDIM})", CORRUPT)
    shape = r.unpack(f"<{ndim}I", f"tensor {name} shape")
    numel = int(np.prod(shape, dtype=object))  # exact: dimensions may be hostile
    if numel > MAX_ELEMENTS:
        raise KarukuError(f"{source}: tensor {name} declares {numel:,} elements (limit {MAX_ELEMENTS:,})", CORRUPT)
    if kind == 0:
        (code,) = r.unpack("<B", f"tensor {name} dtype")
        if code not in DTYPES:
            raise KarukuError(f"{source}: tensor {name} has unknown dtype code {code}", CORRUPT)
        dtype = DTYPES[code]
        raw = r.take(numel * dtype.itemsize, f"tensor {name} data")
        flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if numel else torch.zeros(0, dtype=torch.uint8)
        return name, flat.view(dtype).reshape(shape).clone()
    if kind != 1:
        raise KarukuError(f"{source}: tensor {name} has unknown kind {kind}", "upgrade karuku, or re-pack")
    bits, p, coding, reserved, nnz, m = r.unpack("<BBBBII", f"tensor {name} coding header")
    if not (1 <= bits <= 8 and 1 <= p <= 8):
        raise KarukuError(f"{source}: tensor {name} has weight bits {bits} / index bits {p} outside 1..8", CORRUPT)
    if coding > 3 or reserved:
        raise KarukuError(f"{source}: tensor {name} uses unknown coding bits {coding}/{reserved}", "upgrade karuku")
    if not 1 <= nnz <= m <= numel:
        raise KarukuError(f"{source}: tensor {name} declares {nnz} weights and {m} gaps for {numel} elements "
                          "(need 1 ≤ weights ≤ gaps ≤ elements)", CORRUPT)
    codebook = np.frombuffer(bytes(r.take(4 << bits, f"tensor {name} codebook")), dtype="<f4").astype(np.float32)
    streams = []
    for what, count, width, huff in (("weight", nnz, bits, coding & 1), ("gap", m, p, coding & 2)):
        lengths = None
        if huff:
            table = bytes(r.take(((1 << width) + 1) // 2, f"tensor {name} {what} code table"))
            try:
                lengths = huffman.unpack_lengths(table, 1 << width)
            except KarukuError as exc:
                raise KarukuError(f"{source}: tensor {name} {what} codes: {exc.message}", CORRUPT) from None
        (size,) = r.unpack("<I", f"tensor {name} {what} stream length")
        payload = bytes(r.take(size, f"tensor {name} {what} stream"))
        need = fixed_len(count, width) if lengths is None else (count + 7) // 8
        if (lengths is None and size != need) or (lengths is not None and size < need):
            raise KarukuError(f"{source}: tensor {name} {what} stream has {size} bytes for {count} codes", CORRUPT)
        streams.append((payload, count, width, lengths))
    return name, _Pending(tuple(shape), codebook, streams)


def _decode(name: str, t: _Pending, source: str) -> tuple[CodedTensor, torch.Tensor]:
    try:
        weights, gaps = (decode_stream(*s) for s in t.streams)
        coded = CodedTensor(t.shape, t.codebook, weights, gaps)
        dense = coded.dense()  # refuses gap streams that do not fit the tensor
    except KarukuError as exc:
        raise KarukuError(f"{source}: tensor {name}: {exc.message}", CORRUPT) from None
    return coded, torch.from_numpy(dense)
