"""Models with several inputs and integer token ids through every measurement (karuku.measure.inputs):
counts, memory, ONNX export, timing, evaluate; and the budget's min_speedup."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from helpers.textmodels import TEXTS, VOCAB, tiny_encoder, tiny_tokenizer
from karuku.errors import KarukuError
from karuku.measure import activation_bytes, evaluate, export_bytes, layer_counts, session, totals
from karuku.measure.inputs import Input, Signature, signature
from karuku.measure.onnx_runtime import run


def _encoder_macs(tokens: int, hidden=32, ffn=64, layers=2, heads=2) -> int:
    """Linear layers (q, k, v, o, up, down) and the two attention matmuls, counted by hand."""
    head_dim = hidden // heads
    linear = tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 2 * heads * tokens * tokens * head_dim
    return layers * (linear + attention)


class TokenBag(nn.Module):
    """Token ids (integer) and float features: embedding mean + a feature branch, then a head."""

    def __init__(self, vocab=20, dim=8, features=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.feat = nn.Linear(features, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, input_ids, features):
        return self.head(torch.relu(self.embed(input_ids).mean(1) + self.feat(features)))


def test_a_sentence_encoder_is_counted_timed_and_exported_from_its_token_inputs(tmp_path):
    m = tiny_encoder()
    b = tiny_tokenizer(tmp_path)(TEXTS[:4])
    ids, mask = b.inputs()
    ev = evaluate(m, inputs=(ids, mask), runs=3)
    assert ev.macs == _encoder_macs(ids.shape[1])
    assert ev.params == sum(p.numel() for p in m.parameters())
    assert set(ev.latency) == {"torch", "onnxruntime"}
    assert all(v["b1_median_ms"] > 0 and v["b64_per_s"] > 0 for v in ev.latency.values())
    assert ("inputs", f"input_ids ({ids.shape[1]},) int64 in [{int(ids.min())}, {int(ids.max()) + 1}), "
                      "attention_mask (%d,) int64 in [%d, 2)" % (ids.shape[1], int(mask.min()))) in ev.rows()
    # by name, in another order than forward's: the same count, the file's inputs in forward's order
    sig = signature(m, {"attention_mask": mask, "input_ids": ids})
    assert sig.keywords and totals(m, sig).macs == ev.macs
    raw = export_bytes(m, sig)
    sess = session(raw)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    with torch.no_grad():
        ref = m(ids, mask).numpy()
    assert np.abs(run(sess, ids.numpy(), mask.numpy()) - ref).max() < 1e-5
    # a checkpoint knows only a shape: the encoder's registered inputs (token ids, an all-ones mask) are used
    reg = signature(m, (16,))
    assert [i.describe() for i in reg.inputs] == [f"input_ids (16,) int64 in [0, {len(VOCAB)})",
                                                  "attention_mask (16,) int64 in [1, 2)"]
    assert totals(m, (16,)).macs == _encoder_macs(16)


def test_integer_inputs_take_only_values_seen_and_keep_their_width():
    ids = torch.tensor([[3, 7, 5], [4, 4, 6]])
    sig = Signature.of((ids, torch.randn(2, 5)), TokenBag())
    assert sig.names == ["input_ids", "features"]
    assert (sig.inputs[0].low, sig.inputs[0].high, sig.inputs[0].dtype) == (3, 8, torch.int64)
    drawn = sig.random(500, torch.Generator().manual_seed(0))[0]
    assert drawn.dtype == torch.int64 and int(drawn.min()) == 3 and int(drawn.max()) == 7
    assert torch.equal(sig.fixed(4)[0], sig.fixed(4)[0])  # the same every call, inside the range
    m = TokenBag()
    rows = {r.name: r for r in layer_counts(m, sig)}
    assert rows["feat"].macs == 5 * 8 and rows["head"].macs == 8 * 3 and rows["embed"].macs == 0
    # the embedding reads 3 int64 ids (8 bytes each) and writes 3 x 8 floats: counted at their own widths
    acts = activation_bytes(m, sig)
    assert acts["peak"] == 3 * 8 + 3 * 8 * 4
    assert activation_bytes(m, sig, bytes_per_value=1)["peak"] == 3 * 8 + 3 * 8


def test_a_two_input_model_exports_and_runs_in_onnx_runtime():
    m = TokenBag().eval()
    ids, feats = torch.randint(0, 20, (6, 4)), torch.randn(6, 5)
    raw = export_bytes(m, (ids, feats))
    with torch.no_grad():
        ref = m(ids, feats).numpy()
    assert np.abs(run(session(raw), ids.numpy(), feats.numpy()) - ref).max() < 1e-5
    ev = evaluate(m, inputs=(ids, feats), runs=2)
    assert ev.macs == 5 * 8 + 8 * 3 and ev.latency["onnxruntime"]["b64_per_s"] > 0


def test_bad_inputs_are_one_line_naming_the_fix():
    with pytest.raises(KarukuError, match="does not run on the inputs input \\(16,\\) float32.*inputs="):
        evaluate(nn.Sequential(nn.Embedding(10, 4)), input_shape=(16,), engines=())
    with pytest.raises(KarukuError, match="needs the values it may take"):
        Input("input_ids", (8,), torch.int64)
    with pytest.raises(KarukuError, match="applies to integer inputs only"):
        Input("x", (8,), torch.float32, 0, 4)
    with pytest.raises(KarukuError, match="different batch sizes"):
        Signature.of((torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 5)))
    with pytest.raises(KarukuError, match="no batch of examples"):
        Signature.of(torch.zeros(5, dtype=torch.long))
    with pytest.raises(KarukuError, match="a batch of 64 inputs .* would take 512 MiB"):
        evaluate(nn.Linear(1 << 21, 1), input_shape=(1 << 21,), engines=("torch",))
    with pytest.raises(KarukuError, match="what TokenBag takes is unknown"):
        evaluate(TokenBag(), engines=())
    with pytest.raises(KarukuError, match="takes 2 inputs"):
        run(session(export_bytes(TokenBag(), (torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 5)))),
            np.zeros((1, 3), np.int64))


def test_min_speedup_is_judged_on_side_by_side_throughput():
    from karuku.pipeline.budget import judge, speedup_check
    from karuku.pipeline.recipe import Budget
    from karuku.text.recipe import TextBudget

    metric = SimpleNamespace(name="top1", unit="points", percent=True, worse_by=lambda a, b: 100 * (a - b))
    base = SimpleNamespace(quality=0.9, throughput_b64=1000.0)
    fast = SimpleNamespace(quality=0.9, throughput_b64=4200.0)
    checks = judge(fast, base, Budget(min_speedup=4), metric)
    speed = next(c for c in checks if c["limit"] == "min_speedup")
    assert speed["value"] == pytest.approx(4.2) and speed["ok"]
    assert not judge(SimpleNamespace(quality=0.9, throughput_b64=3900.0), base, Budget(min_speedup=4),
                     metric)[-1]["ok"]
    # the same key in a text recipe, read on the report's batch 32 x 128 figure against the standard fp32 export
    from karuku.text.run import BASELINE, budget_checks

    timing = {BASELINE: {"b32_s128_per_s": 10.0, "b1_s32_ms": 5.0}, "result": {"b32_s128_per_s": 45.0,
                                                                             "b1_s32_ms": 1.0}}
    fid = {"mean_cosine": 0.97, "top10_overlap": 0.9}
    checks = budget_checks(TextBudget(min_speedup=4), fid, 1000, timing)
    assert [c["limit"] for c in checks] == ["min_fidelity", "min_speedup"]
    assert checks[1]["value"] == pytest.approx(4.5) and checks[1]["ok"]
    assert not budget_checks(TextBudget(min_speedup=5), fid, 1000, timing)[1]["ok"]
    with pytest.raises(KarukuError, match="min_speedup needs an ONNX file.*export stage"):
        budget_checks(TextBudget(min_speedup=4), fid, None, {BASELINE: timing[BASELINE]})
    with pytest.raises(KarukuError, match="min_speedup needs the result and the baseline timed"):
        speedup_check(4, None, 1000.0, "batch 64")


def test_the_training_loop_names_the_fix_for_a_model_of_several_inputs():
    from torch.utils.data import TensorDataset

    from karuku.data import from_torch
    from karuku.training import TrainConfig, train

    ids, y = torch.randint(0, 20, (8, 4)), torch.randint(0, 3, (8,))
    splits = from_torch(TensorDataset(ids.float(), y), TensorDataset(ids.float(), y), val_size=0)
    with pytest.raises(KarukuError, match="TokenBag\\) takes 2 inputs \\(input_ids, features\\); the data's "
                                          "examples carry one tensor \\(give examples \\(\\(input_ids, features\\), y"):
        train(TokenBag(), splits, TrainConfig(epochs=1), verbose=False)
