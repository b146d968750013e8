"""Structured pruning of resnet-s and mobilenetv2-s on MNIST to half the MACs, beside Torch-Pruning.

Torch-Pruning is never a karuku dependency: run this from a separate environment that has it,
with karuku on the path:

    python3 -m venv /tmp/tp-venv && /tmp/tp-venv/bin/pip install torch==2.13.0 torch-pruning numpy onnx \\
        onnxruntime pydantic safetensors typer rich scikit-learn pyyaml
    PYTHONPATH=src /tmp/tp-venv/bin/python benchmarks/pruning_structured.py --model resnet-s

For each model: the dense baseline (trained with karuku's loop when its checkpoint is missing),
karuku's structured pruning at 50 % of the MACs (budget allocation in blocks of 16 channels),
Torch-Pruning (MagnitudePruner, L2 group importance, uniform or global ratio — whichever comes
closer — found by bisection to karuku's MACs), the same fine-tuning for both and for the dense
model (the fair reference), then ONNX Runtime fp32 batch-64 throughput (1 thread) of the three
models timed in interleaved rounds in one process (medians). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from pruning_speed import side_by_side  # a sibling script (benchmarks/ is on the path when run)

from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.measure import totals
from karuku.pruning import PruneConfig, prune, save_pruned
from karuku.training import TrainConfig, score, train
from karuku.training.job import train_checkpoint

SETTINGS = {  # full MNIST training set (59,000 after the 1,000 held out); 1 thread on 2 shared cores
    "resnet-s": {"kwargs": {}, "data": DataConfig(name="mnist", val_size=1000),
                 "train": TrainConfig(epochs=3, batch_size=64, lr=0.05, weight_decay=5e-4),
                 "finetune": TrainConfig(epochs=1, batch_size=64, lr=0.01, weight_decay=1e-4)},
    "mobilenetv2-s": {"kwargs": {}, "data": DataConfig(name="mnist", val_size=1000),
                      "train": TrainConfig(epochs=3, batch_size=64, lr=0.05, weight_decay=1e-4),
                      "finetune": TrainConfig(epochs=1, batch_size=64, lr=0.01, weight_decay=1e-4)},
}
ROUND_TO = 16  # default: both tools keep multiples of 16 channels (ONNX Runtime's blocked conv kernels want it)


def tp_prune(model: torch.nn.Module, shape, goal_macs: int,
             round_to: int = ROUND_TO) -> tuple[torch.nn.Module, float, str]:
    """Torch-Pruning at the ratio whose MACs come closest to `goal_macs` from below.

    Both of its allocations are tried (one uniform ratio, and global pruning); the closer wins.
    """
    import torch_pruning as tp

    example = torch.zeros(1, *shape)

    def attempt(ratio: float, global_pruning: bool) -> torch.nn.Module:
        net = copy.deepcopy(model)
        last_net = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        pruner = tp.pruner.MagnitudePruner(net, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                           pruning_ratio=ratio, ignored_layers=[last_net], round_to=round_to,
                                           global_pruning=global_pruning)
        pruner.step()
        return net

    found = []
    for global_pruning in (False, True):
        lo, hi = 0.0, 0.9
        for _ in range(14):
            mid = (lo + hi) / 2
            if totals(attempt(mid, global_pruning), shape).macs > goal_macs:
                lo = mid
            else:
                hi = mid
        net = attempt(hi, global_pruning)
        found.append((totals(net, shape).macs, net, hi, "global" if global_pruning else "uniform"))
    macs, net, ratio, mode = max(found, key=lambda f: f[0])
    return net, ratio, mode


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    torch.set_num_threads(1)  # training and fine-tuning with 1 thread, as the figures were made
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SETTINGS), required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/pruning2"))
    ap.add_argument("--round-to", type=int, default=ROUND_TO, help="channel multiple for both tools")
    ap.add_argument("--method", default="group", help="karuku's structured importance (l1, l2, bn, group)")
    ap.add_argument("--allocation", default="budget", help="karuku's allocation (uniform or budget)")
    ap.add_argument("--finetune-epochs", type=int, default=None, help="override the fine-tuning epochs")
    ap.add_argument("--smoke", action="store_true", help="a few fine-tuning steps and short timing (checks only)")
    args = ap.parse_args()
    s = SETTINGS[args.model]
    ft = s["finetune"] if args.finetune_epochs is None else s["finetune"].model_copy(
        update={"epochs": args.finetune_epochs})
    if args.smoke:
        ft = ft.model_copy(update={"iterations": 3})
    base = args.out / f"{args.model}.safetensors"
    if not base.exists():
        log(f"training the baseline {base}")
        train_checkpoint(args.model, s["train"], base, s["data"], model_kwargs=s["kwargs"], verbose=False)
    dense, ckpt = load_model(base)
    splits = load_splits(DataConfig(**{**ckpt.meta["data"], **({"test_limit": 500} if args.smoke else {})}))
    shape = tuple(ckpt.spec.input_shape)
    ours = copy.deepcopy(dense)
    cfg = PruneConfig(structured=True, sparsity=0.5, target="macs", method=args.method, round_to=args.round_to,
                      allocation=args.allocation)
    result = prune(ours, cfg, input_shape=shape)
    ours_macs = totals(ours, shape).macs
    theirs, ratio, tp_mode = tp_prune(dense, shape, ours_macs, args.round_to)
    log(f"pruned: ours {ours_macs} MACs, Torch-Pruning {totals(theirs, shape).macs} ({tp_mode}, ratio {ratio:.4f})")
    before = {"ours": score(ours, splits.test).accuracy, "tp": score(theirs, splits.test).accuracy}
    # throughput depends on the architecture only: timed before fine-tuning, so a run cut short keeps it
    models = {"dense": dense.eval(), "ours": ours.eval(), "tp": theirs.eval()}
    thr = side_by_side(models, shape, threads=1, **({"rounds": 1, "runs": 2} if args.smoke else {}))
    log("throughput vs dense: " + ", ".join(f"{k} {thr[k] / thr['dense']:.2f}x" for k in thr))
    fig = {k: {"params": totals(m, shape).params, "macs": totals(m, shape).macs, "ort_b64_per_s": round(thr[k])}
           for k, m in models.items()}
    fig["dense"]["test_acc_pct"] = round(100 * score(dense, splits.test).accuracy, 2)
    for k in ("ours", "tp"):
        fig[k]["macs_removed_pct"] = round(100 * (1 - fig[k]["macs"] / fig["dense"]["macs"]), 2)
        fig[k]["acc_before_finetune_pct"] = round(100 * before[k], 2)
        fig[k]["speedup"] = round(thr[k] / thr["dense"], 2)
        fig[k]["widths"] = {n: m.out_channels for n, m in models[k].named_modules()
                            if isinstance(m, torch.nn.Conv2d) and m.groups == 1}
    partial = args.out / f"{args.model}-structured50-r{args.round_to}.partial.json"
    dense_ft = copy.deepcopy(dense)
    for name, net in (("ours", ours), ("tp", theirs), ("dense_ft", dense_ft)):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        train(net, splits, ft, verbose=False)
        fig.setdefault(name, {})["finetune_seconds"] = round(time.perf_counter() - t0, 1)
        fig[name]["test_acc_pct"] = round(100 * score(net.eval(), splits.test).accuracy, 2)
        log(f"fine-tuned {name} in {fig[name]['finetune_seconds']} s: {fig[name]['test_acc_pct']} %")
        partial.write_text(json.dumps(fig))
    for k in ("ours", "tp"):
        fig[k]["acc_drop_pt"] = round(fig["dense"]["test_acc_pct"] - fig[k]["test_acc_pct"], 2)
        fig[k]["acc_drop_vs_dense_ft_pt"] = round(fig["dense_ft"]["test_acc_pct"] - fig[k]["test_acc_pct"], 2)
    out = args.out / f"{args.model}-structured50-r{args.round_to}.safetensors"
    save_pruned(out, ours, ckpt.spec, transforms=result.transforms, base=ckpt)
    rebuilt, _ = load_model(out)
    x = splits.test.tensors[0][:64]
    with torch.no_grad():
        rebuild_diff = float((rebuilt(x) - ours.eval()(x)).abs().max())
    print(json.dumps({"model": args.model, "kwargs": s["kwargs"], "data": ckpt.meta["data"],
                      "baseline_training": ckpt.meta.get("training"), "finetune": ft.model_dump(),
                      "prune_config": cfg.model_dump(), "round_to": args.round_to, "tp_ratio": round(ratio, 4),
                      "tp_allocation": tp_mode, "ort_threads": 1, "rebuild_max_diff": rebuild_diff,
                      "figures": fig}))


if __name__ == "__main__":
    main()
