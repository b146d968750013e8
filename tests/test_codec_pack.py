"""Packing: exact bytes of a record, pack → unpack gives identical outputs, transforms, sizes, bad input."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import torch
from torch import nn

from karuku.codec import ClusterConfig, PackConfig, cluster, container, pack_state
from karuku.codec.coded import code_tensor
from karuku.codec.krk import from_bytes
from karuku.errors import KarukuError
from karuku.io.checkpoint import register_transform
from karuku.models.spec import ModelSpec


def _prune(model: nn.Module, keep: float) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                w = m.weight
                cut = w.abs().flatten().kthvalue(int((1 - keep) * w.numel())).values
                w[w.abs() <= cut] = 0


def test_exact_bytes_of_a_tiny_file():
    w = np.array([[0, 0.5, 0, 0, -1]], dtype=np.float32)
    coded = code_tensor("w", w, bits=1, index_bits=2, use_huffman=False)
    doc = {"format": "karuku.krk"}
    blob = container.write_bytes(doc, {"w": coded, "b": torch.tensor([1.5])})
    body = (container.MAGIC + struct.pack("<HHII", 1, 0, 23, 2) + b'{"format":"karuku.krk"}'
            + b"\x01\x00w" + bytes([1, 2]) + struct.pack("<2I", 1, 5)  # name, kind shared, ndim 2, shape
            + bytes([1, 2, 0, 0]) + struct.pack("<II", 2, 2)  # b, p, fixed width, nnz, m
            + struct.pack("<2f", -1.0, 0.5)  # codebook
            + struct.pack("<I", 1) + bytes([0b10000000])  # weights: codes 1, 0
            + struct.pack("<I", 1) + bytes([0b10110000])  # gaps 2, 3 at 2 bits
            + b"\x01\x00b" + bytes([0, 1]) + struct.pack("<I", 1) + bytes([1]) + struct.pack("<f", 1.5))
    assert blob == body + hashlib.sha256(body).digest()
    _, tensors, back = container.read_bytes(blob)
    assert np.array_equal(tensors["w"].numpy(), w) and torch.equal(tensors["b"], torch.tensor([1.5]))
    assert back["w"].bits == 1 and back["w"].index_bits == 2


@pytest.mark.parametrize("huffman", [True, False])
def test_pack_unpack_gives_identical_outputs(huffman):
    spec = ModelSpec(name="lenet5-lecun", input_shape=(1, 28, 28), num_classes=10)
    model = spec.build()
    _prune(model, 0.2)
    sharing = cluster(model, ClusterConfig(bits=5, layer_bits={"conv*": 8}))
    packed = pack_state(model.state_dict(), spec, {"cluster": sharing.meta()}, PackConfig(huffman=huffman))
    back = from_bytes(packed.data)
    rebuilt = back.build_model()
    x = torch.randn(16, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), rebuilt(x))
    for name, t in model.state_dict().items():
        assert torch.equal(t, rebuilt.state_dict()[name]), name
    assert back.coded["conv1.weight"].bits == 8 and back.coded["fc1.weight"].bits == 5
    assert all(s.lengths is None for c in back.coded.values() for s in (c.weights, c.gaps)) or huffman
    sizes = back.sizes()
    assert sizes.file_bytes == len(packed.data)
    # the report's per-record bytes plus header, document and checksum add up to the file
    doc_len = struct.unpack_from("<I", packed.data, 12)[0]
    assert sum(x.file_bytes for x in sizes.layers) + container.MIN_BYTES + doc_len == len(packed.data)
    d = sizes.as_dict()
    assert d["ratio_huffman"] >= d["ratio_shared"] if huffman else d["ratio_huffman"] == d["ratio_shared"]


def test_paper_sizes_follow_the_formula():
    w = np.zeros((40, 50), dtype=np.float32)
    rng = np.random.default_rng(0)
    alive = rng.random(w.shape) < 0.1
    w[alive] = rng.choice(np.linspace(-1, 1, 16).astype(np.float32), size=int(alive.sum()))
    coded = code_tensor("fc.weight", w, bits=4, index_bits=5)
    from karuku.codec.sizes import coded_size

    s = coded_size("fc.weight", coded)
    m = coded.gaps.codes.size
    assert s.kept == int(alive.sum()) and s.gaps == m
    assert s.shared_bits == s.kept * 4 + m * 5 + 16 * 32
    assert s.entropy_bits <= s.huffman_bits
    assert s.dense_bits == 2000 * 32


def test_auto_index_bits_is_no_bigger_than_any_fixed_choice():
    rng = np.random.default_rng(1)
    w = np.where(rng.random((100, 100)) < 0.05, rng.choice([-0.5, 0.25, 1.0], size=(100, 100)), 0).astype(np.float32)
    best = code_tensor("w", w).stored_bytes()
    assert all(best <= code_tensor("w", w, index_bits=p).stored_bytes() for p in range(1, 9))


def test_unshared_weights_stay_dense_and_round_trip():
    spec = ModelSpec(name="mnist1d-mlp", input_shape=(1, 40), num_classes=10, kwargs={"hidden": [32, 16]})
    model = spec.build()
    packed = pack_state(model.state_dict(), spec)
    assert "fc1.weight" not in packed.coded  # 1280 distinct values: not a shared layer
    x = torch.randn(4, 1, 40)
    assert torch.equal(model.eval()(x), from_bytes(packed.data).build_model()(x))


def test_layer_without_survivors_is_refused():
    spec = ModelSpec(name="mnist1d-mlp", input_shape=(1, 40), num_classes=10, kwargs={"hidden": [8, 8]})
    model = spec.build()
    with torch.no_grad():
        model.fc2.weight.zero_()
    with pytest.raises(KarukuError, match="fc2 has no surviving weights"):
        cluster(model, ClusterConfig(bits=2))
    with pytest.raises(KarukuError, match="fc2.weight has no surviving weights"):
        pack_state(model.state_dict(), spec, {"cluster": {"bits": {"fc2.weight": 2}}})


def test_too_many_values_for_the_declared_bits_is_refused():
    w = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    with pytest.raises(KarukuError, match="9 distinct values, more than 2\\^3"):
        code_tensor("w", w, bits=3)


@register_transform("codec-test-shrink")
def _shrink(model: nn.Module, params: dict) -> nn.Module:
    model.fc2 = nn.Linear(model.fc1.out_features, params["width"])
    model.fc3 = nn.Linear(params["width"], model.fc3.out_features)
    return model


def test_transforms_are_replayed_on_unpack():
    spec = ModelSpec(name="mnist1d-mlp", input_shape=(1, 40), num_classes=10, kwargs={"hidden": [16, 16]})
    model = _shrink(spec.build(), {"width": 5})
    _prune(model, 0.5)
    cluster(model, ClusterConfig(bits=3))
    meta = {"transforms": [{"name": "codec-test-shrink", "params": {"width": 5}}]}
    back = from_bytes(pack_state(model.state_dict(), spec, meta).data)
    assert back.meta["transforms"] == meta["transforms"]
    x = torch.randn(3, 1, 40)
    assert torch.equal(model.eval()(x), back.build_model()(x))
