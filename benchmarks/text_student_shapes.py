"""Size and speed of candidate all-MiniLM-L6-v2 students before spending distillation compute on them: each
candidate is pruned (layer scope) and cut to its kept layers, measured untrained (float, first `--held` held-out
fortunes against fp32), quantized as the recipe does (dynamic int8, SmoothQuant 0.75, int4 word embedding),
exported to ONNX, and timed side by side with the standard fp32 export of the teacher (interleaved rounds).
Dynamic int8 speed does not depend on the weights' values, so an untrained student times as a trained one.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_shapes.py
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_shapes.py --only 6L-h8-f512 4L-f768
    # low-rank FFN (factorize_ffn: each FFN matrix two Linears through rank r) against the pruned FFN 768
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_shapes.py --only 4L-f768 4L-r128 4L-r192
    # trained students (karuku checkpoints): float and int8 ONNX fidelity on every held-out text, size, speed
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_shapes.py --only --held 1467 \
        --checkpoint 4L=RUN/steps/KEY/model.safetensors

Results: docs/bench/text.md ("Student shapes at equal budget", "Low-rank FFN", "Fewer heads, the whole FFN").
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from karuku.cpu import detect
from karuku.measure.timing import time_call
from karuku.quant.config import QuantConfig
from karuku.text import load_pretrained
from karuku.text.corpus import load_corpus
from karuku.text.distill import drop_layers
from karuku.text.onnx_export import export_onnx
from karuku.text.prune import HeadPruneConfig, factorize_ffn, prune
from karuku.text.quantize import quantize
from karuku.text.run import export_standard, load_encoder
from karuku.text.task import encode, fidelity, fixed_batch, onnx_fn

# name: (kept teacher layers, share of heads pruned, share of FFN neurons pruned[, FFN rank: factorize_ffn])
CANDIDATES = {
    "4L-r128": ((0, 2, 4, 5), 0.0, 0.0, 128),  # the whole FFN (1536), each matrix a rank-r pair
    "4L-r160": ((0, 2, 4, 5), 0.0, 0.0, 160),
    "4L-r192": ((0, 2, 4, 5), 0.0, 0.0, 192),
    "4L-r256": ((0, 2, 4, 5), 0.0, 0.0, 256),
    "4L-f768": ((0, 2, 4, 5), 0.0, 0.5),  # recipe v2
    "4L-f1152": ((0, 2, 4, 5), 0.0, 0.25),
    "4L-f1536": ((0, 2, 4, 5), 0.0, 0.0),  # the whole FFN
    "4L-h8-f1536": ((0, 2, 4, 5), 1 / 3, 0.0),  # the whole FFN, a third of the heads pruned
    "4L-h6-f1536": ((0, 2, 4, 5), 0.5, 0.0),
    "4L-h8-f1152": ((0, 2, 4, 5), 1 / 3, 0.25),
    "5L-f640": ((0, 1, 2, 3, 5), 0.0, 0.5833),
    "5L-h9-f768": ((0, 1, 2, 3, 5), 0.25, 0.5),
    "6L-h6-f768": ((0, 1, 2, 3, 4, 5), 0.5, 0.5),
    "6L-h8-f512": ((0, 1, 2, 3, 4, 5), 1 / 3, 2 / 3),
    "6L-h8-f640": ((0, 1, 2, 3, 4, 5), 1 / 3, 0.5833),
}


def macs_per_token(heads, ffn, hidden: int = 384, head_dim: int = 32, tokens: int = 128, ranks=()) -> int:
    ranks = ranks or (0,) * len(heads)
    return sum(4 * hidden * h * head_dim + 2 * tokens * h * head_dim + (2 * r * (hidden + f) if r else 2 * hidden * f)
               for h, f, r in zip(heads, ffn, ranks))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", choices=list(CANDIDATES), help="these candidates (none: only checkpoints)")
    ap.add_argument("--checkpoint", nargs="+", default=[], metavar="NAME=PATH", help="trained students to measure")
    ap.add_argument("--onnx", nargs="+", default=[], metavar="NAME=PATH", help="int8 ONNX files made elsewhere "
                    "(e.g. text_slope_probe.py --qat) to measure and time beside them")
    ap.add_argument("--held", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="then each file's time at batch 32 x 128 by operator")
    ap.add_argument("--rounding", choices=["nearest", "gptq"], default="nearest", help="int8 weight rounding")
    ap.add_argument("--modes", nargs="+", choices=["dynamic", "ptq"], default=["dynamic"],
                    help="int8 activations: dynamic, and / or static ranges calibrated on 256 training texts (ptq; "
                         "its files are named 'NAME static')")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher, tok = load_pretrained(log=lambda _: None)
    corpus = load_corpus(log=lambda _: None)
    print(detect().summary(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), flush=True)
    held, calib = tok(corpus.held_out[:args.held]), tok(corpus.train[:256])
    ref = encode(teacher, held)
    big = fixed_batch(tok, corpus.train, 32, 128)
    one = fixed_batch(tok, corpus.train[len(corpus.train) // 2:], 1, 32)
    base = export_standard(teacher, one)
    files, info = {"fp32 standard": base}, {}
    qcfgs = {mode: QuantConfig(mode=mode, target_isa="auto", layer_bits={"embed.word": 4}) for mode in args.modes}
    students = {}
    for name in CANDIDATES if args.only is None else args.only:
        keep, heads, ffn, *rank = CANDIDATES[name]
        src = prune(teacher, HeadPruneConfig(heads=heads, ffn=ffn, scope="layer"), calib)[0] if heads or ffn \
            else teacher
        students[name] = drop_layers(src, len(keep), keep=list(keep))
        if rank:
            students[name] = factorize_ffn(students[name], rank[0])
    for item in args.checkpoint:
        name, _, path = item.partition("=")
        students[name] = load_encoder(path)
    for name, student in students.items():
        f = fidelity(ref, encode(student, held))
        for mode, qcfg in qcfgs.items():
            raw = export_onnx(quantize(student, qcfg, calib, smooth=0.75, rounding=args.rounding))
            key = name if mode == "dynamic" else f"{name} static"
            if name not in CANDIDATES:
                q = fidelity(ref, encode(onnx_fn(raw, 1), held))
                print(f"{key}: int8 ONNX mean cos {q.mean_cosine:.4f}, p1 {q.p1_cosine:.4f}, top-10 "
                      f"{q.top10_overlap:.3f} on {q.texts} held-out texts", flush=True)
            files[key] = raw
        info[name] = {"heads": list(student.cfg.heads), "ffn": list(student.cfg.intermediate),
                      "rank": list(student.cfg.ffn_rank),
                      "params": sum(p.numel() for p in student.parameters()),
                      "macs": macs_per_token(student.cfg.heads, student.cfg.intermediate,
                                             ranks=student.cfg.ffn_rank), "cos": f.mean_cosine,
                      "top10": f.top10_overlap}
        print(f"{name}: heads {info[name]['heads']}, ffn {info[name]['ffn']} rank {info[name]['rank']}, "
              f"{info[name]['params']:,} params, "
              f"MACs/token {info[name]['macs'] / 1e6:.2f} M, float mean cos {f.mean_cosine:.4f} "
              f"(p1 {f.p1_cosine:.4f}, top-10 {f.top10_overlap:.3f}), int8 file {len(raw) / 1e6:.2f} MB "
              f"({len(base) / len(raw):.2f}x smaller)", flush=True)
    for item in args.onnx:
        name, _, path = item.partition("=")
        files[name] = Path(path).read_bytes()
        q = fidelity(ref, encode(onnx_fn(files[name], 1), held))
        print(f"{name}: int8 ONNX mean cos {q.mean_cosine:.4f}, p1 {q.p1_cosine:.4f}, top-10 {q.top10_overlap:.3f} "
              f"on {q.texts} held-out texts, {len(files[name]) / 1e6:.2f} MB "
              f"({len(base) / len(files[name]):.2f}x smaller)", flush=True)
    fns = {k: onnx_fn(b, 1) for k, b in files.items()}
    big_np, one_np = [t.numpy() for t in big.inputs()], [t.numpy() for t in one.inputs()]
    b32 = {k: [] for k in fns}
    b1 = {k: [] for k in fns}
    for _ in range(args.rounds):
        for k, fn in fns.items():
            b32[k].append(time_call(lambda fn=fn: fn(*big_np), warmup=1, runs=3).median_ms)
            b1[k].append(time_call(lambda fn=fn: fn(*one_np), warmup=3, runs=20).median_ms)
    ref_ms = statistics.median(b32["fp32 standard"])
    for k in fns:
        ms = statistics.median(b32[k])
        print(f"{k}: b32x128 {32_000 / ms:.1f}/s ({ref_ms / ms:.2f}x fp32; rounds "
              f"{', '.join(f'{ref / x:.2f}' for ref, x in zip(b32['fp32 standard'], b32[k]))}), "
              f"b1x32 {statistics.median(b1[k]):.2f} ms", flush=True)
    if args.profile:
        for k, raw in files.items():
            print(f"{k}: ms per b32x128 batch by operator: {profile(raw, big_np)}", flush=True)


def profile(raw: bytes, inputs, runs: int = 5) -> str:
    """ONNX Runtime's own profile of `runs` batches: the mean milliseconds per batch of each operator type."""
    from onnx_profile import op_times, profiled_session  # a sibling script (benchmarks/ is on the path when run)

    sess = profiled_session(raw)
    r = op_times(sess, dict(zip([i.name for i in sess.get_inputs()], inputs)), runs)
    return f"total {r['total_ms']:.0f}; " + ", ".join(f"{op} {v['ms']:.0f}" for op, v in r["ops"].items()
                                                      if v["ms"] >= 1)


if __name__ == "__main__":
    main()
