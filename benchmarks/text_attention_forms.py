"""Which ONNX form of a quantized attention block runs fastest in ONNX Runtime on CPU: each form replaces only the
Q/K/V projections + attention of karuku's int8 export (`karuku.text.onnx_export._attention`), the rest of the
file unchanged, the same integers and scales (so outputs move only by float reordering; printed), and every file
is timed side by side in one process: one thread, interleaved rounds (each round: one batch-32 × 128 run of
every file, then its batch-1 × 32 runs; the order reversed every other round), medians of per-round ratios.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/text_attention_forms.py --model minilm --rounds 60 \
        --forms shipped qattention onnx-attention onnx-attention-3
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/text_attention_forms.py --model 4L-f768 --forms shipped mha ops
    # what ONNX Runtime's optimizer turned each form into, and the files (for benchmarks/onnx_profile.py)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/text_attention_forms.py --save /tmp/forms --rounds 1

Forms (dynamic int8; SmoothQuant's Mul, when set, before the quantization):
- shipped: what karuku writes — x quantized once (DynamicQuantizeLinear), three MatMulIntegerToFloat, the
  standard Attention (opset 23), masked only when some token is padding (an If); the output projection's
  SmoothQuant Mul folded into V's scales (the other forms keep that Mul);
- qattention: com.microsoft QAttention over DynamicQuantizeLinear (Q/K/V in one packed int8 matrix), what karuku
  wrote until 2026-12-02;
- onnx-attention: one packed DynamicQuantizeMatMul 384 → 3·inner with the bias, Split, the standard Attention;
- onnx-attention-3: three DynamicQuantizeMatMul (x quantized three times), the standard Attention;
- mha: the packed DynamicQuantizeMatMul, Split, com.microsoft MultiHeadAttention (key_padding_mask; its packed
  QKV input (B, T, heads, 3, head_dim), which would save the Split, is "not implemented for CPU" in ONNX Runtime
  1.32);
- mha-3: three DynamicQuantizeMatMul, MultiHeadAttention;
- ops: ORT quantize_dynamic's form — three DynamicQuantizeMatMul, Reshape / Transpose, MatMul, scale, additive
  mask, Softmax, MatMul, in standard operators;
- ops-packed: the packed DynamicQuantizeMatMul, Split, then the same standard operators;
- fp32-onnx-attention (with --fp32, beside `shipped`, which is then com.microsoft Attention): three MatMul + bias,
  the standard Attention.
Results: docs/bench/text.md ("int8 attention forms").
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from karuku.cpu import detect
from karuku.measure.timing import time_call
from karuku.quant.config import QuantConfig
from karuku.text import load_pretrained, onnx_export
from karuku.text.corpus import load_corpus
from karuku.text.distill import drop_layers
from karuku.text.onnx_export import MS, _Graph, export_onnx
from karuku.text.prune import HeadPruneConfig, prune
from karuku.text.quantize import QLinear, quantize
from karuku.text.run import export_standard
from karuku.text.task import encode, fidelity, fixed_batch, onnx_fn

SHIPPED = onnx_export._attention


def _const(g: _Graph, name: str, arr) -> str:
    """A constant shared by every layer (written once)."""
    return name if any(t.name == name for t in g.inits) else g.init(name, arr)


def _once(g: _Graph, key: str, build) -> str:
    """A node output shared by every layer (built by the first)."""
    if key not in g.__dict__:
        g.__dict__[key] = build()
    return g.__dict__[key]


def _mask32(g: _Graph) -> str:
    return _once(g, "_mask32", lambda: g.node("Cast", ["attention_mask"], to=g.tp.INT32))


def _dynamic_qkv(attn) -> list:
    qkv = [attn.q, attn.k, attn.v]
    if not all(isinstance(m, QLinear) and not m.static for m in qkv):
        raise SystemExit("these forms are written for dynamic int8 Q/K/V")
    return qkv


def _packed_inputs(g, i, attn, x):
    """(x after SmoothQuant, int weights, zero points, scales, bias) of Q, K and V as one matrix 384 → 3·inner."""
    name = f"layers.{i}.attn"
    qkv = _dynamic_qkv(attn)
    wi, wz = g.int_weights(f"{name}.qkv", torch.cat([m.w_int for m in qkv]))
    ws = g.init(f"{name}.qkv.w_scale", torch.cat([m.w_scale for m in qkv]).float().numpy())
    b = g.init(f"{name}.qkv.b", torch.cat([m.bias.detach().float() for m in qkv]).numpy())
    return g.smoothed(f"{name}.qkv", qkv[0], x), wi, wz, ws, b


def form_qattention(g, i, attn, mask, x):
    x, w, wz, ws, b = _packed_inputs(g, i, attn, x)
    xq, xs, xz = g.node("DynamicQuantizeLinear", [x], 3)
    return g.node("QAttention", [xq, w, b, xs, ws, _mask32(g), xz, wz], domain=MS, num_heads=attn.heads)


def _packed(g, i, attn, x):
    """Q, K, V from one DynamicQuantizeMatMul 384 → 3·inner (bias included), split in three."""
    x, w, wz, ws, b = _packed_inputs(g, i, attn, x)
    packed = g.node("DynamicQuantizeMatMul", [x, w, ws, wz, b], domain=MS)
    inner = attn.heads * attn.head_dim
    return g.node("Split", [packed, _const(g, f"split_{inner}", np.array([inner] * 3, np.int64))], 3, axis=2)


def _three(g, i, attn, x):
    """Q, K, V from three DynamicQuantizeMatMul (each quantizes x again)."""
    return [g.linear(f"layers.{i}.attn.{p}", m, x) for p, m in zip("qkv", _dynamic_qkv(attn))]


def _additive_mask(g) -> str:
    """(B, 1, 1, T) float: 0 where attended, float32 min where padded (as the torch encoder adds)."""
    def build():
        m4 = g.node("Unsqueeze", [g.node("Cast", ["attention_mask"], to=g.tp.FLOAT),
                                  _const(g, "axes_1_2f", np.array([1, 2], np.int64))])
        return g.node("Mul", [g.node("Sub", [_const(g, "one_f", np.array(1, np.float32)), m4]),
                              _const(g, "fmin", np.array(np.finfo(np.float32).min, np.float32))])
    return _once(g, "_addmask", build)


def _ops_attention(g, attn, q, k, v):
    heads, d = attn.heads, attn.head_dim
    shape = _const(g, f"head_shape_{heads}", np.array([0, 0, heads, d], np.int64))
    qh = g.node("Transpose", [g.node("Reshape", [q, shape])], perm=[0, 2, 1, 3])
    kt = g.node("Transpose", [g.node("Reshape", [k, shape])], perm=[0, 2, 3, 1])
    vh = g.node("Transpose", [g.node("Reshape", [v, shape])], perm=[0, 2, 1, 3])
    scores = g.node("Mul", [g.node("MatMul", [qh, kt]),
                            _const(g, "inv_sqrt_d", np.array(1 / math.sqrt(d), np.float32))])
    probs = g.node("Softmax", [g.node("Add", [scores, _additive_mask(g)])], axis=-1)
    ctx = g.node("Transpose", [g.node("MatMul", [probs, vh])], perm=[0, 2, 1, 3])
    return g.node("Reshape", [ctx, _const(g, "ctx_shape", np.array([0, 0, -1], np.int64))])


def _onnx_attention(g, attn, mask, q, k, v):
    return g.node("Attention", [q, k, v, mask["bool"]], q_num_heads=attn.heads, kv_num_heads=attn.heads)


def _mha(g, attn, q, k, v):
    return g.node("MultiHeadAttention", [q, k, v, "", _mask32(g)], domain=MS, num_heads=attn.heads)


def form_fp32_onnx_attention(g, i, attn, mask, x):
    """fp32 only: three MatMul + bias, the standard Attention (the mask built here: the export builds the bool
    mask for int8 attention only)."""
    if "bool" not in mask:
        mask["bool"] = onnx_export._pair_mask(g)
    q, k, v = (g.linear(f"layers.{i}.attn.{p}", m, x) for p, m in zip("qkv", [attn.q, attn.k, attn.v]))
    return _onnx_attention(g, attn, mask, q, k, v)


FORMS = {
    "shipped": SHIPPED,
    "qattention": form_qattention,
    "onnx-attention": lambda g, i, attn, mask, x: _onnx_attention(g, attn, mask, *_packed(g, i, attn, x)),
    "onnx-attention-3": lambda g, i, attn, mask, x: _onnx_attention(g, attn, mask, *_three(g, i, attn, x)),
    "mha": lambda g, i, attn, mask, x: _mha(g, attn, *_packed(g, i, attn, x)),
    "mha-3": lambda g, i, attn, mask, x: _mha(g, attn, *_three(g, i, attn, x)),
    "ops": lambda g, i, attn, mask, x: _ops_attention(g, attn, *_three(g, i, attn, x)),
    "ops-packed": lambda g, i, attn, mask, x: _ops_attention(g, attn, *_packed(g, i, attn, x)),
    "fp32-onnx-attention": form_fp32_onnx_attention,
}


def _o_scaled(form):
    """A form with the output projection's SmoothQuant Mul on its result: the export folds it into V's scales
    (`onnx_export._o_fold`) and so writes no Mul for it; only the shipped form folds."""
    def build(g, i, attn, mask, x):
        ctx, scale = form(g, i, attn, mask, x), onnx_export._o_fold(attn)
        return ctx if scale is None else g.node("Mul", [ctx, g.init(f"layers.{i}.attn.o.in_scale", scale.numpy())])
    return build


def export_form(model, form: str) -> bytes:
    onnx_export._attention = FORMS[form] if form == "shipped" else _o_scaled(FORMS[form])
    try:
        return export_onnx(model)
    finally:
        onnx_export._attention = SHIPPED


def optimized_ops(raw: bytes, path: Path) -> str:
    """The operator counts of what ONNX Runtime's optimizer makes of the file (saved to `path`)."""
    import collections

    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads, so.log_severity_level = 1, 3
    so.optimized_model_filepath = str(path)
    ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    return ", ".join(f"{k} {v}" for k, v in ops.most_common())


