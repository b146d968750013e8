"""Quantization-aware training on the foundation's loop: `prepare_qat`, `QATHook`, `train_qat`.

Weights are fake-quantized from the first step; activation ranges follow a moving average and are
quantized from iteration `qat_delay`; BatchNorm is folded on the fly (batch statistics, then its
running statistics from `qat_freeze_bn`); ranges stop moving at `qat_freeze_observers`. The hook holds
no state of its own: everything follows from the iteration, so a resumed or multi-process run
(torchrun; DDP broadcasts the range buffers from rank 0) behaves like a single uninterrupted one.
"""

from __future__ import annotations

from torch import nn

from karuku.quant.config import QuantConfig
from karuku.quant.model import QuantModel
from karuku.quant.ptq import calibrate, calibration_inputs, first, n_inputs, prepare
from karuku.training.hooks import Hook


def schedule(cfg: QuantConfig, total: int) -> tuple[int, int, int]:
    """(activation-quantization start, BN freeze, range freeze) iterations."""
    freeze_bn = cfg.qat_freeze_bn if cfg.qat_freeze_bn is not None else (3 * total) // 4
    freeze_obs = cfg.qat_freeze_observers if cfg.qat_freeze_observers is not None else (7 * total) // 8
    return min(cfg.qat_delay, total), freeze_bn, freeze_obs


class QATHook(Hook):
    """Switches activation quantization on, and BN statistics and ranges off, at their iterations."""

    def __init__(self, cfg: QuantConfig):
        self.cfg = cfg

    def _apply(self, state) -> None:
        qm: QuantModel = state.model
        start, freeze_bn, freeze_obs = schedule(self.cfg, state.total_iterations)
        it = state.iteration
        for a in qm.acts.values():
            a.track = it < freeze_obs
            if it >= start and bool(a.seen):
                a.enabled.fill_(True)
        for layer in qm.layers.values():
            layer.bn_frozen = it >= freeze_bn

    def on_start(self, state) -> None:
        self._apply(state)

    def after_step(self, state) -> None:
        self._apply(state)


def prepare_qat(model: nn.Module, cfg: QuantConfig, calibration) -> QuantModel:
    """The QAT model: BN kept for on-the-fly folding, ranges initialised from calibration data (a tensor, or a
    tuple of the model's inputs)."""
    qm = prepare(model, cfg, first(calibration if isinstance(calibration, tuple) else (calibration,)), keep_bn=True)
    calibrate(qm, calibration, cfg.model_copy(update={"bias_correction": False}))
    if cfg.qat_delay > 0:
        for a in qm.acts.values():
            a.enabled.fill_(False)  # weights only until the delay; ranges keep their calibrated start
    return qm


def finish_qat(qm: QuantModel) -> QuantModel:
    """Fold the carried BatchNorms for good and enable every range: the model PTQ would have produced."""
    for layer in qm.layers.values():
        layer.fold_bn_()
        layer.bn_frozen = False
    for a in qm.acts.values():
        a.track = False
        a.enabled.fill_(bool(a.seen))
    return qm.eval()


def train_qat(model: nn.Module, splits, cfg: QuantConfig, calibration=None,
              state_path=None, verbose: bool = False) -> QuantModel:
    """QAT on `splits` with the foundation's loop and `cfg.finetune`; returns the (BN-folded, eval-mode) QuantModel.
    `calibration`: a tensor, or a tuple of the model's inputs (default: the first training inputs)."""
    from karuku.training.loop import train

    calib = calibration if calibration is not None else calibration_inputs(
        splits.calibration(cfg.calibration), cfg.calibration, n_inputs(model), model)
    calib = calib[0] if isinstance(calib, tuple) and len(calib) == 1 else calib
    qm = prepare_qat(model, cfg, calib)
    train(qm, splits, cfg.finetune, hooks=[QATHook(cfg)], state_path=state_path, verbose=verbose, label="QAT")
    return finish_qat(qm)
