"""Sentence encoders compressed: int8 (dynamic / static, int4 embeddings) in ONNX, head / FFN pruning, layer
dropping with distillation, and the sentence-embedding task's measures. All on a tiny random encoder."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from helpers.textmodels import TEXTS, tiny_encoder, tiny_tokenizer
from karuku.errors import KarukuError
from karuku.quant.config import QuantConfig
from karuku.quant.representation import exact_on
from karuku.text.distill import TextDistillConfig, average_weights, distill, drop_layers, groups, plan
from karuku.text.onnx_export import export_onnx
from karuku.text.prune import HeadPruneConfig, factorize_ffn, importance, prune, shrink
from karuku.text.quantize import QEmbedding, QLinear, dynamic_qparams, linear_names, quantize
from karuku.text.task import encode, fidelity, fixed_batch, neighbours, onnx_fn


@pytest.fixture
def tok(tmp_path):
    return tiny_tokenizer(tmp_path)


def _ort(onnx_bytes: bytes, batch) -> np.ndarray:
    return onnx_fn(onnx_bytes)(batch.input_ids.numpy(), batch.attention_mask.numpy())


def _same_integers(got: np.ndarray, ref: np.ndarray) -> None:
    """ONNX Runtime computed the reference's integers: sentences agree to float rounding, except where a value
    lands within float error of a rounding tie in dynamic quantization (a step there moves one sentence a
    little); saturating kernels would move most of them."""
    off = np.abs(got - ref).max(1) > 1e-5
    assert off.sum() <= max(1, len(got) // 8), off
    assert (got * ref).sum(1).min() > 0.99999


def _props(onnx_bytes: bytes) -> dict:
    return {p.key: p.value for p in onnx.load_from_string(onnx_bytes).metadata_props}


def test_dynamic_qparams_match_onnx_dynamic_quantize_linear():
    from onnx import helper
    from onnxruntime import InferenceSession

    x = torch.randn(3, 7) * 3 + 1
    g = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, 7])],
                          [helper.make_tensor_value_info(n, t, None) for n, t in
                           (("q", onnx.TensorProto.UINT8), ("s", onnx.TensorProto.FLOAT),
                            ("z", onnx.TensorProto.UINT8))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    q, s, z = InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    scale, zp = dynamic_qparams(x)
    assert float(scale) == pytest.approx(float(s), rel=1e-6) and int(zp) == int(z)
    assert np.array_equal(np.clip(np.round(x.numpy() / float(s)) + int(z), 0, 255).astype(np.uint8), q)


def test_fp32_onnx_matches_torch(tok):
    m = tiny_encoder()
    b = tok(TEXTS)
    with torch.no_grad():
        ref = m(*b.inputs()).numpy()
    raw = export_onnx(m)
    assert np.abs(_ort(raw, b) - ref).max() < 1e-5
    props = _props(raw)
    assert props["karuku.quantization"] == "float" and "karuku.representation" not in props


@pytest.mark.parametrize("target,rep", [("avx512-vnni", "u8s8"), ("avx2", "u8s7"), ("portable", "u8s7")])
def test_dynamic_int8_onnx_computes_what_the_torch_reference_does(tok, target, rep):
    m = tiny_encoder()
    b = tok(TEXTS)
    q = quantize(m, QuantConfig(mode="dynamic", target_isa=target))
    layers = [mod for mod in q.modules() if isinstance(mod, QLinear)]
    assert len(layers) == 12 and isinstance(q.embed.word, QEmbedding)
    assert max(int(x.w_int.abs().max()) for x in layers) == (127 if rep == "u8s8" else 63)
    raw = export_onnx(q)
    props = _props(raw)
    assert props["karuku.representation"] == rep and props["karuku.target_isa"] == target
    assert props["karuku.quantization"] == "dynamic"
    with torch.no_grad():
        ref, fp = q(*b.inputs()).numpy(), m(*b.inputs()).numpy()
    if not exact_on(rep, "auto"):  # u8s8 where ONNX Runtime's u8 x s8 kernels saturate (x86 without VNNI)
        raw = export_onnx(q, representation="u8u8")  # the same integers, run exactly
    full = fixed_batch(tok, TEXTS * 3, 3, 10)
    assert (b.attention_mask == 0).any() and (full.attention_mask == 1).all()
    with torch.no_grad():
        got = _ort(raw, b)
        _same_integers(got, ref)  # padded texts: the masked attention
        _same_integers(_ort(raw, full), q(*full.inputs()).numpy())  # no padding: the unmasked attention
    assert (got * fp).sum(1).min() > 0.99  # and close to the float model
    graph = onnx.load_from_string(raw).graph
    ops = {n.op_type for n in graph.node}
    branches = [[n.op_type for n in a.g.node] for x in graph.node if x.op_type == "If" for a in x.attribute]
    assert {"If", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "GatherBlockQuantized", "Gelu",
            "LayerNormalization"} <= ops
    assert branches == [["Attention"]] * 4  # per layer: attention with and without the mask
    assert "QAttention" not in ops


def test_u8u8_and_u8s8_store_the_same_integers(tok):
    q = quantize(tiny_encoder(), QuantConfig(mode="dynamic", target_isa="avx512-vnni"))
    b = tok(TEXTS)
    a, u = export_onnx(q, representation="u8s8"), export_onnx(q, representation="u8u8")
    assert _props(u)["karuku.representation"] == "u8u8"
    with torch.no_grad():
        ref = q(*b.inputs()).numpy()
    _same_integers(_ort(u, b), ref)  # u8u8 is exact on every CPU
    if exact_on("u8s8", "auto"):  # u8s8 only where this CPU's u8 x s8 kernels do not saturate
        _same_integers(_ort(a, b), _ort(u, b))
    with pytest.raises(KarukuError, match="more than the u8s7 representation holds"):
        export_onnx(q, representation="u8s7")


def test_static_int8_int4_embedding_and_float_layers(tok):
    m = tiny_encoder()
    b = tok(TEXTS)
    cfg = QuantConfig(mode="ptq", target_isa="avx2", layer_bits={"embed.word": 4, "layers.1.ffn.*": "float"})
    q = quantize(m, cfg, calibration=b)
    assert isinstance(q.layers[1].ffn.up, torch.nn.Linear) and q.embed.word.bits == 4
    assert all(x.static for x in q.modules() if isinstance(x, QLinear))
    raw = export_onnx(q)
    with torch.no_grad():
        ref = q(*b.inputs()).numpy()
    _same_integers(_ort(raw, b), ref)
    assert _props(raw)["karuku.quantization"] == "static"
    # two 4-bit values per byte, decoded after the lookup (the rows equal the reference's: above)
    packed = [t for t in onnx.load_from_string(raw).graph.initializer if t.name == "embed.word.w_int4_packed"]
    assert packed[0].data_type == onnx.TensorProto.UINT8
    assert len(packed[0].raw_data) == q.embed.word.w_int.numel() // 2
    # the block scales are stored as float16 (2 bytes per block of 32), the rows cast to float after the lookup
    scales = [t for t in onnx.load_from_string(raw).graph.initializer if t.name == "embed.word.scale"]
    assert scales[0].data_type == onnx.TensorProto.FLOAT16 and len(scales[0].raw_data) == 2 * q.embed.word.scale.numel()
    emb = m.embed.word.weight.detach()
    step = q.embed.word.scale.float().repeat_interleave(32, 1)  # the 4-bit step of each value's block
    # within half a step, plus the float16 rounding of the looked-up value (half its ulp, 2^-11 relative)
    got = q.embed.word.weight
    assert ((got - emb).abs() <= step / 2 + got.abs() * 2 ** -11 + 1e-7).all()
    with pytest.raises(KarukuError, match="calibration texts"):
        quantize(m, QuantConfig(mode="ptq"))
    with pytest.raises(KarukuError, match="quantized differently"):
        export_onnx(quantize(m, QuantConfig(mode="dynamic", layer_bits={"layers.0.attn.q": "float"})))
    assert "layers.0.attn.q" in linear_names(m)


def test_head_pruning_shrinks_and_keeps_the_important_parts(tok):
    m = tiny_encoder(heads=4, ffn=64)
    b = tok(TEXTS)
    with torch.no_grad():  # make head 2 of layer 0 and neurons 0..15 of layer 1 matter little
        m.layers[0].attn.o.weight[:, 16:24] *= 1e-3
        m.layers[1].ffn.down.weight[:, :16] *= 1e-3
    imp = importance(m, b)
    assert int(imp.heads[0].argmin()) == 2 and set(imp.neurons[1].argsort()[:16].tolist()) == set(range(16))
    small, info = prune(m, HeadPruneConfig(heads=0.25, ffn=0.25, round_to=16), b)
    assert small.cfg.heads == (3, 3) and small.cfg.intermediate == (48, 48)
    assert 2 not in info["heads"][0]
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in m.parameters())
    assert set(range(16)).isdisjoint(info["ffn_kept"][1])
    # keeping the least important instead is further from the original model
    worst = shrink(m, [torch.sort(h.argsort()[:3]).values for h in imp.heads],
                   [torch.sort(n.argsort()[:48]).values for n in imp.neurons])
    with torch.no_grad():
        ref = m(*b.inputs())
        assert (small(*b.inputs()) * ref).sum(1).mean() > (worst(*b.inputs()) * ref).sum(1).mean()
    # shrinking with everything kept is the identity
    same = shrink(m, [torch.arange(4)] * 2, [torch.arange(64)] * 2)
    with torch.no_grad():
        assert torch.allclose(same(*b.inputs()), m(*b.inputs()), atol=1e-6)
    # the pruned encoder exports (per-layer head counts, FFN widths) and matches in ONNX Runtime
    with torch.no_grad():
        assert np.abs(_ort(export_onnx(small), b) - small(*b.inputs()).numpy()).max() < 1e-5
    with pytest.raises(KarukuError, match="leave a layer with none") as e:
        prune(m, HeadPruneConfig(heads=1.0), b)
    assert "at least one head" in e.value.hint
    glob, _ = prune(m, HeadPruneConfig(heads=0.9, scope="global", round_to=1), b)
    assert min(glob.cfg.heads) >= 1


def test_low_rank_ffn_factorises_quantizes_and_exports(tok, tmp_path):
    from karuku.text.run import load_encoder, save_encoder

    m = tiny_encoder(ffn=64)  # hidden 32: full rank of each FFN matrix is 32
    b = tok(TEXTS)
    full = factorize_ffn(m, [32, 0])  # rank 32 of a 32-wide side: exact
    lo = factorize_ffn(m, 4)
    assert lo.cfg.ffn_rank == (4, 4) and full.cfg.ffn_rank == (32, 0)
    # params: each matrix in·out → r·(in + out) + r (the first factor's bias)
    saved = sum(2 * (32 * 64 - 4 * (32 + 64) - 4) for _ in range(2))
    assert sum(p.numel() for p in m.parameters()) - sum(p.numel() for p in lo.parameters()) == saved
    assert lo.layers[0].ffn.up[0].weight.shape == (4, 32) and lo.layers[0].ffn.up[1].weight.shape == (64, 4)
    with torch.no_grad():
        ref = m(*b.inputs())
        assert torch.allclose(full(*b.inputs()), ref, atol=1e-5)
        assert (lo(*b.inputs()) * ref).sum(1).mean() < 0.999  # truncation loses what the dropped values held
        ref_lo = lo(*b.inputs()).numpy()
    assert np.abs(_ort(export_onnx(lo), b) - ref_lo).max() < 1e-5
    q = quantize(lo, QuantConfig(mode="dynamic", target_isa="avx512-vnni"), b, smooth=0.75)
    assert len([x for x in q.modules() if isinstance(x, QLinear)]) == 16  # 4 attention + 2 × 2 FFN per layer
    raw = export_onnx(q)
    with torch.no_grad():
        qref = q(*b.inputs()).numpy()
    if exact_on("u8s8", "auto"):
        _same_integers(_ort(raw, b), qref)
    else:
        _same_integers(_ort(export_onnx(q, representation="u8u8"), b), qref)
    assert sum(n.op_type == "DynamicQuantizeMatMul" for n in onnx.load_from_string(raw).graph.node) == 2 * 5
    # the shape survives saving, loading and layer dropping; a factorised FFN is not pruned or factorised again
    save_encoder(tmp_path / "lo", lo, {})
    back = load_encoder(tmp_path / "lo")
    with torch.no_grad():
        assert back.cfg.ffn_rank == (4, 4) and torch.allclose(back(*b.inputs()), lo(*b.inputs()))
    assert drop_layers(full, 1, keep=[1]).cfg.ffn_rank == ()
    assert drop_layers(full, 1, keep=[0]).cfg.ffn_rank == (32,)
    with pytest.raises(KarukuError, match="already factorised"):
        prune(lo, HeadPruneConfig(ffn=0.5), b)
    with pytest.raises(KarukuError, match="above min"):
        factorize_ffn(m, 33)


def test_layer_dropping_and_distillation_reduce_the_loss(tok):
    teacher = tiny_encoder(layers=4)
    assert [list(g) for g in groups(6, 3)] == [[0, 1], [2, 3], [4, 5]]
    assert [list(g) for g in groups(4, 3)] == [[0], [1, 2], [3]]
    student = drop_layers(teacher, 2)
    assert len(student.layers) == 2
    assert torch.equal(student.layers[1].ffn.up.weight, teacher.layers[2].ffn.up.weight)
    held = tok(TEXTS[12:])
    with torch.no_grad():
        before = fidelity(teacher(*held.inputs()).numpy(), student(*held.inputs()).numpy(), k=2)
    cfg = TextDistillConfig(layers=2, epochs=30, batch_size=6, lr=3e-3, attention_weight=0.1)
    hist = distill(teacher, student, TEXTS[:12], tok, cfg, log=lambda _: None)
    assert hist[-1]["embedding"] < 0.5 * hist[0]["embedding"] and "attention" in hist[0]
    with torch.no_grad():
        after = fidelity(teacher(*held.inputs()).numpy(), student(*held.inputs()).numpy(), k=2)
    assert after.mean_cosine > before.mean_cosine
    with pytest.raises(KarukuError, match="a student of 5 layers"):
        drop_layers(teacher, 5)
    with pytest.raises(KarukuError, match="invalid TextDistillConfig lr"):
        TextDistillConfig(lr=-1)


def test_frozen_words_keep_the_teachers_table_and_train_the_rest(tok):
    teacher = tiny_encoder(layers=4)
    student = drop_layers(teacher, 2, keep=[1, 3])
    cfg = TextDistillConfig(keep=[1, 3], epochs=50, batch_size=6, lr=3e-3, weight_decay=0.1, freeze_words=True)
    hist = distill(teacher, student, TEXTS[:12], tok, cfg, log=lambda _: None)
    assert hist[-1]["embedding"] < hist[0]["embedding"]
    # not even AdamW's weight decay touched the table; the position table and the layers did train
    assert torch.equal(student.embed.word.weight, teacher.embed.word.weight)
    assert not torch.equal(student.embed.position.weight, teacher.embed.position.weight)
    assert not torch.equal(student.layers[0].ffn.up.weight, teacher.layers[1].ffn.up.weight)
    assert student.embed.word.weight.requires_grad  # handed back trainable, as it came
    moved = drop_layers(teacher, 2, keep=[1, 3])
    distill(teacher, moved, TEXTS[:12], tok, cfg.model_copy(update={"freeze_words": False}), log=lambda _: None)
    assert not torch.equal(moved.embed.word.weight, teacher.embed.word.weight)


def test_words_frozen_at_their_4_bit_rounding_are_the_table_the_int8_model_holds(tok):
    teacher = tiny_encoder(layers=4)
    student = drop_layers(teacher, 2, keep=[1, 3])
    cfg = TextDistillConfig(keep=[1, 3], epochs=20, batch_size=6, lr=3e-3, weight_decay=0.1, word_bits=4)
    distill(teacher, student, TEXTS[:12], tok, cfg, log=lambda _: None)
    rounded = QEmbedding(teacher.embed.word, 4)
    assert not torch.equal(rounded.grid(), teacher.embed.word.weight)
    assert torch.equal(student.embed.word.weight, rounded.grid())  # rounded once, then frozen
    assert student.embed.word.weight.requires_grad
    # quantizing the trained student gives back the same integers and scales: the int8 file holds the table the
    # student was trained with (up to its float16 output rounding)
    q = quantize(student, QuantConfig(mode="dynamic", target_isa="avx2", layer_bits={"embed.word": 4}))
    assert torch.equal(q.embed.word.w_int, rounded.w_int) and torch.equal(q.embed.word.scale, rounded.scale)
    assert torch.equal(q.embed.word.weight, rounded.grid().half().float())
    with pytest.raises(KarukuError, match="word_bits"):
        TextDistillConfig(word_bits=6)
    # a soup of three members keeps the frozen table exactly
    soup = drop_layers(teacher, 2, keep=[1, 3])
    distill(teacher, soup, TEXTS[:12], tok, cfg.model_copy(update={"epochs": 2, "members": 3}), log=lambda _: None)
    assert torch.equal(soup.embed.word.weight, rounded.grid())


def test_a_soup_is_the_mean_of_its_members_each_on_its_own_shuffle(tok):
    teacher = tiny_encoder(layers=4)
    cfg = TextDistillConfig(keep=[1, 3], epochs=2, batch_size=6, lr=3e-3, seed=5)
    alone = []
    for seed in (5, 6):  # what the soup's members are: the same start, seeds 5 and 6
        s = drop_layers(teacher, 2, keep=[1, 3])
        distill(teacher, s, TEXTS[:12], tok, cfg.model_copy(update={"seed": seed}), log=lambda _: None)
        alone.append(s.state_dict())
    assert not torch.equal(alone[0]["layers.0.ffn.up.weight"], alone[1]["layers.0.ffn.up.weight"])
    soup = drop_layers(teacher, 2, keep=[1, 3])
    logs: list[str] = []
    hist = distill(teacher, soup, TEXTS[:12], tok, cfg.model_copy(update={"members": 2}), log=logs.append)
    assert [r["member"] for r in hist] == [1, 2] and any("soup member 2/2 (seed 6)" in m for m in logs)
    for k, v in soup.state_dict().items():
        assert torch.equal(v, (alone[0][k] + alone[1][k]) / 2), k
    # a tensor equal in every member (a frozen table) is kept exactly; a float32 mean of three equal values is not
    w = teacher.embed.word.weight.detach()
    assert not torch.equal((w + w + w) / 3, w)
    assert torch.equal(average_weights([{"w": w}, {"w": w.clone()}, {"w": w.clone()}])["w"], w)
    a, b = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}, {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(3)}
    assert torch.equal(average_weights([a, b])["w"], torch.tensor([2.0, 4.0]))
    assert average_weights([a, b])["n"] == 3
    for bad, msg in [({"w": torch.zeros(3), "n": torch.tensor(3)}, "differ at w"),
                     ({"w": torch.zeros(2), "n": torch.tensor(4)}, "not floating point"),
                     ({"w": torch.zeros(2), "n": torch.tensor(3), "x": torch.zeros(1)}, "different parameters")]:
        with pytest.raises(KarukuError, match=msg):
            average_weights([a, bad])
    with pytest.raises(KarukuError, match="no weights"):
        average_weights([])
    with pytest.raises(KarukuError, match="members"):
        TextDistillConfig(members=0)


def test_word_qat_trains_the_table_through_its_rounding_and_keeps_it_on_the_grid(tok):
    teacher = tiny_encoder(layers=4)
    cfg = TextDistillConfig(keep=[1, 3], epochs=50, batch_size=6, lr=3e-3, weight_decay=0.1, word_bits=4,
                            word_qat=True)
    student = drop_layers(teacher, 2, keep=[1, 3])
    seen = []

    def hook(step):  # the table the forward pass sees at every logged step: always its own 4-bit rounding
        w = student.embed.word.weight.detach().clone()
        seen.append(torch.equal(w, QEmbedding(torch.nn.Embedding.from_pretrained(w), 4).grid()))

    hist = distill(teacher, student, TEXTS[:12], tok, cfg, log=lambda _: None, hook=hook)
    assert hist[-1]["embedding"] < hist[0]["embedding"] and len(seen) == 2 and all(seen)
    first = QEmbedding(teacher.embed.word, 4).grid()
    w = student.embed.word.weight
    assert w.requires_grad and not torch.equal(w, first)  # trained, unlike word_bits alone
    assert torch.equal(w, QEmbedding(student.embed.word, 4).grid())  # and on the grid the int8 file stores
    q = quantize(student, QuantConfig(mode="dynamic", target_isa="avx2", layer_bits={"embed.word": 4}))
    assert torch.equal(q.embed.word.weight, w.detach().half().float())
    with pytest.raises(KarukuError, match="give word_bits"):
        TextDistillConfig(word_qat=True)


def test_soup_members_of_their_own_word_bits_then_a_refinement_back_onto_the_grid(tok):
    teacher = tiny_encoder(layers=4)
    cfg = TextDistillConfig(keep=[1, 3], epochs=2, batch_size=6, lr=3e-3, seed=5, word_bits=4)
    alone = []
    for seed, bits in [(5, None), (6, 4)]:  # what the members are: a trained table, then one frozen on its grid
        s = drop_layers(teacher, 2, keep=[1, 3])
        distill(teacher, s, TEXTS[:12], tok, cfg.model_copy(update={"seed": seed, "word_bits": bits}),
                log=lambda _: None)
        alone.append(s.state_dict())
    grid = QEmbedding(teacher.embed.word, 4).grid()
    assert torch.equal(alone[1]["embed.word.weight"], grid)
    assert not torch.equal(alone[0]["embed.word.weight"], grid)
    mixed = cfg.model_copy(update={"members": 2, "member_word_bits": [None, 4]})
    soup = drop_layers(teacher, 2, keep=[1, 3])
    logs: list[str] = []
    hist = distill(teacher, soup, TEXTS[:12], tok, mixed, log=logs.append)
    assert [r["member"] for r in hist] == [1, 2] and any("(seed 6, word table at 4 bits)" in m for m in logs)
    for k, v in soup.state_dict().items():  # without a refinement: the plain mean (its table off the grid)
        assert torch.equal(v, average_weights(alone)[k]), k
    # refined: the soup trained on (seed 7, lr / 10) with its own mean table rounded to 4 bits and frozen
    expect = drop_layers(teacher, 2, keep=[1, 3])
    expect.load_state_dict(average_weights(alone))
    distill(teacher, expect, TEXTS[:12], tok, cfg.model_copy(update={"seed": 7, "epochs": 1, "lr": 3e-4}),
            log=lambda _: None)
    refined = drop_layers(teacher, 2, keep=[1, 3])
    hist = distill(teacher, refined, TEXTS[:12], tok, mixed.model_copy(update={"refine_epochs": 1}),
                   log=logs.append)
    assert hist[-1]["member"] == "refine" and any("refining the soup: 1 epochs at lr 0.0003 (seed 7)" in m
                                                  for m in logs)
    for k, v in refined.state_dict().items():
        assert torch.equal(v, expect.state_dict()[k]), k
    assert torch.equal(refined.embed.word.weight, QEmbedding(soup.embed.word, 4).grid())
    for bad, msg in [({"members": 3, "member_word_bits": [4, None]}, "one per member"),
                     ({"refine_epochs": 1.0}, "members >= 2")]:
        with pytest.raises(KarukuError, match=msg):
            TextDistillConfig(**bad)


def test_a_stopped_soup_resumes_at_its_next_member(tok, tmp_path):
    tmp_path = tmp_path / "members"
    teacher = tiny_encoder(layers=4)
    cfg = TextDistillConfig(keep=[1, 3], epochs=2, batch_size=6, lr=3e-3, members=2, member_word_bits=[None, 4],
                            word_bits=4, refine_epochs=1)
    whole = drop_layers(teacher, 2, keep=[1, 3])
    hist = distill(teacher, whole, TEXTS[:12], tok, cfg, log=lambda _: None, member_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member-1.safetensors", "member-2.safetensors"]
    (tmp_path / "member-2.safetensors").unlink()  # stopped while member 2 trained
    logs: list[str] = []
    again = drop_layers(teacher, 2, keep=[1, 3])
    again_hist = distill(teacher, again, TEXTS[:12], tok, cfg, log=logs.append, member_dir=tmp_path)

    def losses(h):  # a member's wall-clock seconds differ between runs; its losses may not
        return [{k: v for k, v in row.items() if k != "seconds"} for row in h]
    assert losses(again_hist) == losses(hist)
    assert any("soup member 1/2: trained before" in m for m in logs)
    assert any("soup member 2/2 (seed 1, word table at 4 bits)" in m for m in logs)
    for k, v in whole.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    # a damaged file, or one of another student, is trained again (and said)
    (tmp_path / "member-1.safetensors").write_bytes(b"not a safetensors file")
    other = drop_layers(teacher, 1, keep=[3])
    logs.clear()
    distill(teacher, other, TEXTS[:12], tok, cfg.model_copy(update={"keep": [3], "layers": 1}), log=logs.append,
            member_dir=tmp_path)
    assert any("member-1.safetensors unreadable" in m for m in logs)
    assert any("member-2.safetensors is of another student" in m for m in logs)


def test_keep_names_the_teacher_layers_and_their_hints():
    teacher = tiny_encoder(layers=4)
    cfg = TextDistillConfig(keep=[0, 3])
    assert cfg.layers == 2
    assert plan(4, 2, keep=[0, 3]) == [(0, 1), (3, 4)]  # each kept layer ends its group
    assert plan(4, 2, "first") == [(0, 2), (2, 4)]
    student = drop_layers(teacher, 2, keep=[0, 3])
    assert torch.equal(student.layers[1].ffn.up.weight, teacher.layers[3].ffn.up.weight)
    for bad, msg in [([2, 1], "increasing"), ([], "increasing"), ([-1, 2], "increasing")]:
        with pytest.raises(KarukuError, match=msg):
            TextDistillConfig(keep=bad)
    with pytest.raises(KarukuError, match="layers 3 but keep names 2"):
        TextDistillConfig(layers=3, keep=[0, 3])
    with pytest.raises(KarukuError, match="keep names teacher layer 4"):
        drop_layers(teacher, 2, keep=[0, 4])


def test_fidelity_and_retrieval_measures(tok):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, 8)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    same = fidelity(ref, ref.copy(), k=5)
    assert same.mean_cosine == pytest.approx(1, abs=1e-6) and same.top10_overlap == 1.0 and same.texts == 40
    noisy = fidelity(ref, ref + rng.normal(scale=0.3, size=ref.shape).astype(np.float32), k=5)
    assert noisy.mean_cosine < 0.99 and noisy.p1_cosine < noisy.mean_cosine and noisy.top10_overlap < 1
    nb = neighbours(ref, 3)
    assert nb.shape == (40, 3) and not (nb == np.arange(40)[:, None]).any()
    with pytest.raises(KarukuError, match="cannot return 10 neighbours"):
        neighbours(ref[:5], 10)
    m = tiny_encoder()
    emb = encode(m, TEXTS, tok, batch_size=5)  # length-sorted batches come back in input order
    with torch.no_grad():
        assert np.abs(emb - m(*tok(TEXTS).inputs()).numpy()).max() < 1e-5
    fb = fixed_batch(tok, TEXTS, 2, 12)
    assert fb.input_ids.shape == (2, 12) and int(fb.attention_mask.sum()) == 24 and fb.input_ids[0, 0] == tok.cls


def test_text_recipe_runs_resumes_and_reports(tmp_path, monkeypatch):
    """prune → distil → int8 → ONNX on a tiny fake pretrained model and corpus, through the CLI."""
    from helpers.procs import karuku_cli
    from helpers.textmodels import register_tiny_pretrained
    from karuku.text.recipe import load_recipe
    from karuku.text.run import compress_text, load_encoder

    m = tiny_encoder(max_positions=128)
    folder = register_tiny_pretrained(m, tmp_path / "model", monkeypatch)
    from karuku.text import corpus as corpus_mod

    texts = [f"{t} {t} {i}" for i in range(20) for t in TEXTS]  # 320 texts (digits become [UNK])
    monkeypatch.setattr(corpus_mod, "load_corpus",
                        lambda name="fortunes", source=None, log=print: corpus_mod.Corpus(texts[:280], texts[280:],
                                                                                          "test"))
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text("""version: 1
name: tiny-edge
model: {pretrained: tiny}
data: {calibration: 32}
budget: {min_fidelity: 0.5, max_size_kb: 100000}
stages:
  - prune: {heads: 0.5, ffn: 0.25, round_to: 16}
  - distill: {layers: 1, epochs: 1, batch_size: 16, lr: 0.001}
  - quantize: {mode: dynamic, target_isa: avx2, smooth: 0.75, layer_bits: {embed.word: 4}}
  - export: {}
