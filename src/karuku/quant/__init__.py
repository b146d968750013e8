"""Quantization: one verb, one config.

>>> from karuku.quant import quantize, QuantConfig
>>> qm = quantize(model, QuantConfig(bits=8, observer="mse"), calibration_inputs)
>>> im = to_integer(qm)                       # the integer-only reference engine
>>> onnx_bytes = export_qdq(im)               # int8 QDQ ONNX that ONNX Runtime fuses

Modes: `ptq` (static, calibrated), `dynamic` (int8 Linear weights, activations quantized at run time),
`qat` (quantization-aware training; needs `splits` and a `TrainConfig`). docs/QUANTIZATION.md has the
details and the integer engine's specification.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.quant import form  # noqa: F401  (registers the int8 deployed form for measurement)
from karuku.quant.config import QuantConfig
from karuku.quant.engine import IntegerModel, to_integer
from karuku.quant.model import QuantModel
from karuku.quant.normalize import fold_normalization
from karuku.quant.ptq import calibration_inputs, check_shape, first, n_inputs, prepare, quantize_static
from karuku.quant.store import QParams, load_quantized, save_quantized

__all__ = ["IntegerModel", "QParams", "QuantConfig", "QuantModel", "export_onnx", "export_qdq", "fold_normalization",
           "load_quantized", "quantize", "save_quantized", "to_integer"]


def quantize(model: nn.Module, cfg: QuantConfig | None = None, calibration_data=None, *, splits=None,
             input_shape: tuple[int, ...] | None = None, verbose: bool = False) -> QuantModel:
    """Quantize `model` (left unchanged) as `cfg` says; returns the fake-quantized QuantModel.

    `calibration_data`: inputs (tensor, TensorDataset or DataLoader); for `qat` and for mixed precision's
    auto mode (`cfg.max_drop`), `splits` (karuku.data.DataSplits) too — QAT trains on them with
    `cfg.finetune` (karuku.training.TrainConfig), auto mode scores on their validation split.
    """
    cfg = (cfg or QuantConfig()).for_target()  # "auto" becomes this CPU; weight bits fit its int8 kernels
    if not isinstance(model, nn.Module):
        raise KarukuError(f"quantize needs a torch.nn.Module, got {type(model).__name__}")
    if calibration_data is None and splits is not None:
        calibration_data = splits.calibration(cfg.calibration)
    if calibration_data is None:
        raise KarukuError("no calibration data", "pass calibration inputs (e.g. splits.calibration(512))")
    xs = calibration_inputs(calibration_data, cfg.calibration, n_inputs(model), model)
    check_shape(xs, input_shape or (tuple(splits.input_shape) if splits is not None else None))
    if cfg.mode == "dynamic":
        return prepare(model, cfg, first(xs)).eval()
    x = xs[0] if len(xs) == 1 else xs
    if cfg.mode == "qat":
        if splits is None or cfg.finetune is None:
            raise KarukuError("QAT needs training data and settings",
                              "pass splits=... and QuantConfig(finetune=TrainConfig(...)) (CLI: --finetune-epochs N)")
        from karuku.quant.qat import train_qat

        return train_qat(model, splits, cfg, x, verbose=verbose)
    if cfg.max_drop is not None:
        return _auto_mixed(model, cfg, x, splits)
    return quantize_static(model, cfg, x)


def _auto_mixed(model: nn.Module, cfg: QuantConfig, x: torch.Tensor, splits) -> QuantModel:
    from karuku.quant.mixed import auto_layer_bits
    from karuku.training.evaluate import score

    data = splits.val if splits is not None and splits.val is not None else None
    if data is None:
        raise KarukuError("mixed precision auto mode needs validation data", "pass splits with a validation split")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = quantize_static(model, cfg.model_copy(update={"bias_correction": False}), x)
    bits, _ = auto_layer_bits(probe, data, score(model, data).accuracy, cfg.max_drop, cfg.low_bits)
    return quantize_static(model, cfg.model_copy(update={"layer_bits": {**bits, **cfg.layer_bits}}), x)


def export_qdq(model: QuantModel | IntegerModel, target_isa: str | None = None,
               representation: str | None = None) -> bytes:
    """Self-contained int8 QDQ ONNX (uint8 activations, per-channel weights) that ONNX Runtime computes exactly
    on `target_isa` (default: the one the model was quantized for, else this CPU): the representation is the
    fastest exact one there (karuku.quant.representation), unless given."""
    from karuku.quant.onnx_export import export_qdq as _export

    im = model if isinstance(model, IntegerModel) else to_integer(model)
    target, rep = export_choice(model, im, target_isa, representation)
    return _export(im, representation=rep, target_isa=target)


def export_choice(model: QuantModel | IntegerModel, im: IntegerModel | None, target_isa: str | None = None,
                  representation: str | None = None) -> tuple[str, str]:
    """(target ISA, representation) an int8 export of `model` uses: the target asked for, else the one the model
    was quantized for, else this CPU's; the fastest representation exact there for the model's weights."""
    from karuku.cpu import AUTO, get_target
    from karuku.quant.representation import choose, max_abs_weight

    if target_isa is None:
        target_isa = model.cfg.target_isa if isinstance(model, QuantModel) else AUTO
    target = get_target(target_isa)
    if representation is None:
        representation = choose(max_abs_weight(im if im is not None else model), target)
    return target, representation


def export_onnx(qm: QuantModel, target_isa: str | None = None, representation: str | None = None) -> bytes:
    """The int8 ONNX of any QuantModel: QDQ for static (ptq / qat), DynamicQuantizeMatMul for dynamic."""
    if qm.cfg.mode == "dynamic":
        from karuku.quant.onnx_dynamic import export_dynamic

        target, rep = export_choice(qm, None, target_isa, representation)
        return export_dynamic(qm, representation=rep, target_isa=target)
    return export_qdq(qm, target_isa, representation)
