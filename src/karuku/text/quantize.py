"""int8 for sentence encoders by module rewrite (torch.fx cannot trace attention with masks; it needs none):
every Linear becomes a `QLinear` holding int8 weights, the word embedding a weight-only `QEmbedding`.

`QLinear` computes what ONNX Runtime computes for the exported file, so its outputs are the reference the
export is checked against:
- weights per output channel, symmetric, narrow range (−127..127 at 8 bits; at most 7 bits where the target's
  u8 × s8 kernels saturate, `karuku.quant.representation`);
- activations uint8 per tensor, either dynamic (each call's min / max, as DynamicQuantizeLinear: scale =
  (max(0, max) − min(0, min)) / 255, zero point round(−min / scale)) or static (a range calibrated on texts);
- the integer products summed exactly, scaled by s_x · s_w, plus the float bias.
LayerNorm, softmax, GELU and pooling stay float: int8 there costs accuracy and saves little time.
`layer_bits` in QuantConfig picks per layer (fnmatch patterns over `layers.3.ffn.down`, `embed.word`, ...):
8, 7, 4 bits, or "float". `sensitivity` measures what each layer alone costs, to choose them.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.quant.config import QuantConfig
from karuku.quant.gptq import gptq_round
from karuku.quant.model import layer_bits
from karuku.text.encoder import SentenceEncoder
from karuku.text.qembedding import QEmbedding
from karuku.text.tokenizer import Batch, Tokenizer

EMBEDDING = "embed.word"


def dynamic_qparams(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero point) of ONNX DynamicQuantizeLinear for x: uint8 over [min(0, x), max(0, x)]."""
    lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zp = torch.clamp(torch.round(-lo / scale), 0, 255)
    return scale.float(), zp.float()


