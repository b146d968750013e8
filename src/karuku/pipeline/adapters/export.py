"""`export`: the deployable file — fp32 or int8 ONNX (by the model), or microcontroller C (quantized models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from karuku.errors import KarukuError
from karuku.pipeline.stages import StageOutput


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["onnx", "c"] = Field("onnx", description="onnx (fp32, or int8 QDQ for quantized models) or c")
    profile: str | None = Field(None, description="c: the device profile the generated code must fit")
    target_isa: str | None = Field(None, description="int8 ONNX: the CPU it is for (default: the one the model was "
                                                     "quantized for; see karuku.cpu)")

    @field_validator("target_isa")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None:
            from karuku.cpu import get_target

            try:
                get_target(v)
            except KarukuError as exc:
                raise ValueError(exc.message) from None
        return v


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
        return StageOutput(model, artifacts={"onnx_int8": str(ctx.artifact_path("model.int8.onnx"))},
                           meta={"int8_onnx": _int8_onnx(model, settings, ctx)}, recover=False)
    from karuku.deploy.onnx_fp32 import export_fp32

    res = export_fp32(model, ctx.input_shape, ctx.artifact_path("model.onnx"))
    return StageOutput(model, artifacts={"onnx": str(res.path)}, recover=False)


def _int8_onnx(model, settings: Settings, ctx) -> dict:
    """Write the int8 ONNX; if ONNX Runtime here misses the engine's answers, fall back to the u8u8 representation
    (exact on every CPU, no requantization) instead of failing the run, and say so in the report."""
    from karuku.cpu import detect
    from karuku.deploy.export import export_int8_onnx
    from karuku.deploy.parity import ParityError

    path, x = ctx.artifact_path("model.int8.onnx"), ctx.splits.test.tensors[0][:2000]
    info = {"cpu": detect().summary()}
    try:
        info["result"] = export_int8_onnx(model, ctx.input_shape, path, inputs=x, target_isa=settings.target_isa)
    except ParityError as miss:
        info["fallback"] = f"{miss.message}; written as u8u8 instead (exact on every CPU, slower kernels)"
        if ctx.verbose:
            print(f"export: {info['fallback']}", flush=True)
        info["result"] = export_int8_onnx(model, ctx.input_shape, path, inputs=x, target_isa="portable",
                                          representation="u8u8")
    return info


def backoff(settings: Settings, attempt: int) -> None:
    return None
