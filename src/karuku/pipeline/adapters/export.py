"""`export`: write the deployable file (fp32 ONNX here; int8 ONNX and C when their stages exist)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from karuku.pipeline.stages import StageOutput


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["onnx"] = Field("onnx", description="output format")


def apply(model, settings: Settings, ctx) -> StageOutput:
    from karuku.measure.onnx_runtime import export_onnx

    path = ctx.artifact_path(f"model.{settings.format}")
    export_onnx(model, ctx.input_shape, path)
    return StageOutput(model, artifacts={"onnx": str(path)}, sizes={"onnx_fp32": path.stat().st_size},
                       recover=False)


def backoff(settings: Settings, round: int) -> Settings | None:
    return None