def uint8_steps(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
    """x on the uint8 grid of (scale, zp), as steps from the zero point: exact small integers, held in float."""
    return torch.clamp(torch.round(x / scale) + zp, 0, 255) - zp


def weight_qparams(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(int weights as float, per-row scale): symmetric, narrow range, one scale per output channel."""
    qmax = (1 << (bits - 1)) - 1
    scale = w.abs().amax(1).clamp(min=1e-12) / qmax
    return torch.clamp(torch.round(w / scale[:, None]), -qmax, qmax), scale


class QLinear(nn.Module):
    """A Linear with int8 weights and uint8 activations (dynamic, or static once `act_range` is set)."""

    def __init__(self, linear: nn.Linear, bits: int, smooth: torch.Tensor | None = None,
                 hessian: torch.Tensor | None = None):
        super().__init__()
        self.bits = bits
        w = linear.weight.detach().float()
        # SmoothQuant: x / s in, W · s stored: the same product, with outlier channels tamed before rounding
        self.register_buffer("in_scale", torch.ones(0) if smooth is None else 1.0 / smooth.float())
        if smooth is not None:
            w = w * smooth.float()[None, :]
        w_int, scale = weight_qparams(w, bits)
        if hessian is not None:  # GPTQ: the same grid, each column rounded against the inputs it meets (x / s)
            if smooth is not None:
                d = self.in_scale.double()
                hessian = hessian * d[:, None] * d[None, :]
            w_int = gptq_round(w, scale, (1 << (bits - 1)) - 1, hessian)
        self.register_buffer("w_int", w_int.to(torch.int8))
        self.register_buffer("w_scale", scale)
        self.register_buffer("bias", linear.bias.detach().clone())
        self.register_buffer("act_range", torch.zeros(0))  # (lo, hi) when static
        self.in_features, self.out_features = linear.in_features, linear.out_features

    @property
    def static(self) -> bool:
        return self.act_range.numel() == 2

    def act_qparams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.static:
            return dynamic_qparams(x)
        return dynamic_qparams(self.act_range)  # the same formula over the calibrated range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_scale.numel():
            x = x * self.in_scale
        scale, zp = self.act_qparams(x)
        xq = uint8_steps(x, scale, zp)
        # float64 sums integer products exactly (|sum| < 2^53), as the int32 accumulators do
        acc = xq.double() @ self.w_int.double().t()
        return (acc * (scale.double() * self.w_scale.double())).float() + self.bias


def quantize(model: SentenceEncoder, cfg: QuantConfig | None = None, calibration: Batch | None = None,
             smooth: float | None = None, *, rounding: str = "nearest", texts: list[str] | None = None,
             tokenizer=None, train=None, log=print, qat_activations: str = "static",
             qat_teacher: SentenceEncoder | None = None, cache_dir=None) -> SentenceEncoder:
    """A copy of `model` with int8 Linear layers (and the word embedding, weight-only) as `cfg` says.

    `cfg.mode`: "dynamic" (activation ranges per call), "ptq" (static ranges calibrated on `calibration`, a
    tokenized Batch) or "qat" (static, ranges calibrated then trained with the weights by distillation from
    `model` on `texts` tokenized by `tokenizer`, `train` a TextDistillConfig; see "QAT" below). QAT with
    `qat_activations="dynamic"` trains against each input's own range and gives the dynamic int8 model;
    `qat_teacher` (e.g. the pretrained encoder a student was distilled from) is distilled from instead of `model`,
    its outputs cached in `cache_dir` (karuku.text.teacher_cache). `cfg.target_isa`
    caps the weight bits where its int8 kernels saturate. The word embedding follows `cfg.bits` unless
    `layer_bits` names `embed.word` (8, 4 or "float").

    `smooth` (α, e.g. 0.5; needs `calibration`): SmoothQuant (Xiao et al. 2023) — each Linear's input channel j
    is divided by s_j = max|x_j|^α / max|W_:j|^(1−α) (an elementwise Mul before quantizing) and W's column j
    multiplied by it, so channels with outliers no longer set every other channel's step. Q, K and V share one s
    (one input). The float function is unchanged; only what rounding loses moves.

    `rounding` ("nearest" or "gptq"; "gptq" needs `calibration`, modes dynamic / ptq): GPTQ (Frantar et al. 2023,
    `karuku.quant.gptq`) rounds each Linear's weights column by column against Σ xᵀx of its inputs over the real
    tokens of the calibration texts, on the same per-channel grid as nearest rounding."""
    cfg = (cfg or QuantConfig(mode="dynamic")).for_target()
    if not isinstance(model, SentenceEncoder):
        raise KarukuError(f"karuku.text.quantize needs a SentenceEncoder, got {type(model).__name__}",
                          "use karuku.quantize for other models")
    if rounding not in ("nearest", "gptq"):
        raise KarukuError(f"unknown weight rounding '{rounding}'", "use 'nearest' or 'gptq'")
    if (cfg.mode != "dynamic" or smooth is not None or rounding == "gptq") and calibration is None:
        raise KarukuError("static quantization, smoothing and GPTQ rounding need calibration texts",
                          "pass a tokenized Batch")
    if cfg.mode == "qat" and rounding != "nearest":
        raise KarukuError("GPTQ rounding does not apply to QAT (training sets the weights it rounds)",
                          "use rounding 'nearest' with mode qat, or mode dynamic / ptq with GPTQ")
    if qat_activations not in ("static", "dynamic"):
        raise KarukuError(f"unknown QAT activations '{qat_activations}'", "use 'static' or 'dynamic'")
    if cfg.mode != "qat" and (qat_activations != "static" or qat_teacher is not None):
        raise KarukuError(f"qat_activations and qat_teacher apply to mode qat only (mode is {cfg.mode})",
                          "drop them or use mode qat")
    if cfg.mode == "qat":
        scales = smooth_scales(model, calibration, smooth, cfg.calibration_batch, cfg.calibration) if smooth else {}
        qm = finish(train_qat(model, cfg, calibration, texts, tokenizer, train, scales, log,
                              qat_activations == "dynamic", qat_teacher, cache_dir))
        qm.quant_cfg = cfg
        return qm
    if texts is not None or train is not None:
        raise KarukuError(f"training texts apply to mode qat only (mode is {cfg.mode})", "drop texts / train")
    qm = copy.deepcopy(model).eval()
    scales = smooth_scales(qm, calibration, smooth, cfg.calibration_batch, cfg.calibration) if smooth else {}
    grams = input_grams(qm, calibration, cfg.calibration_batch, cfg.calibration) if rounding == "gptq" else {}
    for name, module in list(qm.named_modules()):
        if isinstance(module, nn.Linear):
            bits = layer_bits(name, cfg)
            if bits is not None:
                _replace(qm, name, QLinear(module, bits, scales.get(name), grams.get(name)))
    _quantize_embedding(qm, cfg)
    if cfg.mode == "ptq":
        calibrate(qm, calibration, cfg.calibration_batch, limit=cfg.calibration)
    qm.quant_cfg = cfg
    return qm


def word_table_bits(cfg: QuantConfig) -> int | None:
    """The width the word embedding is stored at (4 or 8 bits; None: float) under `layer_bits` "embed.word"."""
    bits = layer_bits(EMBEDDING, cfg)
    return None if bits is None else 4 if bits <= 4 else 8


def _quantize_embedding(qm: SentenceEncoder, cfg: QuantConfig) -> None:
    """The word embedding weight-only (8 or 4 bits, `layer_bits` "embed.word"), before ranges are calibrated."""
    bits = word_table_bits(cfg)
    if bits is not None:
        qm.embed.word = QEmbedding(qm.embed.word, bits)


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def _feed(model: nn.Module, hooks: dict[nn.Module, object], batch: Batch, batch_size: int,
          limit: int | None, on_part=None) -> None:
    """Run the first `limit` texts of `batch` through `model` with each module's forward pre-hook attached;
    `on_part(part)` sees each slice of the batch before it runs (a hook that needs its attention mask)."""
    handles = [m.register_forward_pre_hook(fn) for m, fn in hooks.items()]
    try:
        n = min(len(batch), limit or len(batch))
        for i in range(0, n, batch_size):
            part = batch[i:i + batch_size]
            if on_part is not None:
                on_part(part)
            model(*part.inputs())
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def calibrate(qm: SentenceEncoder, batch: Batch, batch_size: int = 32, limit: int | None = None) -> None:
    """Static ranges: the min and max each QLinear's (or QAT layer's) quantized input takes over the calibration
    texts — after its SmoothQuant division, as it is quantized — padding tokens included (the exported graph
    quantizes them too)."""
    layers = {n: m for n, m in qm.named_modules() if hasattr(m, "act_range") and hasattr(m, "in_scale")}
    seen: dict[str, list[float]] = {}

    def hook(name):
        def fn(m, inputs):
            x = inputs[0] * m.in_scale if m.in_scale.numel() else inputs[0]
            lo, hi = float(x.min()), float(x.max())
            old = seen.get(name, [lo, hi])
            seen[name] = [min(old[0], lo), max(old[1], hi)]
        return fn

    _feed(qm, {m: hook(n) for n, m in layers.items()}, batch, batch_size, limit)
    for name, m in layers.items():
        m.act_range = torch.tensor(seen[name], dtype=torch.float32)


def linear_names(model: nn.Module) -> list[str]:
    """The names of every Linear / QLinear (what `layer_bits` patterns match)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, QLinear))]



