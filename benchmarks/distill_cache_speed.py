"""What caching the teacher's logits saves: distillation steps with a live teacher vs cached logits.

    .venv/bin/python benchmarks/distill_cache_speed.py --iterations 150 --repeats 3

mlp-teacher (2.4M parameters) → mlp-student (1.3M) on MNIST without augmentation, batch 128,
one thread. The two arms alternate (live, cached, live, ...) so that load from other jobs on a
shared machine falls on both; medians are reported. The cache is built once per run (one
teacher pass over the training set); its cost is reported separately and amortised per epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from karuku.data import DataConfig, load_splits
from karuku.distillation import DistillConfig, distill
from karuku.distillation.cache import LogitCache
from karuku.io.atomic import write_text
from karuku.models import build
from karuku.training import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/distill_cache_speed.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    splits = load_splits(DataConfig(name="mnist", val_size=0))  # no validation passes inside the timing
    shape, classes = splits.input_shape, splits.num_classes
    teacher = build("mlp-teacher", shape, classes)
    train_cfg = TrainConfig(iterations=args.iterations, batch_size=128, lr=0.01)
    per_step: dict[str, list[float]] = {"live": [], "cached": []}
    for _ in range(args.repeats):
        for arm in ("live", "cached"):
            torch.manual_seed(0)
            student = build("mlp-student", shape, classes)
            cfg = DistillConfig(temperature=20, alpha=0.9, cache_teacher=arm == "cached", train=train_cfg)
            result = distill(teacher, student, splits, cfg, verbose=False)  # result.seconds excludes on_start
            per_step[arm].append(result.seconds / result.iterations)
    start = time.perf_counter()
    LogitCache(teacher, splits.train.tensors[0])
    build_s = time.perf_counter() - start
    live, cached = statistics.median(per_step["live"]), statistics.median(per_step["cached"])
    steps_per_epoch = -(-len(splits.train) // train_cfg.batch_size)
    summary = {
        "live_ms_per_step": round(1000 * live, 1), "cached_ms_per_step": round(1000 * cached, 1),
        "step_speedup": round(live / cached, 2), "cache_build_s": round(build_s, 1),
        "epoch_speedup_over_1_epoch": round(live * steps_per_epoch / (cached * steps_per_epoch + build_s), 2),
        "epoch_speedup_over_20_epochs": round(20 * live * steps_per_epoch
                                              / (20 * cached * steps_per_epoch + build_s), 2),
        "raw_s_per_step": per_step,
        "settings": vars(args) | {"out": str(args.out)},
    }
    write_text(args.out, json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
