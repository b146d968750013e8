"""The whole quantization job behind `karuku quantize`: checkpoint in, quantized checkpoint out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from karuku.data.config import DataConfig
from karuku.data.splits import load_splits
from karuku.io.atomic import ensure_writable_dir, write_bytes
from karuku.io.checkpoint import load_checkpoint
from karuku.quant import QuantConfig, export_onnx, quantize, to_integer
from karuku.quant.store import save_quantized


def quantize_checkpoint(path: str | os.PathLike, cfg: QuantConfig, out: str | os.PathLike,
                        data: str | None = None, data_path: str | None = None, train_config=None,
                        engine_out: str | os.PathLike | None = None, onnx_out: str | os.PathLike | None = None,
                        verbose: bool = True) -> dict[str, Any]:
    """Quantize the float checkpoint `path` on its dataset (or `data`); write `out` (and the engine / ONNX files).

    Returns the quantized checkpoint's metadata, with fp32 and quantized test accuracy under `metrics`.
    """
    from karuku.training.evaluate import score

    out = ensure_writable_dir(out)
    for extra in (engine_out, onnx_out):
        if extra:
            ensure_writable_dir(extra)
    ckpt = load_checkpoint(path)
    model = ckpt.build_model().eval()
    stored = ckpt.meta.get("data") or {}
    name = data or stored.get("name") or "mnist"
    same = name == stored.get("name")
    dcfg = DataConfig(name=name, path=data_path or (stored.get("path") if same else None),
                      val_size=stored.get("val_size", 5000) if same else 5000)
    splits = load_splits(dcfg)
    qm = quantize(model, cfg, splits.calibration(cfg.calibration), splits=splits, train_config=train_config,
                  input_shape=tuple(ckpt.spec.input_shape), verbose=verbose)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # QAT under torchrun: rank 0 alone writes
        rank = dist.get_rank()
        dist.destroy_process_group()
        if rank != 0:
            return {}
    fp32, q = score(model, splits.test), score(qm, splits.test)
    meta = {"data": dcfg.model_dump(mode="json"), "source": str(path),
            "metrics": {"test": q.as_dict(), "fp32_test": fp32.as_dict()},
            "quantization": cfg.model_dump(mode="json")}
    if train_config is not None:
        meta["training"] = train_config.model_dump(mode="json")
    save_quantized(out, qm, ckpt.spec, meta, transforms=ckpt.meta.get("transforms", []))
    if engine_out:
        to_integer(qm).save(engine_out)
    if onnx_out and cfg.mode != "dynamic":  # checked like `karuku export --int8`: one path for int8 ONNX
        from karuku.deploy.export import export_int8_onnx

        export_int8_onnx(qm, tuple(ckpt.spec.input_shape), Path(onnx_out), inputs=splits.test.tensors[0][:2000])
    elif onnx_out:
        write_bytes(onnx_out, export_onnx(qm))
    return meta


def out_path(path: Path, suffix: str) -> Path:
    """`model.safetensors` → `model.int8.safetensors` style names."""
    return path.with_name(path.name.replace(".safetensors", "") + suffix)