@torch.no_grad()
def input_grams(model: SentenceEncoder, batch: Batch, batch_size: int = 32,
                limit: int | None = None) -> dict[str, torch.Tensor]:
    """Σ xᵀx (float64, in × in) of every Linear's input over the real tokens of the calibration texts (padding
    positions left out: no real text puts them there), for GPTQ."""
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    grams: dict[str, torch.Tensor] = {}
    real: list[torch.Tensor] = []  # the mask of the part being fed
    last: dict[str, object] = {}  # Q, K and V see one input tensor: its product once

    def hook(name):
        def fn(_m, inputs):
            if last.get("input") is not inputs[0]:
                x = inputs[0].detach()[real[0]].double()
                last.update(input=inputs[0], gram=x.T @ x)
            grams[name] = grams[name] + last["gram"] if name in grams else last["gram"]
        return fn

    def mask_of(part: Batch) -> None:
        real[:] = [part.attention_mask.bool()]

    _feed(model, {m: hook(n) for n, m in linears.items()}, batch, batch_size, limit, on_part=mask_of)
    return grams


@torch.no_grad()
def smooth_scales(model: SentenceEncoder, batch: Batch, alpha: float, batch_size: int = 32,
                  limit: int | None = None) -> dict[str, torch.Tensor]:
    """SmoothQuant's per-input-channel s for every Linear (Q, K, V: one shared s), from the largest |x_j| over
    the calibration texts and the largest |W_:j|."""
    if not 0 <= alpha <= 1:
        raise KarukuError(f"smoothing α {alpha} is outside 0..1", "use 0.5 (SmoothQuant's default)")
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    seen: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_m, inputs):
            amax = inputs[0].detach().abs().flatten(0, -2).amax(0)
            seen[name] = torch.maximum(seen[name], amax) if name in seen else amax
        return fn

    _feed(model, {m: hook(n) for n, m in linears.items()}, batch, batch_size, limit)
    out = {}
    for name in linears:
        parent, leaf = name.rsplit(".", 1)
        group = [f"{parent}.{k}" for k in ("q", "k", "v")] if leaf in ("q", "k", "v") else [name]
        w_max = torch.stack([linears[g].weight.abs().amax(0) for g in group]).amax(0).clamp(min=1e-5)
        out[name] = (seen[name].clamp(min=1e-5) ** alpha / w_max ** (1 - alpha)).clamp(min=1e-5)
    return out


