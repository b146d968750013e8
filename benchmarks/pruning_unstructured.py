"""Unstructured magnitude pruning of LeNet-300-100 and LeNet-5 (Caffe) on MNIST to 92 % sparsity.

Trains the dense baseline with karuku's own loop when its checkpoint is missing, prunes with
`karuku.prune` (global magnitude, masked fine-tuning), and prints one JSON line of figures.

    .venv/bin/python benchmarks/pruning_unstructured.py --model lenet300
    .venv/bin/python benchmarks/pruning_unstructured.py --model lenet5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.pruning import PruneConfig, prune, save_pruned
from karuku.training import TrainConfig, score
from karuku.training.job import train_checkpoint

SETTINGS = {
    "lenet300": {
        "data": DataConfig(name="mnist", augment_shift=2),
        "train": TrainConfig(epochs=30, batch_size=128, lr=0.1, weight_decay=1e-4),
        "prune": PruneConfig(sparsity=0.92, scope="global", schedule="iterative:3"),
        "finetune": TrainConfig(epochs=4, batch_size=128, lr=0.02, weight_decay=1e-4),
    },
    "lenet5": {
        "data": DataConfig(name="mnist", augment_shift=1),
        "train": TrainConfig(epochs=5, batch_size=128, lr=0.05, weight_decay=5e-4),
        "prune": PruneConfig(sparsity=0.92, scope="global"),
        "finetune": TrainConfig(epochs=2, batch_size=128, lr=0.01, weight_decay=5e-4),
    },
}


def main() -> None:
    torch.set_num_threads(1)  # training and fine-tuning with 1 thread, as the figures were made
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SETTINGS), required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/pruning"))
    ap.add_argument("--finetune-epochs", type=int, default=None, help="override the fine-tuning length")
    args = ap.parse_args()
    s = SETTINGS[args.model]
    base = args.out / f"{args.model}.safetensors"
    if not base.exists():
        train_checkpoint(args.model, s["train"], base, s["data"], verbose=False)
    model, ckpt = load_model(base)
    splits = load_splits(DataConfig(**ckpt.meta["data"]))
    dense = score(model, splits.test)
    ft = s["finetune"] if args.finetune_epochs is None else s["finetune"].model_copy(
        update={"epochs": args.finetune_epochs})
    torch.manual_seed(0)
    start = time.perf_counter()
    result = prune(model, s["prune"].model_copy(update={"finetune": ft}), splits)
    seconds = time.perf_counter() - start
    pruned = score(model, splits.test)
    out = args.out / f"{args.model}-pruned92.safetensors"
    save_pruned(out, model, ckpt.spec, result.mask, meta={"pruning": {"config": s["prune"].model_dump()},
                                                         "metrics": {"test": pruned.as_dict()}}, base=ckpt)
    print(json.dumps({
        "model": args.model, "baseline": str(base), "dense_test_error_pct": round(100 * (1 - dense.accuracy), 2),
        "sparsity": round(result.mask.sparsity, 4), "layer_kept_pct": {
            n: round(100 * (1 - v), 1) for n, v in result.mask.layer_sparsity().items()},
        "pruned_test_error_pct": round(100 * (1 - pruned.accuracy), 2), "errors": pruned.errors,
        "rounds": result.rounds, "prune_config": s["prune"].model_dump(), "finetune": ft.model_dump(),
        "baseline_training": ckpt.meta.get("training"), "prune_seconds": round(seconds, 1), "out": str(out)}))


if __name__ == "__main__":
    main()
