"""Lottery-ticket benchmarks (issue 7): lenet300 on MNIST (paper set-up, shortened) and the MNIST-1D MLP.

    OMP_NUM_THREADS=1 python benchmarks/lottery.py lenet300 [ITERATIONS]
    OMP_NUM_THREADS=1 python benchmarks/lottery.py mnist1d

Resumable: re-running continues where a crash left off. Prints a Markdown block with the checks.
"""

from __future__ import annotations

import sys
import time

import torch

from karuku.data import DataConfig
from karuku.lottery import LotteryConfig, aggregate, results, run, write_report
from karuku.training import TrainConfig

OUT = "runs/bench/lottery"


def _row(table, variant, level):
    return next(r for r in table if r["variant"] == variant and r["level"] == level)


def _closest(table, variant, frac):
    rows = [r for r in table if r["variant"] == variant]
    return min(rows, key=lambda r: abs(r["weights_remaining"] - frac))


def lenet300(iterations: int = 10_000) -> None:
    cfg = LotteryConfig(model="lenet300", data=DataConfig(name="mnist", val_size=5000), levels=15, rate=0.2,
                        output_rate=0.1, train=TrainConfig(optimizer="adam", lr=1.2e-3, batch_size=60,
                                                           iterations=iterations, eval_every=100,
                                                           schedule="constant", momentum=0.0))
    start = time.perf_counter()
    folder = run(cfg, OUT, log=print)
    write_report(folder)
    table = aggregate(results(folder))
    dense = _row(table, "dense", 0)
    t36 = _closest(table, "ticket", 0.036)
    r7 = _closest(table, "reinit", 0.07)
    t7 = _closest(table, "ticket", 0.07)
    t21, d = _closest(table, "ticket", 0.21), dense
    minutes = (time.perf_counter() - start) / 60
    print(f"""
lenet300, Adam 1.2e-3, batch 60, {iterations} iterations per run (paper: 50,000), validation every 100 on 5,000
held-out images, fc 20 % / output 10 % per level, rewind to init, 1 trial; folder {folder}; {minutes:.1f} min this
invocation (resumed units not counted).

| check | figure | target |
|---|---|---|
| dense | {100 * d['test_acc']:.2f} % test, early stop {d['early_stop_iteration']:.0f} | — |
| ticket at {100 * t36['weights_remaining']:.1f} % of weights | {100 * t36['test_acc']:.2f} % test | ≥ dense: {'met' if t36['test_acc'] >= d['test_acc'] else 'MISSED'} |
| reinit at {100 * r7['weights_remaining']:.1f} % | {100 * r7['test_acc']:.2f} % vs ticket {100 * t7['test_acc']:.2f} % | ≥ 1 pt worse: {'met' if t7['test_acc'] - r7['test_acc'] >= 0.01 else 'MISSED'} |
| ticket early stop at {100 * t21['weights_remaining']:.1f} % | {t21['early_stop_iteration']:.0f} vs dense {d['early_stop_iteration']:.0f} ({100 * (1 - t21['early_stop_iteration'] / d['early_stop_iteration']):.0f} % sooner) | earlier (paper: 38 % sooner) |
""")  # noqa: E501


def mnist1d() -> None:
    cfg = LotteryConfig(model="mnist1d-mlp", data=DataConfig(name="mnist1d", val_size=500), levels=11, rate=0.2,
                        output_rate=0.1, train=TrainConfig(optimizer="adam", lr=1e-3, batch_size=100,
                                                           iterations=3000, eval_every=100, schedule="constant",
                                                           momentum=0.0))
    start = time.perf_counter()
    folder = run(cfg, OUT, log=print)
    write_report(folder)
    table = aggregate(results(folder))
    t = _closest(table, "ticket", 0.09)
    r = _closest(table, "random-mask", 0.09)
    d = _row(table, "dense", 0)
    print(f"""
mnist1d-mlp (40-500-500-10), Adam 1e-3, batch 100, 3,000 iterations, 500 validation examples held out of 4,000;
folder {folder}; {(time.perf_counter() - start) / 60:.1f} min.

| variant | weights remaining | test accuracy |
|---|---|---|
| dense | 100 % | {100 * d['test_acc']:.2f} % |
| ticket | {100 * t['weights_remaining']:.1f} % | {100 * t['test_acc']:.2f} % |
| random mask | {100 * r['weights_remaining']:.1f} % | {100 * r['test_acc']:.2f} % |

ticket beats the random mask at ~91 % sparsity: {'met' if t['test_acc'] > r['test_acc'] else 'MISSED'}
""")


if __name__ == "__main__":
    torch.set_num_threads(1)  # training ran with 1 thread (karuku.threads: results depend a little on threads)
    if sys.argv[1] == "lenet300":
        lenet300(int(sys.argv[2]) if len(sys.argv) > 2 else 3_000)
    else:
        mnist1d()