# QAT
# Quantization-aware training of a sentence encoder, by module rewrite (no tracing), ending in the same static
# int8 model `karuku.text.quantize` builds for PTQ, so it exports through the same ONNX path.
#
# Every Linear that `layer_bits` quantizes becomes a `FakeQuantLinear`: its float weight is trained, but the forward
# pass uses the weight as `QLinear` will store it (per output channel, symmetric, narrow range: `weight_qparams`)
# and its input as the uint8 grid of a static range. Rounding passes gradients straight through. Ranges start at
# the calibration texts' min / max (what PTQ sets), follow a moving average of each batch's (`qat_momentum`) until
# `qat_freeze_observers` (default 7/8 of the run), and activations are fake-quantized from `qat_delay` steps on.
# Training is distillation from the float model (`karuku.text.distill`: cosine + MSE on the embedding, hidden-state
# hints per layer) on unlabelled texts. `finish` turns each FakeQuantLinear into a static QLinear holding exactly
# the integers it trained with.


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q forward, the identity's gradient backward (straight-through rounding)."""
    return x + (q - x).detach()


class FakeQuantLinear(nn.Linear):
    """A Linear trained with its int8 weights and uint8 input simulated; `step` counts training forwards."""

    def __init__(self, linear: nn.Linear, bits: int, smooth: torch.Tensor | None, delay: int, freeze: int,
                 momentum: float, dynamic: bool = False):
        super().__init__(linear.in_features, linear.out_features)
        self.dynamic = dynamic  # each input's own range, as the dynamic QLinear (and DynamicQuantizeLinear) take it
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
        ranged = self.dynamic or self.act_range.numel() == 2  # a static range exists once calibrated
        if self.training and ranged:
            if not self.dynamic and int(self.step) < self.freeze:
                seen = torch.stack([x.detach().min(), x.detach().max()])
                self.act_range.mul_(1 - self.momentum).add_(self.momentum * seen)
            self.step += 1
        if ranged and (not self.training or int(self.step) > self.delay):
            scale, zp = dynamic_qparams(x.detach() if self.dynamic else self.act_range)
            x = _ste(x, uint8_steps(x, scale, zp) * scale)
        w_int, w_scale = weight_qparams(self.weight.detach(), self.bits)
        w = _ste(self.weight, w_int * w_scale[:, None])
        return nn.functional.linear(x, w, self.bias)

    def to_qlinear(self) -> QLinear:
        """The QLinear of the trained weight (the integers the forward pass used): static with the trained range,
        or dynamic."""
        q = QLinear(self, self.bits)  # reads weight and bias as of any Linear
        q.in_scale = self.in_scale.clone()
        if not self.dynamic:
            q.act_range = self.act_range.detach().clone()
        return q


def prepare(model: SentenceEncoder, cfg: QuantConfig, calibration: Batch, total_steps: int,
            scales: dict[str, torch.Tensor] | None = None, dynamic: bool = False) -> SentenceEncoder:
    """A copy of `model` with FakeQuantLinear layers, ranges calibrated on `calibration` (as static PTQ), or
    each input's own (`dynamic`)."""
    freeze = cfg.qat_freeze_observers if cfg.qat_freeze_observers is not None else (7 * total_steps) // 8
    qm = copy.deepcopy(model).eval()
    for name, module in list(qm.named_modules()):
        bits = layer_bits(name, cfg) if isinstance(module, nn.Linear) else None
        if bits is not None:
            _replace(qm, name, FakeQuantLinear(module, bits, (scales or {}).get(name), min(cfg.qat_delay, total_steps),
                                               freeze, cfg.qat_momentum, dynamic))
    _quantize_embedding(qm, cfg)  # trained with the table it will run with
    if not dynamic:
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
              log=print, dynamic: bool = False, teacher: SentenceEncoder | None = None,
              cache_dir=None) -> SentenceEncoder:
    """QAT of `model` distilled from itself in float (or from `teacher`) on `texts`; `train`: a TextDistillConfig
    (default: one epoch, lr 2e-5). Returns the fake-quantized encoder, ready for `finish` (int8 layers and
    embedding); `dynamic`: activations on each input's own range, as the dynamic int8 file quantizes them."""
    from karuku.text.distill import distill

    if not texts or tokenizer is None:
        raise KarukuError("QAT of a sentence encoder trains on texts", "pass texts=[...] and tokenizer=...")
    if cfg.finetune is not None:
        raise KarukuError("a sentence encoder's QAT is distillation from the float model, not `finetune`",
                          "give its settings as train=TextDistillConfig(epochs=..., lr=...)")
    train = train or default_qat_train()
    total = max(1, round(train.epochs * math.ceil(len(texts) / train.batch_size)))
    qm = prepare(model, cfg, calibration, total, scales, dynamic)
    distill(teacher or model, qm, texts, tokenizer, train, log=log, cache_dir=cache_dir)
    return qm


def default_qat_train():
    """QAT's training when none is given: one epoch of distillation at lr 2e-5 (a TextDistillConfig)."""
    from karuku.text.distill import TextDistillConfig

    return TextDistillConfig(epochs=1, lr=2e-5)
