"""Writes tests/hostile_krk/: one valid tiny `.krk` file and damaged or hostile variants of it.

Run `python tests/make_hostile_krk.py` to regenerate; tests/test_codec_hostile.py checks the
committed folder matches this script byte for byte, and that every hostile file is refused
with one KarukuError line, quickly and in little memory.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from karuku.codec import container
from karuku.codec.coded import CodedTensor, Stream, code_tensor
from karuku.codec.krk import pack_state
from karuku.models.spec import ModelSpec

FOLDER = Path(__file__).parent / "hostile_krk"
SPEC = ModelSpec(name="mnist1d-mlp", input_shape=(1, 40), num_classes=10, kwargs={"hidden": [12, 8]})


def valid_state() -> dict[str, torch.Tensor]:
    """A deterministic pruned, 2-bit-shared state dict for SPEC (skewed, so streams are Huffman-coded)."""
    rng = np.random.default_rng(5)
    model = SPEC.build()
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith("weight"):
            values = rng.choice([0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, -0.25, 1.0], size=tuple(t.shape))
        else:
            values = rng.standard_normal(tuple(t.shape))
        state[name] = torch.from_numpy(values.astype(np.float32))
    return state


def reseal(blob: bytes) -> bytes:
    """Replace the checksum so the damage reaches the parser."""
    body = blob[: -container.DIGEST]
    return body + hashlib.sha256(body).digest()


def patch(blob: bytes, offset: int, fmt: str, *values) -> bytes:
    raw = bytearray(blob)
    struct.pack_into(fmt, raw, offset, *values)
    return reseal(bytes(raw))


def first_record(blob: bytes) -> int:
    """Offset of the first tensor record (after the header and the document)."""
    return container.HEADER.size + struct.unpack_from("<I", blob, 12)[0]


class _Pairs(list):
    """(name, tensor) pairs that may repeat a name, which a dict cannot."""

    def items(self):
        return self


def build() -> dict[str, bytes]:
    """Every file of the folder, by name."""
    packed = pack_state(valid_state(), SPEC, {"data": {"name": "mnist1d"}})
    good = packed.data
    first = first_record(good)
    rec = good.index(struct.pack("<H", 10) + b"fc1.weight")  # the first shared record
    name_len = struct.unpack_from("<H", good, rec)[0]
    kind_at = rec + 2 + name_len  # kind, ndim, dims...
    ndim = good[kind_at + 1]
    coding_at = kind_at + 2 + 4 * ndim  # b, p, coding, reserved, nnz, m
    bits, _, coding = good[coding_at], good[coding_at + 1], good[coding_at + 2]
    assert coding & 1, "the first tensor's weight codes must be Huffman-coded for the table attacks"
    table_at = coding_at + 12 + (4 << bits)
    stream_len_at = table_at + ((1 << bits) + 1) // 2
    doc_at = container.HEADER.size
    doc_len = first - doc_at
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10

    def with_tensors(tensors, spec=SPEC):
        doc = {"format": "karuku.krk", "karuku_version": "0.1.0", "model": spec.model_dump(mode="json"), "meta": {}}
        return container.write_bytes(doc, tensors)

    state = valid_state()
    coded = {n: code_tensor(n, t.numpy()) if n.endswith("weight") else t for n, t in state.items()}
    w0 = coded["fc1.weight"]
    past_end = CodedTensor((10, 10), np.ones(4, np.float32), Stream(np.zeros(2, np.int64), 2),
                           Stream(np.array([255, 255]), 8))
    big_model = ModelSpec(name="mnist1d-mlp", input_shape=(1, 40), num_classes=10, kwargs={"hidden": [13, 8]})
    files = {
        "valid.krk": good,
        "empty.krk": b"",
        "truncated_header.krk": good[:10],
        "truncated_half.krk": good[: len(good) // 2],
        "truncated_checksum.krk": good[:-1],
        "wrong_magic_zip.krk": b"PK\x03\x04" + good[4:],
        "text_file.krk": b'{"format": "karuku.krk"}\n' * 4,
        "newer_version.krk": patch(good, 8, "<H", 99),
        "unknown_flags.krk": patch(good, 10, "<H", 1),
        "bad_checksum.krk": good[:-1] + bytes([good[-1] ^ 1]),
        "flipped_bit.krk": bytes(flipped),
        "huge_doc_len.krk": patch(good, 12, "<I", 0xFFFFFFFF),
        "huge_tensor_count.krk": patch(good, 16, "<I", 0xFFFFFFFF),
        "doc_len_past_end.krk": patch(good, 12, "<I", len(good)),
        "huge_shape.krk": patch(good, kind_at + 2, "<I", 0xFFFFFFFF),
        "huge_ndim.krk": patch(good, kind_at + 1, "<B", 200),
        "huge_name_len.krk": patch(good, rec, "<H", 0xFFFF),
        "huge_stream_len.krk": patch(good, stream_len_at, "<I", 0xFFFFFFFF),
        "huge_nnz.krk": patch(good, coding_at + 4, "<II", 0xFFFFFFFF, 0xFFFFFFFF),
        "zero_nnz.krk": patch(good, coding_at + 4, "<I", 0),
        "weight_bits_9.krk": patch(good, coding_at, "<B", 9),
        "index_bits_0.krk": patch(good, coding_at + 1, "<B", 0),
        "unknown_coding.krk": patch(good, coding_at + 2, "<B", 0x80),
        "unknown_kind.krk": patch(good, kind_at, "<B", 7),
        "kraft_violation.krk": patch(good, table_at, "<B", 0x11),
        "bad_json.krk": patch(good, doc_at, "<B", ord("[")),
        "bad_utf8_doc.krk": patch(good, doc_at + 1, "<B", 0xFF),
        "bad_utf8_name.krk": patch(good, rec + 2, "<B", 0xFF),
        "not_karuku_doc.krk": reseal(good[:doc_at] + b'{"format":"zip"}' + b" " * (doc_len - 16) + good[first:]),
        "trailing_bytes.krk": reseal(good[:-container.DIGEST] + b"\x00" * 7 + good[-container.DIGEST:]),
        "duplicate_tensor.krk": with_tensors(_Pairs([("fc1.weight", w0), *coded.items()])),
        "gaps_past_end.krk": with_tensors({"x.weight": past_end}),
        "missing_tensor.krk": with_tensors({k: v for k, v in coded.items() if k != "fc2.bias"}),
        "wrong_architecture.krk": with_tensors(coded, big_model),
        "huge_model_spec.krk": with_tensors(coded, big_model.model_copy(update={"kwargs": {"hidden": [1 << 30, 8]}})),
        # built unchecked: karuku's own ModelSpec refuses such a shape, which is what the file must meet
        "huge_input_shape.krk": with_tensors(coded, ModelSpec.model_construct(
            name="lenet5", input_shape=(1, 1 << 20, 1 << 20), num_classes=10, kwargs={})),
        "unknown_model.krk": with_tensors(coded, SPEC.model_copy(update={"name": "no-such-net"})),
    }
    return files


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for old in FOLDER.glob("*.krk"):
        old.unlink()
    for name, blob in build().items():
        (FOLDER / name).write_bytes(blob)
    print(f"wrote {len(build())} files to {FOLDER}", file=sys.stderr)


if __name__ == "__main__":
    main()
