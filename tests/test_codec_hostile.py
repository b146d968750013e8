"""Hostile `.krk` files: the committed folder and fuzzing both end in one KarukuError line, fast and small."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karuku.codec import container
from karuku.codec.krk import from_bytes, load_packed
from karuku.errors import KarukuError
from make_hostile_krk import FOLDER, build

HOSTILE = sorted(p for p in FOLDER.glob("*.krk") if p.name != "valid.krk")
VALID = (FOLDER / "valid.krk").read_bytes()


def test_folder_matches_its_generator():
    made = build()
    assert sorted(p.name for p in FOLDER.glob("*.krk")) == sorted(made)
    for name, blob in made.items():
        assert (FOLDER / name).read_bytes() == blob, f"{name} is stale: run python tests/make_hostile_krk.py"


def test_valid_file_loads_and_runs():
    model, packed = load_packed(FOLDER / "valid.krk")
    assert model(torch.zeros(2, 1, 40)).shape == (2, 10)
    assert packed.coded["fc1.weight"].weights.lengths is not None  # the Huffman path is exercised


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_hostile_file_is_one_clear_error(path: Path):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(KarukuError) as info:
            load_packed(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 16 << 20  # bounded by the file, whatever it declares
    message = str(info.value)
    assert "\n" not in message and len(message) < 400


def _load(data: bytes) -> None:
    from_bytes(data, "fuzzed").build_model()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
def test_any_flipped_byte_is_a_checksum_error(offset, xor):
    data = bytearray(VALID)
    data[offset] ^= xor
    with pytest.raises(KarukuError):
        _load(bytes(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(VALID) - 1))
def test_any_truncation_is_refused(length):
    with pytest.raises(KarukuError):
        _load(VALID[:length])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(container.HEADER.size, len(VALID) - container.DIGEST - 1),
                          st.integers(0, 255)), min_size=1, max_size=4))
def test_resealed_mutations_load_or_fail_cleanly(edits):
    # the checksum is recomputed, so the damage reaches the parser and the decoders
    body = bytearray(VALID[: -container.DIGEST])
    for offset, value in edits:
        body[offset] = value
    data = bytes(body) + hashlib.sha256(body).digest()
    try:
        _load(data)
    except KarukuError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("byte", [0x0A, 0x1B])  # newline, escape: found by the fuzz test above
def test_a_tensor_name_with_control_characters_is_one_clean_line(byte):
    body = bytearray(VALID[: -container.DIGEST])
    at = body.index(b"fc3.weight")
    body[at + 3] = byte
    with pytest.raises(KarukuError, match="has a name with control characters") as err:
        _load(bytes(body) + hashlib.sha256(body).digest())
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_after_magic_are_refused(tail):
    body = container.MAGIC + tail
    with pytest.raises(KarukuError):
        _load(body + hashlib.sha256(body).digest())