""")
    recipe = load_recipe(recipe_path)
    logs = []
    s = compress_text(recipe, tmp_path / "run", model_source=folder, log=logs.append, time_rounds=1)
    kinds = [st["kind"] for st in s["steps"]]
    assert kinds == ["pretrained", "prune", "distill", "quantize", "export"]
    assert s["steps"][1]["shape"] == {"heads": [1, 1], "ffn": [48, 48]}
    assert s["steps"][2]["shape"]["heads"] == [1] and s["steps"][2]["params"] < s["steps"][1]["params"]
    assert s["steps"][0]["fidelity"]["mean_cosine"] == pytest.approx(1, abs=1e-6)
    final = onnx.load(str(tmp_path / "run" / "model.onnx"))
    assert {p.key: p.value for p in final.metadata_props}["karuku.representation"] == "u8s7"
    assert set(s["timing"]) == {"fp32 ONNX (standard export)", "fp32 ONNX (karuku fused graph)", "result"}
    assert s["ok"] == (s["steps"][-1]["fidelity"]["mean_cosine"] >= 0.5)
    assert [c["limit"] for c in s["checks"]] == ["min_fidelity", "max_size_kb"] and s["checks"][1]["ok"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| distill |" in report and "batch 32 × 128 tokens" in report
    student = load_encoder(s["steps"][2]["checkpoint"])
    assert student.cfg.heads == (1,)
    # a second run resumes: prune and distil are not redone
    logs.clear()
    compress_text(recipe, tmp_path / "run", model_source=folder, log=logs.append, time_rounds=1)
    assert "skipped" in (tmp_path / "run" / "run.log").read_text()
    # the recipe validator names the faulty stage
    recipe_path.write_text("version: 1\nname: x\nstages:\n  - prune: {heads: 2}\n  - distil: {}\n")
    with pytest.raises(KarukuError, match="unknown stage 'distil'.*did you mean 'distill'"):
        load_recipe(recipe_path)
    recipe_path.write_text("version: 1\nname: x\nstages:\n  - prune: {heads: 2}\n")
    with pytest.raises(KarukuError, match=r"stages\[0\].prune: invalid HeadPruneConfig heads"):
        load_recipe(recipe_path)
    out = karuku_cli(["text", "validate", "recipes/minilm-edge.yaml"])
    assert "prune → distill → quantize → export" in out.stdout


def test_smoothing_tames_an_outlier_channel(tok):
    """One residual channel 40× larger than the rest (as in real BERTs): per-tensor int8 activations lose the
    others; SmoothQuant's per-channel division (a Mul before quantizing, exported too) wins them back."""
    m = tiny_encoder()
    b = tok(TEXTS)
    with torch.no_grad():
        for norm in (m.embed.norm, m.layers[0].attn.norm, m.layers[0].ffn.norm, m.layers[1].attn.norm):
            norm.weight[5] *= 40
        ref = m(*b.inputs()).numpy()
    cfg = QuantConfig(mode="dynamic", target_isa="avx2", layer_bits={"embed.word": "float"})
    plain, smoothed = quantize(m, cfg), quantize(m, cfg, calibration=b, smooth=0.5)
    assert smoothed.layers[0].attn.q.in_scale.shape == (32,)
    assert torch.equal(smoothed.layers[0].attn.q.in_scale, smoothed.layers[0].attn.v.in_scale)  # shared input
    raw = export_onnx(smoothed)
    muls = [n for n in onnx.load_from_string(raw).graph.node if n.op_type == "Mul"]
    assert len(muls) == 2 * 3 + 2  # per layer q/k/v, up, down (o's is folded into v's scales) + pooling's two
    with torch.no_grad():
        _same_integers(_ort(raw, b), smoothed(*b.inputs()).numpy())
        err_plain = 1 - (plain(*b.inputs()).numpy() * ref).sum(1).mean()
        err_smooth = 1 - (smoothed(*b.inputs()).numpy() * ref).sum(1).mean()
    assert err_smooth < 0.7 * err_plain
    with pytest.raises(KarukuError, match="need calibration texts"):
        quantize(m, cfg, smooth=0.5)


