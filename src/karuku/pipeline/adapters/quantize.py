"""`quantize`: karuku.quant with its own QuantConfig as the stage settings (PTQ, QAT or dynamic)."""

from __future__ import annotations

from karuku.pipeline.stages import StageOutput
from karuku.quant import QuantConfig, quantize
from karuku.quant.store import TRANSFORM, QParams, transform_params


class Settings(QuantConfig):
    pass


def apply(model, s: Settings, ctx) -> StageOutput:
    cfg = QuantConfig(**s.model_dump())
    if cfg.mode == "qat":
        cfg = cfg.model_copy(update={"finetune": ctx.train_config(cfg.finetune)})
    qm = quantize(model, cfg, splits=ctx.splits, input_shape=ctx.input_shape, verbose=ctx.verbose)
    qp = QParams.from_model(qm)
    sizes = {"int8": qp.weight_bytes(qm)}
    artifacts = {}
    if cfg.mode != "dynamic" and not qm.float_layers:
        from karuku.io.atomic import write_bytes
        from karuku.quant import export_qdq

        path = write_bytes(ctx.artifact_path("model.int8.onnx"), export_qdq(qm))
        artifacts["onnx_int8"] = str(path)
    meta = {**qp.meta(), "mode": cfg.mode, "float_layers": qm.float_layers}
    return StageOutput(qm, transforms=[{"name": TRANSFORM, "params": transform_params(qm, ctx.input_shape)}],
                       sections={"qparams": qp.tensors()}, meta=meta, sizes=sizes, artifacts=artifacts)


def backoff(s: Settings, attempt: int) -> Settings | None:
    """More bits (4 → 6 → 8); at 8 bits, QAT instead of PTQ."""
    if s.bits < 8:
        return s.model_copy(update={"bits": min(8, s.bits + 2)})
    if s.mode == "ptq":
        return s.model_copy(update={"mode": "qat"})
    return None
