"""Int8 PTQ accuracy on MNIST: float vs fake-quant vs integer engine vs int8 ONNX Runtime, per checkpoint.

    .venv/bin/python benchmarks/quant_accuracy.py CKPT [CKPT ...] --out results.json [--observer mse]
        [--rounding single|double] [--images N]

Checkpoints are karuku float checkpoints trained on MNIST (karuku train). Prints one markdown row
per checkpoint and writes every figure to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.measure.onnx_runtime import session
from karuku.quant import QuantConfig, export_qdq, quantize, to_integer
from karuku.training import predict


def top1(logits, y) -> float:
    return float((torch.as_tensor(logits).argmax(1) == y).float().mean())


def run(path: str, observer: str, calibration: int, rounding: str = "single", images: int | None = None) -> dict:
    model, ckpt = load_model(path)
    splits = load_splits(DataConfig(name="mnist"))
    x, y = (part[:images] for part in splits.test.tensors)
    t = time.perf_counter()
    cfg = QuantConfig(observer=observer, calibration=calibration, rounding=rounding)
    qm = quantize(model, cfg, splits.calibration(calibration))
    quant_s = time.perf_counter() - t
    im = to_integer(qm)
    fp, fq = predict(model, x), predict(qm, x)
    t = time.perf_counter()
    ints = im.run(x, fast=True)
    engine_s = time.perf_counter() - t
    sess = session(export_qdq(im), threads=2)
    ort_out = np.concatenate([sess.run(None, {"input": x[i:i + 1000].numpy()})[0] for i in range(0, len(x), 1000)])
    step = im.values[im.output].scale
    return {
        "checkpoint": path, "model": ckpt.spec.name, "observer": observer, "calibration": calibration,
        "rounding": rounding, "images": len(x),
        "fp32": top1(fp, y), "fake_quant": top1(fq, y), "engine": top1(ints, y), "onnx_int8": top1(ort_out, y),
        "engine_vs_fake_top1": float((ints.argmax(1) == fq.argmax(1)).float().mean()),
        "engine_vs_fake_within_1_step": float(((ints - fq).abs() <= step * 1.0001).float().mean()),
        "engine_vs_fake_max_steps": float((ints - fq).abs().max() / step),
        "onnx_vs_engine_top1": float((torch.as_tensor(ort_out).argmax(1) == ints.argmax(1)).float().mean()),
        "quantize_seconds": round(quant_s, 1), "engine_seconds": round(engine_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--observer", default="mse")
    ap.add_argument("--calibration", type=int, default=512)
    ap.add_argument("--rounding", choices=("single", "double"), default="single",
                    help="the integer engine's requantization rounding")
    ap.add_argument("--images", type=int, default=None, help="first N test images (default: all 10,000)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for path in args.checkpoints:
        r = run(path, args.observer, args.calibration, args.rounding, args.images)
        rows.append(r)
        print(f"| {r['model']} | {100 * r['fp32']:.2f} | {100 * r['fake_quant']:.2f} | {100 * r['engine']:.2f} | "
              f"{100 * r['onnx_int8']:.2f} | {100 * (r['fp32'] - r['engine']):+.2f} | "
              f"{100 * r['engine_vs_fake_top1']:.2f} | {100 * r['onnx_vs_engine_top1']:.2f} |", flush=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
