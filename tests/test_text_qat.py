"""QAT of a sentence encoder (karuku.text.quantize, mode qat): fake-quantized Linear layers trained by
distillation from the float model, then the same static int8 model and ONNX file as PTQ. On the tiny encoder."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from helpers.textmodels import TEXTS, tiny_encoder, tiny_tokenizer
from karuku.errors import KarukuError
from karuku.quant.config import QuantConfig
from karuku.text.distill import TextDistillConfig
from karuku.text.onnx_export import export_onnx
from karuku.text.quantize import FakeQuantLinear, QLinear, finish, quantize, train_qat, weight_qparams
from karuku.text.task import encode, fidelity, onnx_fn

TRAIN = [f"{a} {b}" for a in TEXTS for b in TEXTS[::3]]  # 96 texts from the tiny vocabulary
CFG = QuantConfig(mode="qat", bits=4, target_isa="avx512-vnni", qat_delay=0, layer_bits={"embed.word": "float"})
TRAIN_CFG = TextDistillConfig(epochs=3, batch_size=16, lr=2e-3, max_length=32, cache_teacher=False)


def _same_integers(got: np.ndarray, ref: np.ndarray) -> None:
    """ONNX Runtime computed the model's integers: sentences agree to float rounding, but for the odd value within
    float error of a rounding tie (one step there moves one sentence a little)."""
    off = np.abs(got - ref).max(1) > 1e-5
    assert off.sum() <= max(1, len(got) // 8), off
    assert (got * ref).sum(1).min() > 0.99999


@pytest.fixture
def tok(tmp_path):
    return tiny_tokenizer(tmp_path)


def test_qat_beats_ptq_at_4_bits_and_exports_what_it_trained(tok):
    m = tiny_encoder()
    held, calib = tok(TEXTS), tok(TRAIN[:32])
    ref = encode(m, held)
    ptq = quantize(m, CFG.model_copy(update={"mode": "ptq", "qat_delay": 200}), calib)
    qat = quantize(m, CFG, calib, texts=TRAIN, tokenizer=tok, train=TRAIN_CFG, log=lambda *_: None)
    assert all(isinstance(x, QLinear) and x.static and x.bits == 4 for x in qat.modules()
               if isinstance(x, (QLinear, torch.nn.Linear)))
    f_ptq, f_qat = fidelity(ref, encode(ptq, held)).mean_cosine, fidelity(ref, encode(qat, held)).mean_cosine
    assert f_qat > f_ptq + 0.005, (f_ptq, f_qat)
    assert qat.quant_cfg.mode == "qat"
    # the int8 file computes what the trained model computes (static QuantizeLinear → MatMulIntegerToFloat)
    got = onnx_fn(export_onnx(qat))(held.input_ids.numpy(), held.attention_mask.numpy())
    with torch.no_grad():
        want = qat(*held.inputs()).numpy()
    _same_integers(got, want)


def test_the_static_int8_model_holds_the_integers_qat_trained_with(tok):
    m = tiny_encoder()
    held, calib = tok(TEXTS), tok(TRAIN[:32])
    cfg = CFG.for_target().model_copy(update={"bits": 8, "qat_momentum": 0.5})
    fake = train_qat(m, cfg, calib, TRAIN[:32], tok, TRAIN_CFG.model_copy(update={"epochs": 1}))
    layer = fake.layers[0].attn.q
    assert isinstance(layer, FakeQuantLinear) and int(layer.step) == 2  # 32 texts, batches of 16
    assert not torch.equal(layer.weight, m.layers[0].attn.q.weight)  # trained
    fake.eval()
    done = finish(copy.deepcopy(fake))
    for name, q in done.named_modules():
        if isinstance(q, QLinear):
            f = fake.get_submodule(name)
            assert torch.equal(q.w_int.float(), weight_qparams(f.weight.detach(), 8)[0])
            assert torch.equal(q.act_range, f.act_range)
    with torch.no_grad():  # float32 fake quantization vs exact integer sums: a rounding tie may move a step
        assert (fake(*held.inputs()) - done(*held.inputs())).abs().max() < 1e-3


def test_qat_bad_settings_are_one_line(tok):
    m = tiny_encoder()
    calib = tok(TEXTS)
    with pytest.raises(KarukuError, match="trains on texts"):
        quantize(m, CFG, calib)
    with pytest.raises(KarukuError, match="calibration texts"):
        quantize(m, CFG, texts=TRAIN, tokenizer=tok)
    from karuku.training.config import TrainConfig

    with pytest.raises(KarukuError, match="distillation from the float model, not `finetune`.*TextDistillConfig"):
        quantize(m, CFG.model_copy(update={"finetune": TrainConfig()}), calib, texts=TRAIN, tokenizer=tok)
    with pytest.raises(KarukuError, match="apply to mode qat only"):
        quantize(m, QuantConfig(mode="dynamic"), texts=TRAIN, tokenizer=tok)


def test_a_quantized_encoder_is_measured_as_its_int8_file(tok):
    from karuku.measure import evaluate
    from karuku.text.onnx_export import export_onnx as export

    m = tiny_encoder()
    b = tok(TEXTS)
    q = quantize(m, QuantConfig(mode="ptq", target_isa="avx512-vnni"), b)
    ev = evaluate(q, inputs=b.inputs(), runs=2, details=True)
    assert ev.deploy_kind == "int8" and ev.sizes["int8"] == len(export(q)) and ev.integer
    assert ev.sizes["fp32"] == evaluate(m, inputs=b.inputs(), engines=()).sizes["fp32"]  # the float view's size
    assert ev.macs == evaluate(m, inputs=b.inputs(), engines=()).macs
    assert ev.latency["onnxruntime"]["b64_per_s"] > 0 and ev.extra["int8 ONNX bytes"] == ev.sizes["int8"]
    from karuku.text.form import float_view

    with torch.no_grad():  # the float view computes with the quantized weights: close to the int8 model
        assert (float_view(q)(*b.inputs()) - q(*b.inputs())).abs().max() < 0.05


def test_a_text_recipe_runs_qat_and_judges_min_speedup(tmp_path, monkeypatch):
    """quantize {mode: qat} in a text recipe distils on the corpus' training texts; min_speedup is checked."""
    from helpers.textmodels import register_tiny_pretrained
    from karuku.text import corpus as corpus_mod
    from karuku.text.recipe import load_recipe
    from karuku.text.run import BASELINE, compress_text

    m = tiny_encoder(max_positions=128)
    folder = register_tiny_pretrained(m, tmp_path / "model", monkeypatch)
    monkeypatch.setattr(corpus_mod, "load_corpus", lambda name="fortunes", source=None, log=print:
                        corpus_mod.Corpus(TRAIN * 3, TEXTS, "test"))  # enough tokens for 32 x 128
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nname: tiny-qat\nmodel: {pretrained: tiny}\ndata: {calibration: 32}\n"
                    "budget: {min_fidelity: 0.5, min_speedup: 0.01}\n"
                    "stages:\n  - quantize: {mode: qat, bits: 4, target_isa: avx512-vnni, qat_delay: 0,\n"
                    "                train: {epochs: 0.5, batch_size: 16, max_length: 32, cache_teacher: false}}\n"
                    "  - export: {}\n")
    s = compress_text(load_recipe(path), tmp_path / "run", model_source=folder, log=lambda *_: None, time_rounds=1)
    assert [st["kind"] for st in s["steps"]] == ["pretrained", "quantize", "export"]
    # the recipe's train settings are the QAT's: half of 288 texts in batches of 16 = 9 steps
    assert s["steps"][1]["mode"] == "qat" and "distill step 9/9" in (tmp_path / "run" / "run.log").read_text()
    speed = s["checks"][-1]
    assert speed["limit"] == "min_speedup" and speed["value"] == pytest.approx(
        s["timing"]["result"]["b32_s128_per_s"] / s["timing"][BASELINE]["b32_s128_per_s"], rel=1e-4)


