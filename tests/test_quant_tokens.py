"""torch.fx PTQ of models with several inputs and integer token ids: Linear layers quantized, the embedding lookup
and the integer path left alone; an untraceable encoder is one line pointing to karuku.text."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.textmodels import tiny_encoder
from karuku.errors import KarukuError
from karuku.quant import QuantConfig, export_onnx, quantize


class TokenModel(nn.Module):
    """Token ids through an embedding, float features through a Linear, summed, then a head."""

    def __init__(self, vocab=20, dim=8, tokens=4, features=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(tokens * dim, 16)
        self.feat = nn.Linear(features, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, input_ids, features):
        return self.head(torch.relu(self.proj(self.embed(input_ids).flatten(1)) + self.feat(features)))


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 20, (n, 4), generator=g), torch.randn(n, 5, generator=g)


def test_ptq_calibrates_on_token_batches_and_leaves_the_lookup_alone():
    torch.manual_seed(0)
    m = TokenModel().eval()
    ids, feats = _data()
    qm = quantize(m, QuantConfig(observer="minmax", target_isa="avx512-vnni"), (ids, feats))
    ops = {n.name: n.op for n in qm.nodes}
    assert ops == {"input_ids": "input", "features": "input", "embed": "float", "flatten": "flatten",
                   "proj": "linear", "feat": "linear", "add": "add", "head": "linear"}
    assert {k for k, layer in qm.layers.items() if layer.bits == 8} == {"proj", "feat", "head"}
    assert "input_ids" not in qm.quantizer  # token ids are never fake-quantized
    # the lookup's output range was calibrated on these token batches: minmax = the values it produced
    with torch.no_grad():
        e = m.embed(ids)
    lo, hi = min(float(e.min()), 0.0), max(float(e.max()), 0.0)
    assert float(qm.act("embed").qparams()[0]) == pytest.approx((hi - lo) / 255, rel=1e-5)
    with torch.no_grad():
        ref, out = m(ids, feats), qm(ids, feats)
    err = float((out - ref).abs().max())
    assert 0 < err < 0.05  # quantized (not the float model), and close to it
    assert qm.float_layers == [] and qm.is_static  # the lookup has an integer form: a table of quantized rows
    kept = quantize(m, QuantConfig(observer="minmax", target_isa="avx512-vnni", layer_bits={"embed": "float"}),
                    (ids, feats))
    assert kept.float_layers == ["embed (Embedding)"] and not kept.is_static  # unless kept float on purpose
    from karuku.quant import QParams

    table = m.embed.weight.numel()  # stored as int8 rows, or kept float: 4 bytes an entry
    assert QParams.from_model(kept).weight_bytes(kept) - QParams.from_model(qm).weight_bytes(qm) == 3 * table


def test_batches_of_token_tuples_and_a_dataset_calibrate_alike():
    from torch.utils.data import DataLoader, TensorDataset

    m = TokenModel().eval()
    ids, feats = _data()
    cfg = QuantConfig(observer="minmax", bias_correction=False, target_isa="avx512-vnni")
    whole = quantize(m, cfg, (ids, feats))
    batches = quantize(m, cfg, [(ids[:32], feats[:32]), (ids[32:], feats[32:])])
    loader = quantize(m, cfg, DataLoader(TensorDataset(ids, feats, torch.zeros(64)), batch_size=16))
    for other in (batches, loader):
        assert all(torch.equal(whole.acts[k].qparams()[0], other.acts[k].qparams()[0]) for k in whole.acts)


def test_dynamic_quantization_takes_token_inputs():
    m = TokenModel().eval()
    ids, feats = _data()
    qd = quantize(m, QuantConfig(mode="dynamic", target_isa="avx512-vnni"), (ids[:8], feats[:8]))
    with torch.no_grad():
        assert 0 < float((qd(ids, feats) - m(ids, feats)).abs().max()) < 0.05


def test_what_cannot_take_token_models_says_so_in_one_line():
    enc = tiny_encoder()
    ids = torch.randint(0, 40, (8, 6))
    with pytest.raises(KarukuError, match="cannot trace SentenceEncoder.*karuku.text.quantize"):
        quantize(enc, QuantConfig(), (ids, torch.ones_like(ids)))
    m = TokenModel().eval()
    tid, feats = _data()
    with pytest.raises(KarukuError, match="takes 2 inputs, the calibration data holds 1"):
        quantize(m, QuantConfig(), tid)
    with pytest.raises(KarukuError, match="must be float \\(or int64 token ids\\), got torch.uint8"):
        quantize(nn.Linear(4, 2), QuantConfig(), torch.zeros(8, 4, dtype=torch.uint8))
    with pytest.raises(KarukuError, match="different lengths"):
        quantize(m, QuantConfig(), (tid, feats[:10]))
    shifted = Shifted().eval()  # a lookup of ids computed in the model has no integer form: it stays float
    qm = quantize(shifted, QuantConfig(target_isa="avx512-vnni"), (tid, feats))
    assert qm.float_layers == ["embed (Embedding)"]
    with pytest.raises(KarukuError, match="embed"):  # int8 files need every layer quantized; that lookup is not
        export_onnx(qm)


class Shifted(TokenModel):
    def forward(self, input_ids, features):
        return self.head(torch.relu(self.proj(self.embed(input_ids % 20).flatten(1)) + self.feat(features)))
