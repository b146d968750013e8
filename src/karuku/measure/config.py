"""How to measure: runs of the speed figures (`karuku evaluate`, `prune`, `bench`); their threads are the
command's own (`--threads`, `karuku.threads`)."""

from __future__ import annotations

from pydantic import Field

from karuku.config import Config


class MeasureConfig(Config):
    """Speed-measurement settings shared by every command that times a model."""

    runs: int = Field(30, ge=1, le=100_000, description="timed runs per latency figure (median reported)")
    latency: bool = Field(True, description="measure speed (torch and ONNX Runtime)")

    @property
    def engines(self) -> tuple[str, ...]:
        return ("torch", "onnxruntime") if self.latency else ()