def test_static_ranges_are_of_the_smoothed_input_that_is_quantized(tok):
    m = tiny_encoder()
    b = tok(TEXTS)
    q = quantize(m, QuantConfig(mode="ptq", target_isa="avx512-vnni"), b, smooth=0.75)
    seen = {}
    handles = [x.register_forward_pre_hook(lambda mod, a, n=n: seen.__setitem__(n, a[0] * mod.in_scale))
               for n, x in q.named_modules() if isinstance(x, QLinear)]
    with torch.no_grad():
        want = q(*b.inputs()).numpy()
    for h in handles:
        h.remove()
    for name in ("layers.0.attn.q", "layers.0.attn.v"):  # before any int8 layer: exactly what calibration saw
        x, (lo, hi) = seen[name], q.get_submodule(name).act_range.tolist()
        assert (lo, hi) == pytest.approx((float(x.min()), float(x.max())), rel=1e-6), name
    got = onnx_fn(export_onnx(q))(b.input_ids.numpy(), b.attention_mask.numpy())
    _same_integers(got, want)


def test_a_text_recipe_refuses_train_settings_outside_qat(tmp_path):
    from karuku.text.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nname: bad\nstages:\n  - quantize: {mode: dynamic, train: {epochs: 1}}\n")
    with pytest.raises(KarukuError, match="train applies to mode qat only"):
        load_recipe(path)
    path.write_text("version: 1\nname: bad\nstages:\n  - quantize: {mode: qat, rounding: gptq}\n")
    with pytest.raises(KarukuError, match="rounding gptq does not apply to mode qat"):
        load_recipe(path)
    path.write_text("version: 1\nname: ok\nstages:\n  - quantize: {mode: dynamic, smooth: 0.75, rounding: gptq}\n")
    assert load_recipe(path).stages[0].config().rounding == "gptq"
