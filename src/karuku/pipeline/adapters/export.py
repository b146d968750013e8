"""`export`: the deployable file — fp32 or int8 ONNX (by the model), or microcontroller C (quantized models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from karuku.errors import KarukuError
from karuku.pipeline.stages import StageOutput


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["onnx", "c"] = Field("onnx", description="onnx (fp32, or int8 QDQ for quantized models) or c")
    profile: str | None = Field(None, description="c: the device profile the generated code must fit")


def apply(model, settings: Settings, ctx) -> StageOutput:
    from karuku.quant import QuantModel, to_integer

    quantized = isinstance(model, QuantModel) and model.cfg.mode != "dynamic"
    if settings.format == "c":
        if not quantized:
            raise KarukuError("stage export: format c needs a quantized model", "put a quantize stage before it")
        from karuku.deploy.c.project import export_c

        folder = ctx.artifact_path("c")
        export_c(to_integer(model), ctx.current_ckpt.spec.name, folder, ctx.input_shape, profile=settings.profile)
        return StageOutput(model, artifacts={"c": str(folder)}, recover=False)
    if quantized:
        from karuku.deploy.export import export_int8_onnx

        path = ctx.artifact_path("model.int8.onnx")
        export_int8_onnx(to_integer(model), ctx.input_shape, path, inputs=ctx.splits.test.tensors[0][:2000])
        return StageOutput(model, artifacts={"onnx_int8": str(path)}, recover=False)
    from karuku.deploy.onnx_fp32 import export_fp32

    res = export_fp32(model, ctx.input_shape, ctx.artifact_path("model.onnx"))
    return StageOutput(model, artifacts={"onnx": str(res.path)}, recover=False)


def backoff(settings: Settings, attempt: int) -> None:
    return None
