"""Quantization's stage in the compression loop: PTQ / QAT / dynamic, back off by more bits then QAT."""

from __future__ import annotations

from torch import nn

from karuku.measure.inputs import signature
from karuku.pipeline.stage import Stage, StageOutput, StageRun, register_stage
from karuku.quant import QuantConfig, export_qdq, quantize
from karuku.quant.store import MODULE, TRANSFORM, QParams, transform_params


@register_stage("quantize", QuantConfig)
class QuantizeStage(Stage):
    """PTQ, QAT or dynamic quantization; back-off adds bits, then trains (QAT)."""

    def apply(self, model: nn.Module, cfg: QuantConfig, run: StageRun) -> StageOutput:
        if cfg.mode == "qat":
            cfg = cfg.model_copy(update={"finetune": run.train_config(cfg.finetune)})
        qm = quantize(model, cfg, splits=run.splits, input_shape=run.input_shape, verbose=run.verbose)
        qp = QParams.from_model(qm)
        artifacts = {}
        if qm.is_static:
            from karuku.io.atomic import write_bytes

            artifacts["onnx_int8"] = str(write_bytes(run.artifact("model.int8.onnx"), export_qdq(qm)))
        meta = {**qp.meta(), "mode": cfg.mode, "float_layers": qm.float_layers}
        return StageOutput(qm, transforms=[{"name": TRANSFORM, "module": MODULE,
                                            "params": transform_params(qm, signature(model, run.inputs), model)}],
                           sections={"qparams": qp.tensors()}, meta=meta, artifacts=artifacts)

    def backoff(self, cfg: QuantConfig, round_: int) -> QuantConfig | None:
        """More bits (4 → 6 → 8); at 8 bits, QAT instead of PTQ."""
        if cfg.bits < 8:
            return cfg.model_copy(update={"bits": min(8, cfg.bits + 2)})
        if cfg.mode == "ptq":
            return cfg.model_copy(update={"mode": "qat"})
        return None