def student(teacher, calib, keep, ffn):
    return drop_layers(prune(teacher, HeadPruneConfig(heads=0.0, ffn=ffn, scope="layer"), calib)[0], len(keep),
                       keep=list(keep))


def cpu_timed(fn, runs: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms of this process) of `runs` calls. With one thread ONNX Runtime runs in
    the calling thread, so CPU time leaves out the time other jobs held the core."""
    wall, cpu = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm", choices=["minilm", "4L-f768", "4L-f1152"])
    ap.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    ap.add_argument("--held", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=30, help="rounds: each file's batch-32 runs, then its batch-1 runs")
    ap.add_argument("--runs", type=int, default=1, help="batch-32 runs per file per round (their median counts)")
    ap.add_argument("--runs-b1", type=int, default=10, help="batch-1 runs per file per round")
    ap.add_argument("--fp32", action="store_true", help="time the float model's forms (shipped, fp32-*)")
    ap.add_argument("--save", help="folder: write each file and ONNX Runtime's optimized graph of it")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher, tok = load_pretrained(log=lambda _: None)
    corpus = load_corpus(log=lambda _: None)
    print(detect().summary(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"load {os.getloadavg()}",
          flush=True)
    held, calib = tok(corpus.held_out[:args.held]), tok(corpus.train[:256])
    ref = encode(teacher, held)
    model, qcfg = teacher, QuantConfig(mode="dynamic", target_isa="auto")
    if args.model != "minilm":  # the recipe's student shapes (untrained: speed does not depend on the values)
        model = student(teacher, calib, (0, 2, 4, 5), {"4L-f768": 0.5, "4L-f1152": 0.25}[args.model])
        qcfg = QuantConfig(mode="dynamic", target_isa="auto", layer_bits={"embed.word": 4})
        ref = encode(model, held)
    q = model if args.fp32 else quantize(model, qcfg, calib, smooth=0.75)
    big = fixed_batch(tok, corpus.train, 32, 128)
    one = fixed_batch(tok, corpus.train[len(corpus.train) // 2:], 1, 32)
    files = {"fp32 standard": export_standard(teacher, one)}
    files |= {f: export_form(q, f) for f in args.forms}
    embs = {}
    for f in args.forms:
        embs[f] = encode(onnx_fn(files[f], 1), held)
        fi = fidelity(ref, embs[f])
        delta = float(np.abs(embs[f] - embs[args.forms[0]]).max())
        print(f"{f}: mean cos {fi.mean_cosine:.6f}, p1 {fi.p1_cosine:.6f}, top-10 {fi.top10_overlap:.4f} "
              f"({fi.texts} held-out, against {args.model} fp32 torch); max |Δ| to {args.forms[0]} {delta:.2e}",
              flush=True)
        if args.save:
            out = Path(args.save)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{args.model}-{f}.onnx").write_bytes(files[f])
            print(f"  optimized: {optimized_ops(files[f], out / f'{args.model}-{f}.opt.onnx')}", flush=True)
    fns = {k: onnx_fn(b, 1) for k, b in files.items()}
    big_np, one_np = [t.numpy() for t in big.inputs()], [t.numpy() for t in one.inputs()]
    b32 = {k: [] for k in fns}
    b1 = {k: [] for k in fns}
    loads = []
    cpu32 = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn(*big_np)
        fn(*one_np)
    for r in range(args.rounds):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]  # alternate the order: no form always runs first
        for k in order:
            wall, cpu = cpu_timed(lambda fn=fns[k]: fn(*big_np), args.runs)
            b32[k].append(wall)
            cpu32[k].append(cpu)
            b1[k].append(time_call(lambda fn=fns[k]: fn(*one_np), warmup=1, runs=args.runs_b1).median_ms)
        loads.append(os.getloadavg()[0])
        if r % 10 == 9:
            print(f"round {r + 1}: load {loads[-1]:.2f}", flush=True)
    base = args.forms[0]
    print(f"\n{args.model}, {args.rounds} rounds, load {min(loads):.2f}–{max(loads):.2f}; ratios per round against "
          f"{base} (>1: faster)")
    print("| file | b32×128 /s | vs fp32 | vs " + base + " (median; rounds) | same, CPU time (median; rounds) | "
          "b1×32 ms | b1 vs " + base + " (median) |")
    print("|---|---|---|---|---|---|---|")
    for k in fns:
        thr = [base_ms / ms for base_ms, ms in zip(b32[base], b32[k])]
        thr_cpu = [base_ms / ms for base_ms, ms in zip(cpu32[base], cpu32[k])]
        lat = [base_ms / ms for base_ms, ms in zip(b1[base], b1[k])]
        fp = [f_ms / ms for f_ms, ms in zip(b32["fp32 standard"], b32[k])]
        print(f"| {k} | {32_000 / statistics.median(b32[k]):.1f} | {statistics.median(fp):.2f}× | "
              f"{statistics.median(thr):.3f} ({', '.join(f'{x:.2f}' for x in thr)}) | "
              f"{statistics.median(thr_cpu):.3f} ({', '.join(f'{x:.2f}' for x in thr_cpu)}) | "
              f"{statistics.median(b1[k]):.2f} | {statistics.median(lat):.3f} |", flush=True)


if __name__ == "__main__":
    main()
