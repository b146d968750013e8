"""Lottery tickets: iterative magnitude pruning with rewinding, its controls, resumable experiments.

>>> from karuku.lottery import LotteryConfig, run, write_report
>>> folder = run(LotteryConfig(model="lenet300", levels=5), "runs/lottery")
>>> write_report(folder)
"""

from karuku.lottery.config import LotteryConfig, paper_training
from karuku.lottery.experiment import experiment_dir, results, run
from karuku.lottery.report import aggregate, write_report

__all__ = ["LotteryConfig", "aggregate", "experiment_dir", "paper_training", "results", "run", "write_report"]
