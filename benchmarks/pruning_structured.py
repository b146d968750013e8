"""Structured pruning of resnet-s and mobilenetv2-s on MNIST to half the MACs, beside Torch-Pruning.

Torch-Pruning is never a karuku dependency: run this from a separate environment that has it,
with karuku on the path:

    python3 -m venv /tmp/tp-venv && /tmp/tp-venv/bin/pip install torch==2.13.0 torch-pruning numpy onnx \\
        onnxruntime pydantic safetensors typer rich scikit-learn pyyaml
    PYTHONPATH=src /tmp/tp-venv/bin/python benchmarks/pruning_structured.py --model resnet-s

For each model: the dense baseline (trained with karuku's loop when its checkpoint is missing),
karuku's structured pruning at 50 % of the MACs, Torch-Pruning (MagnitudePruner, L2 group
importance, uniform ratio found by bisection to the same MACs), the same fine-tuning for both,
then ONNX Runtime fp32 batch-64 throughput of the three models timed in interleaved rounds in
one process (medians). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from pruning_speed import side_by_side  # a sibling script (benchmarks/ is on the path when run)

from karuku.api import fit
from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.measure import totals
from karuku.pruning import PruneConfig, prune, save_pruned
from karuku.training import TrainConfig, score, train

SETTINGS = {  # small training budgets: 2 shared cores; see docs/bench/pruning.md
    "resnet-s": {"kwargs": {}, "data": DataConfig(name="mnist", val_size=1000, train_limit=16000),
                 "train": TrainConfig(epochs=2, batch_size=64, lr=0.05, weight_decay=5e-4, threads=1),
                 "finetune": TrainConfig(epochs=1, batch_size=64, lr=0.01, weight_decay=1e-4, threads=1)},
    "mobilenetv2-s": {"kwargs": {}, "data": DataConfig(name="mnist", val_size=1000, train_limit=16000),
                      "train": TrainConfig(epochs=2, batch_size=64, lr=0.05, weight_decay=1e-4, threads=1),
                      "finetune": TrainConfig(epochs=1, batch_size=64, lr=0.01, weight_decay=1e-4, threads=1)},
}
ROUND_TO = 16  # default: both tools keep multiples of 16 channels (ONNX Runtime's blocked conv kernels want it)


def tp_prune(model: torch.nn.Module, shape, goal_macs: int, round_to: int = ROUND_TO) -> tuple[torch.nn.Module, float]:
    """Torch-Pruning at the uniform ratio whose MACs come closest to `goal_macs` from below."""
    import torch_pruning as tp

    example = torch.zeros(1, *shape)

    def attempt(ratio: float) -> torch.nn.Module:
        net = copy.deepcopy(model)
        last_net = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        pruner = tp.pruner.MagnitudePruner(net, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                           pruning_ratio=ratio, ignored_layers=[last_net], round_to=round_to)
        pruner.step()
        return net

    lo, hi = 0.0, 0.9
    for _ in range(14):
        mid = (lo + hi) / 2
        if totals(attempt(mid), shape).macs > goal_macs:
            lo = mid
        else:
            hi = mid
    return attempt(hi), hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SETTINGS), required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/pruning"))
    ap.add_argument("--round-to", type=int, default=ROUND_TO, help="channel multiple for both tools")
    args = ap.parse_args()
    s = SETTINGS[args.model]
    base = args.out / f"{args.model}.safetensors"
    if not base.exists():
        fit(args.model, s["data"], s["train"], base, model_kwargs=s["kwargs"], verbose=False)
    dense, ckpt = load_model(base)
    splits = load_splits(DataConfig(**ckpt.meta["data"]))
    shape = tuple(ckpt.spec.input_shape)
    ours = copy.deepcopy(dense)
    cfg = PruneConfig(structured=True, sparsity=0.5, target="macs", method="l1", round_to=args.round_to)
    result = prune(ours, cfg, input_shape=shape)
    ours_macs = totals(ours, shape).macs
    theirs, ratio = tp_prune(dense, shape, ours_macs, args.round_to)
    before = {"ours": score(ours, splits.test).accuracy, "tp": score(theirs, splits.test).accuracy}
    timing = {}
    for name, net in (("ours", ours), ("tp", theirs)):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        train(net, splits, s["finetune"], verbose=False)
        timing[name] = round(time.perf_counter() - t0, 1)
    out = args.out / f"{args.model}-structured50-r{args.round_to}.safetensors"
    save_pruned(out, ours, ckpt.spec, transforms=result.transforms, base=ckpt)
    rebuilt, _ = load_model(out)
    x = splits.test.tensors[0][:64]
    with torch.no_grad():
        rebuild_diff = float((rebuilt(x) - ours.eval()(x)).abs().max())
    models = {"dense": dense.eval(), "ours": ours.eval(), "tp": theirs.eval()}
    thr = side_by_side(models, shape)
    fig = {k: {"test_acc_pct": round(100 * score(m, splits.test).accuracy, 2), "params": totals(m, shape).params,
               "macs": totals(m, shape).macs, "ort_b64_per_s": round(thr[k])} for k, m in models.items()}
    for k in ("ours", "tp"):
        fig[k]["acc_before_finetune_pct"] = round(100 * before[k], 2)
        fig[k]["speedup"] = round(thr[k] / thr["dense"], 2)
        fig[k]["acc_drop_pt"] = round(fig["dense"]["test_acc_pct"] - fig[k]["test_acc_pct"], 2)
        fig[k]["finetune_seconds"] = timing[k]
    print(json.dumps({"model": args.model, "kwargs": s["kwargs"], "data": ckpt.meta["data"],
                      "baseline_training": ckpt.meta.get("training"), "finetune": s["finetune"].model_dump(),
                      "prune_config": cfg.model_dump(), "round_to": args.round_to, "tp_ratio": round(ratio, 4),
                      "rebuild_max_diff": rebuild_diff,
                      "figures": fig}))


if __name__ == "__main__":
    main()
