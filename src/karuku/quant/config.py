"""QuantConfig: every quantization setting, typed; the single source for the API and the CLI."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from karuku.config import Config, stored
from karuku.training.config import TrainConfig


class QuantConfig(Config):
    """How to quantize: mode, bit widths, ranges, calibration, QAT schedule and training, mixed precision."""

    mode: Literal["ptq", "qat", "dynamic"] = Field(
        "ptq", description="ptq: static post-training; qat: quantization-aware training; dynamic: int8 "
                           "weights, activations quantized at run time (Linear layers only)")
    bits: int = Field(8, ge=2, le=8, description="weight bits (per-channel symmetric, narrow range)")
    act_bits: int = Field(8, ge=2, le=8, description="activation bits")
    act_dtype: Literal["uint8", "int8"] = Field(
        "uint8", description="activation integers; uint8 × int8 weights is what x86 runs fast")
    per_channel: bool = Field(True, description="one weight scale per output channel (else per tensor)")
    observer: str = Field("mse", description="how activation ranges are chosen from calibration data: minmax, "
                                             "moving_average, percentile, mse, kl (or a registered observer)")
    weight_observer: Literal["minmax", "mse"] = Field(
        "minmax", description="weight ranges: full range, or the MSE-optimal clip (helps at 4-6 bits)")
    calibration: int = Field(512, gt=0, le=1_000_000, description="calibration samples")
    calibration_batch: int = Field(64, gt=0, le=100_000, description="calibration batch size")
    bias_correction: bool = Field(True, description="correct each bias for the mean shift its weight rounding causes")
    layer_bits: dict[str, int | Literal["float"]] = Field(
        default_factory=dict, description="per-layer weight bits (8, 6, 4) or 'float', by layer-name pattern "
                                          "(fnmatch; the last match wins)", examples=["'conv*=4'"])
    rounding: Literal["single", "double"] = Field(
        "single", description="integer engine requantization: one rounding of acc·M (as the fake-quant model "
                              "rounds), or Jacob et al.'s two (TFLite's reference kernels)")
    target_isa: str = Field(
        "auto", description="the CPU the int8 files are for: auto (this one, resolved when quantizing), portable "
                            "(exact on every CPU), or a karuku.cpu target (avx2, avx512-vnni, arm64, ...); where "
                            "its u8 x s8 kernels saturate (x86 without VNNI) weights get at most 7 bits")
    input_range: list[float] | None = Field(
        None, description="ptq: the model input's quantization range, fixed instead of calibrated: (0, 1) for "
                          "pixels / 255 makes the int8 input the 8-bit pixel itself (scale 1/255, zero point 0; "
                          "see fold_normalization)", examples=["0,1"])
    adaround: list[str] = Field(
        default_factory=list, description="ptq: layers (name patterns, fnmatch) whose weights are rounded up or down "
                                          "as the calibration data says (AdaRound) instead of to nearest",
        examples=["'_conv_stem'"])
    adaround_iters: int = Field(1000, ge=1, le=1_000_000, description="ptq: optimisation steps per AdaRound layer")
    strict: bool = Field(False, description="fail on a layer that cannot be quantized instead of keeping it float")
    qat_delay: int = Field(200, ge=0, le=1_000_000_000, description="QAT: iterations before activations are "
                                                                     "quantized")
    qat_freeze_bn: int | None = Field(None, ge=0, le=1_000_000_000, description="QAT: iteration from which "
                                      "BatchNorm statistics are frozen (default: 3/4 of the run)")
    qat_freeze_observers: int | None = Field(None, ge=0, le=1_000_000_000, description="QAT: iteration from which "
                                             "activation ranges are frozen (default: 7/8 of the run)")
    qat_momentum: float = Field(0.01, gt=0, le=1, description="QAT: moving-average momentum of activation ranges")
    max_drop: float | None = Field(None, gt=0, lt=1, description="mixed precision auto mode: largest accuracy "
                                   "drop (fraction, e.g. 0.005) allowed at low bits")
    low_bits: int = Field(4, ge=2, le=8, description="mixed precision auto mode: the low bit width tried per layer")
    finetune: TrainConfig | None = Field(None, description="qat: the training (the fine-tuning of the float model "
                                                            "with fake quantization)")

    @field_validator("bits", "act_bits", "low_bits", mode="before")
    @classmethod
    def _bits(cls, v):
        if isinstance(v, int) and not isinstance(v, bool) and not 2 <= v <= 8:  # one message for every bit width
            raise ValueError(f"bits must be from 2 to 8, got {v}")
        return v

    @model_validator(mode="after")
    def _effective(self, info):
        # settings that cannot take effect are refused, not ignored (in new settings; files keep what they hold)
        if stored(info):
            return self
        qat_only = self.given("finetune", "qat_delay", "qat_freeze_bn", "qat_freeze_observers", "qat_momentum")
        if self.mode != "qat" and qat_only:
            raise ValueError(f"`{qat_only[0]}` applies to `mode` qat only (`mode` is {self.mode})")
        if self.mode == "dynamic":
            static = self.given("calibration", "calibration_batch", "observer", "act_bits", "act_dtype")
            if static:
                raise ValueError(f"`{static[0]}` has no effect in `mode` dynamic (activations are quantized at run "
                                 "time)")
        ptq_only = self.given("input_range", "adaround", "adaround_iters")
        if self.mode != "ptq" and ptq_only:
            raise ValueError(f"`{ptq_only[0]}` applies to `mode` ptq only (`mode` is {self.mode})")
        if self.given("low_bits") and self.max_drop is None:
            raise ValueError("`low_bits` applies to the mixed-precision search only (set `max_drop`)")
        return self

    @field_validator("observer")
    @classmethod
    def _observer(cls, v: str) -> str:
        from karuku.quant.observers import OBSERVERS

        return OBSERVERS.check(v)

    @field_validator("target_isa")
    @classmethod
    def _target(cls, v: str) -> str:
        from karuku.cpu import AUTO, PORTABLE, TARGETS

        if v not in (AUTO, PORTABLE, *TARGETS):
            from karuku.errors import closest

            raise ValueError(f"unknown target ISA '{v}'{closest(v, [AUTO, PORTABLE, *TARGETS])} "
                             f"(known: {', '.join([AUTO, PORTABLE, *TARGETS])})")
        return v

    def for_target(self) -> QuantConfig:
        """This config with `target_isa` resolved ("auto" → this CPU's target) and weight bits capped to what its
        int8 kernels compute exactly (karuku.quant.representation)."""
        from karuku.cpu import get_target
        from karuku.quant.representation import weight_bits_for

        target = get_target(self.target_isa)
        cap = weight_bits_for(target)
        layer_bits = {k: (v if v == "float" else min(int(v), cap)) for k, v in self.layer_bits.items()}
        return self.model_copy(update={"target_isa": target, "bits": min(self.bits, cap),
                                       "low_bits": min(self.low_bits, cap), "layer_bits": layer_bits})

    @field_validator("input_range")
    @classmethod
    def _input_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not (len(v) == 2 and v[0] <= 0 <= v[1] and v[0] < v[1]):
            raise ValueError(f"input_range must be lo,hi with lo <= 0 <= hi and lo < hi, got {list(v)}")
        return v

    @field_validator("layer_bits")
    @classmethod
    def _layer_bits(cls, v: dict) -> dict:
        for pattern, bits in v.items():
            if bits != "float" and not 2 <= int(bits) <= 8:
                raise ValueError(f"bits for '{pattern}' must be from 2 to 8 or 'float', got {bits}")
        return v
