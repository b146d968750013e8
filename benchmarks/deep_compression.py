"""Deep Compression's Table 1 on MNIST: train → prune (masked fine-tuning) → share weights
(k-means, centroid fine-tuning) → pack to `.krk`, with per-layer tables in the paper's form.

    .venv/bin/python benchmarks/deep_compression.py --model lenet300 --preset paper
    .venv/bin/python benchmarks/deep_compression.py --model lenet5 --preset paper

Every stage writes its checkpoint under runs/dc/ and is skipped when that file exists, so a
crashed run resumes. Results go to runs/dc/<model>-<preset>/result.json and result.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from karuku.codec import ClusterConfig, PackConfig, cluster, load_packed
from karuku.codec.job import pack_checkpoint
from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model, save_checkpoint
from karuku.pruning import PruneConfig, prune
from karuku.training import TrainConfig, score, train
from karuku.training.job import train_checkpoint

DATA = DataConfig(name="mnist", augment_shift=1)
DENSE = {
    "lenet300": TrainConfig(epochs=25, lr=0.05, weight_decay=5e-4, schedule="cosine"),
    "lenet5": TrainConfig(epochs=15, lr=0.05, weight_decay=5e-4, schedule="cosine"),
}
# fraction *removed* per layer; the paper keeps lenet300 8/9/26 % and lenet5 66/12/8/19 %
PRESETS = {
    ("lenet300", "paper"): dict(prune={"fc1": 0.92, "fc2": 0.91, "fc3": 0.74}, bits={"fc*": 6}, rounds=3),
    ("lenet300", "push"): dict(prune={"fc1": 0.96, "fc2": 0.94, "fc3": 0.80}, bits={"fc*": 4}, rounds=4),
    ("lenet300", "extreme"): dict(prune={"fc1": 0.98, "fc2": 0.96, "fc3": 0.85}, bits={"fc*": 4}, rounds=2),
    ("lenet300", "extreme-3bit"): dict(prune={"fc1": 0.98, "fc2": 0.96, "fc3": 0.85}, bits={"fc*": 3}, rounds=2),
    ("lenet5", "paper"): dict(prune={"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81},
                              bits={"conv*": 8, "fc*": 5}, rounds=3),
    ("lenet5", "push"): dict(prune={"conv1": 0.50, "conv2": 0.93, "fc1": 0.975, "fc2": 0.85},
                             bits={"conv*": 5, "fc*": 4}, rounds=4),
    ("lenet5", "extreme"): dict(prune={"conv1": 0.50, "conv2": 0.95, "fc1": 0.985, "fc2": 0.88},
                                bits={"conv*": 5, "fc*": 4}, rounds=2),
    ("lenet5", "extreme-3bit"): dict(prune={"conv1": 0.50, "conv2": 0.95, "fc1": 0.985, "fc2": 0.88},
                                     bits={"conv*": 4, "fc*": 3}, rounds=2),
}


def stage(path: Path, make) -> tuple[torch.nn.Module, dict]:
    """Run `make(path)` unless `path` exists; return the model and metadata stored there."""
    if not path.exists():
        make(path)
    model, ckpt = load_model(path)
    return model, ckpt.meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["lenet300", "lenet5"], required=True)
    ap.add_argument("--preset", choices=sorted({k[1] for k in PRESETS}), default="paper")
    ap.add_argument("--prune-epochs", type=int, default=4, help="masked fine-tuning epochs per pruning round")
    ap.add_argument("--start", type=Path, help="prune from this checkpoint (e.g. the paper preset's pruned "
                    "model) instead of the dense one; or copy a pruned.safetensors into the run folder to reuse it")
    ap.add_argument("--rounds", type=int, help="pruning rounds (default: the preset's)")
    ap.add_argument("--tune-epochs", type=int, default=3, help="centroid fine-tuning epochs")
    ap.add_argument("--tune-lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/dc"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = dict(PRESETS[(args.model, args.preset)])
    p["rounds"] = args.rounds or p["rounds"]
    run = args.out / f"{args.model}-{args.preset}"
    run.mkdir(parents=True, exist_ok=True)
    splits = load_splits(DATA)
    times: dict[str, float] = {}

    t = time.perf_counter()
    dense_path = args.out / f"{args.model}_dense.safetensors"
    dense, dense_meta = stage(dense_path, lambda out: train_checkpoint(args.model, DENSE[args.model], out, DATA,
                                                                       verbose=False))
    times["dense_s"] = dense_meta["result"]["seconds"]
    spec = load_model(dense_path)[1].spec

    def do_prune(out: Path) -> None:
        model, _ = load_model(args.start or dense_path)
        tune = TrainConfig(epochs=args.prune_epochs, lr=0.01, weight_decay=5e-4)
        cfg = PruneConfig(scope="layer", overrides=p["prune"], schedule=f"iterative:{p['rounds']}", finetune=tune)
        res = prune(model, cfg, data=splits)
        save_checkpoint(out, model, spec, {"data": DATA.model_dump(mode="json"), "prune": res.rounds,
                                           "metrics": {"test": score(model, splits.test).as_dict()}})

    t = time.perf_counter()
    pruned, _ = stage(run / "pruned.safetensors", do_prune)
    times["prune_s"] = time.perf_counter() - t

    def do_share(out: Path) -> None:
        model, _ = load_model(run / "pruned.safetensors")
        cfg = ClusterConfig(bits=max(p["bits"].values()), layer_bits=p["bits"])
        sharing = cluster(model, cfg)
        before = score(model, splits.test).as_dict()
        tune = TrainConfig(epochs=args.tune_epochs, lr=args.tune_lr, weight_decay=0.0)
        train(model, splits, tune, hooks=[sharing.hook()], verbose=False)
        save_checkpoint(out, model, spec, {"data": DATA.model_dump(mode="json"), "cluster": sharing.meta(),
                                           "metrics": {"test": score(model, splits.test).as_dict(),
                                                       "test_before_tuning": before}})

    t = time.perf_counter()
    shared, shared_meta = stage(run / "shared.safetensors", do_share)
    times["share_s"] = time.perf_counter() - t

    krk = run / "model.krk"
    t = time.perf_counter()
    packed = pack_checkpoint(run / "shared.safetensors", PackConfig(), krk)
    times["pack_s"] = time.perf_counter() - t
    t = time.perf_counter()
    loaded, _ = load_packed(krk)
    times["load_s"] = time.perf_counter() - t
    x = splits.test.tensors[0]
    with torch.inference_mode():
        identical = torch.equal(shared(x), loaded(x))
    sizes = packed.sizes()
    # the paper's fixed 5-bit relative indices, for the "before Huffman" column in its own terms
    paper5 = pack_checkpoint(run / "shared.safetensors", PackConfig(index_bits=5), run / "model-index5.krk").sizes()
    err = {name: 100 * (1 - score(m, splits.test).accuracy) for name, m in
           (("dense", dense), ("pruned", pruned), ("shared", shared), ("packed", loaded))}
    result = {"model": args.model, "preset": args.preset, "test_error_pct": err, "identical_outputs": identical,
              "shared_before_tuning_error_pct": 100 * (1 - shared_meta["metrics"]["test_before_tuning"]["accuracy"]),
              "sizes": sizes.as_dict(), "sizes_index5": paper5.as_dict(), "seconds": times,
              "args": {k: str(v) for k, v in vars(args).items()},
              "preset_settings": p}
    (run / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"### {args.model} ({args.preset})", "",
          "test error: " + ", ".join(f"{k} {v:.2f} %" for k, v in err.items())
          + f" (shared before centroid tuning {result['shared_before_tuning_error_pct']:.2f} %); "
          f"packed outputs identical to the shared model: {identical}", "",
          "Index bits chosen per layer for the smallest file:", "", sizes.table(), "",
          "With the paper's fixed 5-bit relative indices:", "", paper5.table()]
    (run / "result.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
