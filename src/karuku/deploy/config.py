"""ExportConfig: what deployable file to write (Python API, CLI `karuku export` and the recipe stage `export`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from karuku.config import Config


class ExportConfig(Config):
    """The deployable file: format and its checks.

    New formats (e.g. `tflite`) and back-end settings (e.g. the C kernels) are new values and fields here,
    so the CLI and recipes take them with no other change.
    """

    format: Literal["onnx", "c"] = Field("onnx", description="onnx (fp32, or int8 QDQ for quantized models) or c "
                                                             "(microcontroller C99 from a quantized model)")
    int8: bool = Field(False, description="require the int8 form: an error for a float checkpoint")
    profile: str | None = Field(None, description="c: the device profile the generated code must fit (mcu-m4, ...)")
