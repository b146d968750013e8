"""Integer models that show where ONNX Runtime's float32 requantization and the engine's fixed-point rules part
(tests/test_ort_requant.py natively, tests/test_isa_emulated.py on an emulated AVX2-only CPU)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from karuku.quant import QuantConfig, quantize, to_integer
from karuku.quant.engine.graph import IntegerModel, Op, Value
from karuku.quant.primitives import quantize_multiplier


def multipliers(s_x: float, s_w: np.ndarray, s_y: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The engine's fixed-point (M0, shift) per channel."""
    pairs = [quantize_multiplier(float(s_x) * float(s) / float(s_y)) for s in s_w]
    return tuple(torch.tensor([p[i] for p in pairs], dtype=torch.int32) for i in (0, 1))


def one_conv(cin: int, cout: int, groups: int, s_w: np.ndarray, bias: np.ndarray, rng, k: int = 3) -> IntegerModel:
    """x [cin, 12, 12] uint8 (scale 0.5, zero point 7) → conv k × k → y uint8 (scale 1.0, zero point 3)."""
    w = torch.from_numpy(rng.integers(-63, 64, (cout, cin // groups, k, k)).astype(np.int8))
    m0, shift = multipliers(0.5, s_w, 1.0)
    arrays = {"c.weight": w, "c.bias": torch.from_numpy(bias.astype(np.int32)), "c.m0": m0, "c.shift": shift,
              "c.weight_scale": torch.from_numpy(s_w.astype(np.float32))}
    values = {"x": Value([cin, 12, 12], "uint8", 7, 0.5), "y": Value([cout, 12, 12], "uint8", 3, 1.0)}
    op = Op("conv2d", ["x"], "y", "c", {"lo": 0, "hi": 255, "stride": [1, 1], "padding": [1, 1], "groups": groups},
            {r: f"c.{r}" for r in ("weight", "bias", "m0", "shift", "weight_scale")})
    return IntegerModel("x", "y", values, [op], arrays)


class _Block(nn.Module):
    """EfficientNet-Lite's first block in small: stem (ReLU6), depthwise (ReLU6) whose BatchNorm multiplies one
    channel by ~20 (a step of its input becomes many steps of its output) and nearly switches another off,
    a projection, a residual add, global pooling, a classifier with many close logits."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16)
        self.dw, self.bn1 = nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16)
        self.project, self.bn2 = nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16)
        self.act, self.fc = nn.ReLU6(), nn.Linear(16, 100)

    def forward(self, x):
        x = self.act(self.bn0(self.stem(x)))
        y = self.bn2(self.project(self.act(self.bn1(self.dw(x)))))
        return self.fc(F.adaptive_avg_pool2d(x + y, 1).flatten(1))


def folded_block() -> tuple[IntegerModel, torch.Tensor]:
    """`_Block` with its BatchNorms set as described, quantized (7-bit weights: exact on every CPU) on 32 of
    the 64 inputs returned."""
    torch.manual_seed(0)
    model = _Block().eval()
    with torch.no_grad():
        for bn in (model.bn0, model.bn1, model.bn2):
            bn.running_var.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 0.5)
        model.bn1.weight[3], model.bn1.running_var[3] = 4.0, 0.04  # a gain of 20 after folding
        model.bn1.weight[5], model.bn1.bias[5] = 1e-7, 2.0  # nearly switched off: tiny weights, large bias
    x = torch.randn(64, 3, 64, 64)
    return to_integer(quantize(model, QuantConfig(target_isa="portable", bias_correction=True), x[:32])), x
