"""Self-distillation as recovery: a 90 %-pruned and a 4-bit-weight LeNet-300-100, fine-tuned plainly vs distilled.

    .venv/bin/python benchmarks/distill_recovery.py --dense-epochs 10 --epochs 3 --out-dir runs/distill_recovery

The dense LeNet-300-100 (trained once, kept in --out-dir) is compressed two ways:
- one-shot global magnitude pruning to 90 % sparsity (karuku.pruning), then fine-tuned with the
  pruning package's MaskedTraining hook: plain (cross-entropy) vs `recover` (the dense model teaches);
- 4-bit per-channel weights, 8-bit activations (karuku.quant QAT fake quantization), fine-tuned with
  the quant package's QATHook: plain vs `recover`.
Both arms of a pair start from the same compressed weights and run the same epochs and settings.
Results go to <out-dir>/recovery.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from karuku.data import DataConfig, load_splits
from karuku.distillation import DistillConfig, recover
from karuku.io.atomic import write_text
from karuku.io.checkpoint import load_model
from karuku.training import TrainConfig, score, train
from karuku.training.job import train_checkpoint


def _entry(model, splits, seconds=None) -> dict:
    s = score(model, splits.test)
    return {"test_accuracy": round(s.accuracy, 4), "test_errors": s.errors,
            **({"minutes": round(seconds / 60, 2)} if seconds is not None else {})}


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pruning(dense, splits, ft: TrainConfig, kd: DistillConfig, sparsity: float) -> dict:
    from karuku.pruning import MaskedTraining, PruneConfig, prune

    pruned = copy.deepcopy(dense)
    mask = prune(pruned, PruneConfig(sparsity=sparsity, scope="global")).mask
    out = {"sparsity": round(mask.sparsity, 4), "after_pruning": _entry(pruned, splits)}
    plain, distilled = copy.deepcopy(pruned), copy.deepcopy(pruned)
    t = _timed(lambda: train(plain, splits, ft, hooks=[MaskedTraining(mask)]))
    out["plain"] = _entry(plain, splits, t)
    t = _timed(lambda: recover(dense, distilled, splits, kd, hooks=[MaskedTraining(mask)]))
    out["distilled"] = _entry(distilled, splits, t)
    for name, m in (("plain", plain), ("distilled", distilled)):
        # the masks must have held: every pruned weight is still exactly zero
        out[name]["zeros_kept"] = all(bool((p[mask[n] == 0] == 0).all()) for n, p in m.named_parameters()
                                      if n in mask)
    return out


def quantization(dense, splits, ft: TrainConfig, kd: DistillConfig, bits: int) -> dict:
    from karuku.quant import QuantConfig
    from karuku.quant.qat import QATHook, finish_qat, prepare_qat

    cfg = QuantConfig(mode="qat", bits=bits, act_bits=8)
    calib = splits.calibration(cfg.calibration)
    start = prepare_qat(dense, cfg, calib)
    out = {"weight_bits": bits, "act_bits": 8,
           "before_finetuning": _entry(finish_qat(copy.deepcopy(start)), splits)}
    plain, distilled = copy.deepcopy(start), copy.deepcopy(start)
    t = _timed(lambda: train(plain, splits, ft, hooks=[QATHook(cfg)]))
    out["plain"] = _entry(finish_qat(plain), splits, t)
    t = _timed(lambda: recover(dense, distilled, splits, kd, hooks=[QATHook(cfg)]))
    out["distilled"] = _entry(finish_qat(distilled), splits, t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dense-epochs", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs of every arm")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate (cosine)")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=Path("runs/distill_recovery"))
    p.add_argument("--parts", default="pruning,quant")
    p.add_argument("--data", default="mnist", help="dataset (digits for a quick smoke run)")
    p.add_argument("--val-size", type=int, default=5000)
    args = p.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    data = DataConfig(name=args.data, val_size=args.val_size)
    dense_path = args.out_dir / f"lenet300_{args.data}_e{args.dense_epochs}.safetensors"
    if not dense_path.exists():
        train_checkpoint("lenet300", TrainConfig(epochs=args.dense_epochs, lr=0.05, batch_size=128), dense_path, data)
    dense, _ = load_model(dense_path)
    splits = load_splits(data)
    ft = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=128)
    kd = DistillConfig(temperature=args.temperature, alpha=args.alpha, train=ft)
    results = {"dense": _entry(dense, splits), "settings": vars(args) | {"out_dir": str(args.out_dir)}}
    if "pruning" in args.parts:
        results["pruning"] = pruning(dense, splits, ft, kd, args.sparsity)
    if "quant" in args.parts:
        results["quant"] = quantization(dense, splits, ft, kd, args.bits)
    write_text(args.out_dir / "recovery.json", json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
