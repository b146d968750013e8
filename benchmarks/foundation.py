"""Foundation benchmarks (issue 2): baselines on real MNIST, DDP vs one process, the zoo's evaluate table.

    python benchmarks/foundation.py baselines   # lenet300 and lenet5 to their targets
    python benchmarks/foundation.py ddp         # 2-process DDP vs 1 process on lenet300
    python benchmarks/foundation.py zoo         # karuku evaluate figures for every zoo model

Each prints a Markdown block to paste into docs/BENCHMARKS.md (and writes it to runs/bench/).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.measure import evaluate
from karuku.models import MODELS, build
from karuku.training import TrainConfig
from karuku.training.job import train_checkpoint

OUT = Path("runs/bench")
BASELINES = {
    # name: (TrainConfig, target accuracy)
    "lenet300": (TrainConfig(epochs=30, lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=64), 0.982),
    "lenet5": (TrainConfig(epochs=15, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=64), 0.992),
}


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def emit(name: str, text: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    block = f"<!-- {name}: {stamp}, {machine()} -->\n{text}\n"
    (OUT / f"{name}.md").write_text(block)
    print(block)


def baselines() -> None:
    rows = ["| model | epochs | optimiser | test accuracy | errors | minutes | target |", "|---" * 7 + "|"]
    for name, (cfg, target) in BASELINES.items():
        start = time.perf_counter()
        meta = train_checkpoint(name, cfg, OUT / f"{name}.safetensors", DataConfig(name="mnist"), verbose=True)
        minutes = (time.perf_counter() - start) / 60
        t = meta["metrics"]["test"]
        ok = "met" if t["accuracy"] >= target else "MISSED"
        rows.append(f"| {name} | {cfg.epochs} | SGD lr {cfg.lr} m {cfg.momentum} wd {cfg.weight_decay} cosine, "
                    f"batch {cfg.batch_size} | {100 * t['accuracy']:.2f} % | {t['errors']} | {minutes:.1f} | "
                    f"≥ {100 * target:.1f} % {ok} |")
    emit("baselines", "\n".join(rows))


def ddp(epochs: int = 10) -> None:
    rows = ["| processes | test accuracy | errors | wall-clock s |", "|---|---|---|---|"]
    for nproc in (1, 2):
        out = OUT / f"ddp{nproc}.safetensors"
        base = ["-m", "karuku", "train", "--model", "lenet300", "--data", "mnist", "--epochs", str(epochs),
                "--lr", "0.05", "--batch-size", "64", "--out", str(out), "--quiet"]
        cmd = [sys.executable, *base] if nproc == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *base]
        env = dict(os.environ, OMP_NUM_THREADS=str(2 // nproc))
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        wall = time.perf_counter() - start
        _, ckpt = load_model(out)
        t = ckpt.meta["metrics"]["test"]
        rows.append(f"| {nproc} | {100 * t['accuracy']:.2f} % | {t['errors']} | {wall:.1f} |")
    emit("ddp", f"lenet300, {epochs} epochs, SGD lr 0.05, global batch 64, "
                "2 threads in total (OMP_NUM_THREADS 2 for one process, 1 per process for two).\n\n"
                + "\n".join(rows))


def zoo(runs: int = 30) -> None:
    rows = ["| model | input | params | MACs | fp32 size KB | peak act. KB | torch b1 ms | torch b64 /s "
            "| ORT b1 ms | ORT b64 /s | energy µJ (weights in) | test acc. |", "|" + "---|" * 12]
    for name in MODELS:
        trained = OUT / f"{name}.safetensors"
        splits = None
        if trained.exists():
            model, _ = load_model(trained)
            splits = load_splits(DataConfig(name="mnist", val_size=0))
        else:
            shape = (1, 40) if name.startswith("mnist1d") else (1, 28, 28)
            torch.manual_seed(0)
            model = build(name, shape, 10)
        shape = splits.input_shape if splits else ((1, 40) if name.startswith("mnist1d") else (1, 28, 28))
        ev = evaluate(model, splits, shape, threads=2, runs=runs)
        t, o = ev.latency["torch"], ev.latency["onnxruntime"]
        acc = f"{100 * ev.accuracy:.2f} %" if ev.accuracy is not None else "(random weights)"
        rows.append(f"| {name} | {'×'.join(map(str, shape))} | {ev.params:,} | {ev.macs:,} | "
                    f"{ev.sizes['fp32'] / 1000:,.1f} | {ev.peak_activation_bytes / 1000:,.1f} | "
                    f"{t['b1_median_ms']:.3f} | {t['b64_per_s']:,.0f} | {o['b1_median_ms']:.3f} | "
                    f"{o['b64_per_s']:,.0f} | {ev.energy['total_uj']:.2f} ({ev.energy['weights_in']}) | {acc} |")
    emit("zoo", "Batch-1 latency is the median of "
         f"{runs} runs after warm-up, throughput from the median batch-64 run; 2 threads; ONNX Runtime on the "
         "self-contained fp32 export. Energy: 45 nm table, 1 MiB on-chip budget (docs/MEASURE.md).\n\n"
         + "\n".join(rows))


if __name__ == "__main__":
    {"baselines": baselines, "ddp": ddp, "zoo": zoo}[sys.argv[1]]()
