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


def test_dynamic_qat_of_a_student_from_its_teacher_gives_the_dynamic_int8_model_it_trained(tok):
    from karuku.text.distill import drop_layers

    teacher = tiny_encoder(layers=4)
    student = drop_layers(teacher, 2, keep=[1, 3])
    held, calib = tok(TEXTS), tok(TRAIN[:32])
    cfg = CFG.model_copy(update={"bits": 4})
    train = TRAIN_CFG.model_copy(update={"keep": [1, 3], "epochs": 4})
    logs: list[str] = []
    qat = quantize(student, cfg, calib, smooth=0.5, texts=TRAIN, tokenizer=tok, train=train, log=logs.append,
                   qat_activations="dynamic", qat_teacher=teacher)
    layers = [x for x in qat.modules() if isinstance(x, QLinear)]
    assert layers and all(not x.static and x.bits == 4 and x.in_scale.numel() for x in layers)
    assert not any(isinstance(x, torch.nn.Linear) for x in qat.modules())
    # trained against the teacher: closer to it than dynamic PTQ of the same student, and than the float student
    ref = encode(teacher, held)
    ptq = quantize(student, QuantConfig(mode="dynamic", bits=4, target_isa="avx512-vnni",
                                        layer_bits={"embed.word": "float"}), calib, smooth=0.5)
    f = {k: fidelity(ref, encode(m, held)).mean_cosine for k, m in [("qat", qat), ("ptq", ptq), ("float", student)]}
    assert f["qat"] > max(f["ptq"], f["float"]) + 0.005, f
    # its file quantizes each input on its own range (DynamicQuantizeLinear) and computes the trained integers
    raw = export_onnx(qat)
    assert "DynamicQuantizeLinear" in {n.op_type for n in __import__("onnx").load_from_string(raw).graph.node}
    got = onnx_fn(raw)(held.input_ids.numpy(), held.attention_mask.numpy())
    with torch.no_grad():
        want = qat(*held.inputs()).numpy()
    _same_integers(got, want)


def test_dynamic_fake_quantization_is_the_dynamic_qlinear(tok):
    m = tiny_encoder()
    held, calib = tok(TEXTS), tok(TRAIN[:32])
    cfg = CFG.for_target().model_copy(update={"bits": 8})
    fake = train_qat(m, cfg, calib, TRAIN[:32], tok, TRAIN_CFG.model_copy(update={"epochs": 1}), dynamic=True)
    layer = fake.layers[0].attn.q
    assert isinstance(layer, FakeQuantLinear) and layer.dynamic and layer.act_range.numel() == 0
    fake.eval()
    done = finish(copy.deepcopy(fake))
    for name, q in done.named_modules():
        if isinstance(q, QLinear):
            assert not q.static and torch.equal(q.w_int.float(),
                                                weight_qparams(fake.get_submodule(name).weight.detach(), 8)[0])
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
    with pytest.raises(KarukuError, match="qat_activations and qat_teacher apply to mode qat only"):
        quantize(m, QuantConfig(mode="dynamic"), qat_activations="dynamic")
    with pytest.raises(KarukuError, match="unknown QAT activations 'per-token'"):
        quantize(m, CFG, calib, texts=TRAIN, tokenizer=tok, qat_activations="per-token")


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


def test_a_text_recipe_soups_then_trains_its_dynamic_int8_form_against_the_teacher(tmp_path, monkeypatch):
    """distill with members of their own word_bits and a refinement, then dynamic QAT from the pretrained teacher
    with the distill stage's hint targets, on its texts (augmented too), the teacher's outputs cached once."""
    from helpers.textmodels import register_tiny_pretrained
    from karuku.text import corpus as corpus_mod
    from karuku.text.recipe import load_recipe
    from karuku.text.run import compress_text

    m = tiny_encoder(max_positions=128, layers=4)
    folder = register_tiny_pretrained(m, tmp_path / "model", monkeypatch)
    monkeypatch.setattr(corpus_mod, "load_corpus", lambda name="fortunes", source=None, log=print:
                        corpus_mod.Corpus(TRAIN * 3, TEXTS, "test"))
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\nname: tiny-soup-qat\nmodel: {pretrained: tiny}\ndata: {calibration: 32, augment: 32}\n"
        "budget: {min_fidelity: 0.1}\nstages:\n"
        "  - distill: {keep: [1, 3], epochs: 0.2, batch_size: 16, max_length: 32, lr: 0.003, members: 2,\n"
        "              member_word_bits: [null, 4], word_bits: 4, refine_epochs: 0.1, seed: 1}\n"
        "  - quantize: {mode: qat, target_isa: avx512-vnni, qat_delay: 0, layer_bits: {embed.word: 4},\n"
        "               qat_activations: dynamic, qat_teacher: pretrained, smooth: 0.5,\n"
        "               train: {epochs: 0.1, batch_size: 16, max_length: 32, lr: 0.0003}}\n"
        "  - export: {}\n")
    s = compress_text(load_recipe(path), tmp_path / "run", model_source=folder, log=lambda *_: None, time_rounds=1)
    log = (tmp_path / "run" / "run.log").read_text()
    # 320 texts (288 + 32 augmented) in batches of 16: 20 a pass; members 4 steps each, the refinement and QAT 2
    assert "soup member 2/2 (seed 2, word table at 4 bits)" in log and "refining the soup: 0.1 epochs" in log
    assert log.count("distill step 4/4") == 2 and log.count("distill step 2/2") == 2
    assert len(list((tmp_path / "run" / "members").glob("*/member-*.safetensors"))) == 2
    assert len(list((tmp_path / "run" / "teacher").glob("teacher-*.safetensors"))) == 1  # one cache for both
    assert [st["kind"] for st in s["steps"]] == ["pretrained", "distill", "quantize", "export"]
    assert s["steps"][2]["mode"] == "qat" and s["steps"][3]["fidelity"]["mean_cosine"] > 0.1
    import onnx

    ops = {n.op_type for n in onnx.load(s["steps"][3]["onnx"]).graph.node}
    assert "DynamicQuantizeLinear" in ops and "QuantizeLinear" not in ops  # activations on their own range
    bad = path.read_text().replace("mode: qat, ", "mode: dynamic, ").replace("qat_delay: 0, ", "").replace(
        "               train: {epochs: 0.1, batch_size: 16, max_length: 32, lr: 0.0003}}", "               }")
    path.write_text(bad)
    with pytest.raises(KarukuError, match="qat_activations applies to mode qat only"):
        load_recipe(path)


def test_static_ranges_are_of_the_smoothed_input_that_is_quantized(tok):
    m = tiny_encoder()
    b = tok(TEXTS)
    q = quantize(m, QuantConfig(mode="ptq", target_isa="avx2"), b, smooth=0.75)  # 7-bit: exact on every CPU
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
