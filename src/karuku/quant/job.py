"""`quantize_checkpoint`: the whole job behind `karuku quantize` — checkpoint in, quantized checkpoint out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from karuku.data.batches import first_inputs
from karuku.data.checkpoint import for_checkpoint
from karuku.data.config import DataConfig
from karuku.io.atomic import ensure_writable_dir, write_bytes
from karuku.io.checkpoint import load_checkpoint
from karuku.measure.inputs import signature
from karuku.quant import QuantConfig, export_onnx, quantize, to_integer
from karuku.quant.store import save_quantized
from karuku.training import distributed
from karuku.training.config import TrainConfig
from karuku.training.evaluate import score


def quantize_checkpoint(path: str | os.PathLike, cfg: QuantConfig, out: str | os.PathLike,
                        data: DataConfig | dict[str, Any] | None = None, *,
                        engine_out: str | os.PathLike | None = None, onnx_out: str | os.PathLike | None = None,
                        verbose: bool = True) -> dict[str, Any] | None:
    """Quantize the float checkpoint `path` on its dataset (or `data`); write `out` (and the engine / ONNX files).

    `qat` trains with `cfg.finetune` (default: `TrainConfig()`). Returns the quantized checkpoint's metadata,
    with fp32 and quantized test accuracy under `metrics` (None on non-zero ranks of a multi-process QAT run).
    """
    out = ensure_writable_dir(out)
    for extra in (engine_out, onnx_out):
        if extra:
            ensure_writable_dir(extra)
    if cfg.mode == "qat" and cfg.finetune is None:
        cfg = cfg.model_copy(update={"finetune": TrainConfig()})
    ckpt = load_checkpoint(path)
    model = ckpt.build_model().eval()
    splits = for_checkpoint(ckpt, data)
    qm = quantize(model, cfg, splits.calibration(cfg.calibration), splits=splits,
                  input_shape=tuple(ckpt.spec.input_shape), verbose=verbose)
    if not distributed.finish():  # QAT under torchrun: rank 0 alone writes
        return None
    fp32, q = score(model, splits.test), score(qm, splits.test)
    meta = {"data": splits.config.model_dump(mode="json"), "source": str(path),
            "metrics": {"test": q.as_dict(), "fp32_test": fp32.as_dict()},
            "quantization": qm.cfg.model_dump(mode="json")}  # as used: target resolved, bits fitted to it
    if cfg.mode == "qat":
        meta["training"] = cfg.finetune.model_dump(mode="json")
    save_quantized(out, qm, ckpt.spec, meta, transforms=ckpt.meta.get("transforms", []),
                   inputs=signature(model, splits.model_inputs()), model=model)  # token ids: the data's
    if engine_out:
        to_integer(qm).save(engine_out)
    if onnx_out and cfg.mode != "dynamic":  # checked like `karuku export --int8`: one path for int8 ONNX
        from karuku.deploy.export import export_int8_onnx

        meta["onnx_export"] = export_int8_onnx(qm, tuple(ckpt.spec.input_shape), Path(onnx_out),
                                               inputs=first_inputs(splits.test, 2000))
    elif onnx_out:
        write_bytes(onnx_out, export_onnx(qm))
        meta["onnx_export"] = f"wrote {onnx_out} (dynamic int8 ONNX: activations quantized at run time)"
    return meta
