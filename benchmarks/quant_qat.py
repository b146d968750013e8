"""Low-bit weights on MNIST: PTQ against QAT (on karuku's training loop) from a trained float checkpoint.

    .venv/bin/python benchmarks/quant_qat.py CKPT --bits 4 --epochs 2 --lr 0.01 --out qat.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.quant import QuantConfig, quantize, to_integer
from karuku.training import TrainConfig, score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, ckpt = load_model(args.checkpoint)
    splits = load_splits(DataConfig(name="mnist"))
    x, y = splits.test.tensors
    cfg = QuantConfig(bits=args.bits, weight_observer="mse", qat_delay=300)
    ptq = quantize(model, cfg, splits.calibration(512))
    t = time.perf_counter()
    qat_cfg = cfg.model_copy(update={"mode": "qat", "finetune": TrainConfig(epochs=args.epochs, lr=args.lr,
                                                                          batch_size=64)})
    qat = quantize(model, qat_cfg, splits=splits)
    seconds = time.perf_counter() - t
    engine = float((to_integer(qat).run(x, fast=True).argmax(1) == y).float().mean())
    r = {"model": ckpt.spec.name, "bits": args.bits, "epochs": args.epochs, "lr": args.lr,
         "fp32": score(model, splits.test).accuracy, "ptq": score(ptq, splits.test).accuracy,
         "qat_fake_quant": score(qat, splits.test).accuracy, "qat_engine": engine, "qat_seconds": round(seconds)}
    print(json.dumps(r), flush=True)
    args.out.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
