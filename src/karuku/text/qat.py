"""Quantization-aware training of a sentence encoder, by module rewrite (no tracing), ending in the same static
int8 model `karuku.text.quantize` builds for PTQ, so it exports through the same ONNX path.

Every Linear that `layer_bits` quantizes becomes a `FakeQuantLinear`: its float weight is trained, but the forward
pass uses the weight as `QLinear` will store it (per output channel, symmetric, narrow range: `weight_qparams`)
and its input as the uint8 grid of a static range. Rounding passes gradients straight through. Ranges start at
the calibration texts' min / max (what PTQ sets), follow a moving average of each batch's (`qat_momentum`) until
`qat_freeze_observers` (default 7/8 of the run), and activations are fake-quantized from `qat_delay` steps on.
Training is distillation from the float model (`karuku.text.distill`: cosine + MSE on the embedding, hidden-state
hints per layer) on unlabelled texts. `finish` turns each FakeQuantLinear into a static QLinear holding exactly
the integers it trained with.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.quant.config import QuantConfig
from karuku.quant.model import layer_bits
from karuku.text.encoder import SentenceEncoder
from karuku.text.quantize import QLinear, _replace, dynamic_qparams, weight_qparams
from karuku.text.tokenizer import Batch, Tokenizer


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q forward, the identity's gradient backward (straight-through rounding)."""
    return x + (q - x).detach()


class FakeQuantLinear(nn.Linear):
    """A Linear trained with its int8 weights and uint8 input simulated; `step` counts training forwards."""

    def __init__(self, linear: nn.Linear, bits: int, smooth: torch.Tensor | None, delay: int, freeze: int,
                 momentum: float):
        super().__init__(linear.in_features, linear.out_features)
        w = linear.weight.detach().float()
        with torch.no_grad():  # SmoothQuant folded as in QLinear: x / s in, W · s trained
            self.weight.copy_(w if smooth is None else w * smooth.float()[None, :])
            self.bias.copy_(linear.bias.detach())
        self.bits, self.delay, self.freeze, self.momentum = bits, delay, freeze, momentum
        self.register_buffer("in_scale", torch.ones(0) if smooth is None else 1.0 / smooth.float())
        self.register_buffer("act_range", torch.zeros(0))  # (lo, hi) once calibrated; float input until then
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_scale.numel():
            x = x * self.in_scale
        if self.training and self.act_range.numel() == 2:
            if int(self.step) < self.freeze:
                seen = torch.stack([x.detach().min(), x.detach().max()])
                self.act_range.mul_(1 - self.momentum).add_(self.momentum * seen)
            self.step += 1
        if self.act_range.numel() == 2 and (not self.training or int(self.step) > self.delay):
            scale, zp = dynamic_qparams(self.act_range)
            x = _ste(x, (torch.clamp(torch.round(x / scale) + zp, 0, 255) - zp) * scale)
        w_int, w_scale = weight_qparams(self.weight.detach(), self.bits)
        w = _ste(self.weight, w_int * w_scale[:, None])
        return nn.functional.linear(x, w, self.bias)

    def to_qlinear(self) -> QLinear:
        """The static QLinear of the trained weight and range (the integers the forward pass used)."""
        plain = nn.Linear(self.in_features, self.out_features)
        with torch.no_grad():
            plain.weight.copy_(self.weight)
            plain.bias.copy_(self.bias)
        q = QLinear(plain, self.bits)
        q.in_scale = self.in_scale.clone()
        q.act_range = self.act_range.detach().clone()
        return q


def prepare(model: SentenceEncoder, cfg: QuantConfig, calibration: Batch, total_steps: int,
            scales: dict[str, torch.Tensor] | None = None) -> SentenceEncoder:
    """A copy of `model` with FakeQuantLinear layers, ranges calibrated on `calibration` (as static PTQ)."""
    from karuku.text.quantize import calibrate

    freeze = cfg.qat_freeze_observers if cfg.qat_freeze_observers is not None else (7 * total_steps) // 8
    qm = copy.deepcopy(model).eval()
    for name, module in list(qm.named_modules()):
        bits = layer_bits(name, cfg) if isinstance(module, nn.Linear) else None
        if bits is not None:
            _replace(qm, name, FakeQuantLinear(module, bits, (scales or {}).get(name), min(cfg.qat_delay, total_steps),
                                               freeze, cfg.qat_momentum))
    calibrate(qm, calibration, cfg.calibration_batch, limit=cfg.calibration)  # sets each act_range
    return qm


def finish(qm: SentenceEncoder) -> SentenceEncoder:
    """Every FakeQuantLinear replaced by its static QLinear (in place); the model in eval mode."""
    for name, module in list(qm.named_modules()):
        if isinstance(module, FakeQuantLinear):
            _replace(qm, name, module.to_qlinear())
    return qm.eval()


def train_qat(model: SentenceEncoder, cfg: QuantConfig, calibration: Batch, texts: list[str] | None,
              tokenizer: Tokenizer | None, train=None, scales: dict[str, torch.Tensor] | None = None,
              log=print) -> SentenceEncoder:
    """QAT of `model` distilled from itself in float on `texts`; `train`: a TextDistillConfig (default: one
    epoch, lr 2e-5). Returns the fake-quantized encoder, ready for `finish` (int8 layers and embedding)."""
    from karuku.text.distill import TextDistillConfig, distill

    if not texts or tokenizer is None:
        raise KarukuError("QAT of a sentence encoder trains on texts", "pass texts=[...] and tokenizer=...")
    if cfg.finetune is not None:
        raise KarukuError("a sentence encoder's QAT is distillation from the float model, not `finetune`",
                          "give its settings as train=TextDistillConfig(epochs=..., lr=...)")
    train = train or TextDistillConfig(epochs=1, lr=2e-5)
    total = max(1, round(train.epochs * math.ceil(len(texts) / train.batch_size)))
    qm = prepare(model, cfg, calibration, total, scales)
    distill(model, qm, texts, tokenizer, train, log=log)
    return qm
