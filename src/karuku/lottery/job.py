"""`lottery_experiment`: the whole job behind `karuku lottery` — run (or resume) an experiment, then report it."""

from __future__ import annotations

from pathlib import Path

from karuku.lottery.config import LotteryConfig
from karuku.lottery.experiment import Log, run
from karuku.lottery.report import write_report


def lottery_experiment(cfg: LotteryConfig, out: str | Path, log: Log = print) -> Path:
    """Run or resume the experiment under `out` (a folder named by the settings' digest); write its report."""
    folder = run(cfg, out, log=log)
    write_report(folder)
    return folder