def test_the_output_projection_smoothing_folds_into_float_attention_too(tok):
    """Q/K/V left float (com.microsoft Attention, packed weights), o int8 and smoothed: its 1/s goes into V's
    float columns, and the file still computes the reference."""
    m = tiny_encoder()
    b = tok(TEXTS)
    cfg = QuantConfig(mode="dynamic", target_isa="avx2", layer_bits={"embed.word": "float", "layers.*.attn.[qkv]":
                                                                     "float"})
    q = quantize(m, cfg, calibration=b, smooth=0.5)
    assert isinstance(q.layers[0].attn.v, torch.nn.Linear) and q.layers[0].attn.o.in_scale.shape == (32,)
    raw = export_onnx(q)
    assert not any(t.name.endswith("attn.o.in_scale") for t in onnx.load_from_string(raw).graph.initializer)
    with torch.no_grad():
        _same_integers(_ort(raw, b), q(*b.inputs()).numpy())


def test_gptq_rounding_keeps_the_grid_and_loses_less_per_layer(tok):
    """GPTQ (rounding="gptq") on top of SmoothQuant at 7 bits: the same per-channel scales as nearest rounding,
    a lower output error in every Linear on its own calibration inputs, and a file that computes the reference."""
    from karuku.text.quantize import input_grams

    m = tiny_encoder()
    b = tok(TEXTS)
    cfg = QuantConfig(mode="dynamic", target_isa="avx2", layer_bits={"embed.word": "float"})
    near = quantize(m, cfg, calibration=b, smooth=0.5)
    gptq = quantize(m, cfg, calibration=b, smooth=0.5, rounding="gptq")
    grams = input_grams(m, b)

    def error(q: QLinear, name: str) -> float:  # Σ over real tokens of |x W^T - x Ŵ^T|², in x / s coordinates
        d = q.in_scale.double()
        w = m.get_submodule(name).weight.detach().double() / d[None, :]
        diff = w - q.w_int.double() * q.w_scale.double()[:, None]
        return float((diff @ (grams[name] * d[:, None] * d[None, :]) * diff).sum())

    names = [n for n, q in gptq.named_modules() if isinstance(q, QLinear)]
    assert len(names) == 2 * 6
    for name in names:
        a, g = near.get_submodule(name), gptq.get_submodule(name)
        assert torch.equal(a.w_scale, g.w_scale) and int(g.w_int.abs().max()) <= 63  # the grid, 7 bits
        assert error(g, name) < error(a, name), name
    raw = export_onnx(gptq)
    with torch.no_grad():
        _same_integers(_ort(raw, b), gptq(*b.inputs()).numpy())
    with pytest.raises(KarukuError, match="need calibration texts"):
        quantize(m, cfg, rounding="gptq")
    with pytest.raises(KarukuError, match="does not apply to QAT"):
        quantize(m, QuantConfig(mode="qat"), b, rounding="gptq")
    with pytest.raises(KarukuError, match="unknown weight rounding"):
        quantize(m, cfg, b, rounding="adaround")
