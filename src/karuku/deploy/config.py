"""ExportConfig: what deployable file to write (Python API, CLI `karuku export` and the recipe stage `export`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from karuku.config import Config


class ExportConfig(Config):
    """The deployable file: format, its target and its checks.

    New formats (e.g. `tflite`) and back-end settings (e.g. the C kernels) are new values and fields here,
    so the CLI and recipes take them with no other change.
    """

    format: Literal["onnx", "c", "tflite"] = Field(
        "onnx", description="onnx (fp32, or int8 QDQ for quantized models), c (microcontroller C99 from a quantized "
                            "model) or tflite (int8 .tflite for LiteRT and TFLite Micro, from a quantized model)")
    int8: bool = Field(False, description="require the int8 form: an error for a float checkpoint")
    profile: str | None = Field(None, description="c: the device profile the generated code must fit (mcu-m4, ...)")
    target_isa: str | None = Field(None, description="int8 ONNX: the CPU it is for (auto, portable, avx2, "
                                                      "avx512-vnni, arm64, ...; default: the one it was quantized for)")
    representation: Literal["u8s8", "u8s7", "u8u8"] | None = Field(
        None, description="int8 ONNX: how the integers are stored (default: the fastest exact on the target)")
    kernels: Literal["karuku", "cmsis-nn"] = Field(
        "karuku", description="c: karuku's portable kernels, or Arm's CMSIS-NN (from --cmsis-nn)")
    cmsis_nn: str | None = Field(None, description="c with kernels cmsis-nn: the CMSIS-NN source folder")
    compact: bool = Field(False, description="tflite: leave out what LiteRT and TFLite Micro do not read (tensor "
                                             "names, the biases' scales and zero points; 4-byte alignment): smaller, "
                                             "but tools that expect the converter's bias quantization may refuse it")

    @model_validator(mode="after")
    def _c_only(self):
        if self.format != "c" and (self.kernels != "karuku" or self.cmsis_nn is not None):
            raise ValueError("kernels and cmsis_nn choose the kernels of a C project: use them with --format c")
        if self.format != "tflite" and self.compact:
            raise ValueError("compact shrinks a .tflite: use it with --format tflite")
        return self

    @field_validator("target_isa")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None:
            from karuku.cpu import get_target
            from karuku.errors import KarukuError

            try:
                get_target(v)
            except KarukuError as exc:
                raise ValueError(exc.message) from None
        return v
