"""Where the integer engine and the fake-quant model part ways: per node, the share of values that differ.

    .venv/bin/python benchmarks/quant_layer_diff.py CKPT [--images 200] [--single-rounding]

Each engine value is dequantized and compared with the fake-quant model's value of the same node, in
quantization steps. `--single-rounding` swaps the engine's requantization (TFLite's rounding doubling high
multiply, then a rounding right shift: two roundings) for one rounding of acc·M0·2^−(31+shift), half away
from zero — an experiment to show which rule the fake-quant model follows; the shipped engine is unchanged.
"""

from __future__ import annotations

import argparse

import torch

import karuku.quant.engine.ops as ops
from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.quant import QuantConfig, quantize, to_integer


def requantize_once(acc, m0, shift, zero_point, lo, hi):
    """clamp(zero_point + round(acc·M0·2^−(31+shift))), one rounding, half away from zero (exact in float64)."""
    m0 = torch.as_tensor(m0, dtype=torch.float64)
    shift = torch.as_tensor(shift, dtype=torch.float64)
    v = acc.to(torch.float64) * m0 * torch.pow(2.0, -(31 + shift))
    y = torch.sign(v) * torch.floor(v.abs() + 0.5)
    return torch.clamp(y.to(torch.int64) + zero_point, lo, hi).to(torch.int32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--single-rounding", action="store_true")
    args = ap.parse_args()
    if args.single_rounding:
        ops.requantize = requantize_once
    model, _ = load_model(args.checkpoint)
    splits = load_splits(DataConfig(name="mnist"))
    x = splits.test.tensors[0][: args.images]
    qm = quantize(model, QuantConfig(observer="mse", calibration=512), splits.calibration(512)).eval()
    im = to_integer(qm)
    env = {im.input: im.quantize_input(x).to(torch.int32)}
    for op in im.ops:
        env[op.output] = im._run_op(op, env, True)
    fake: dict[str, torch.Tensor] = {}
    for n in qm.nodes:
        if n.name in qm.quantizer:
            qm.act(n.name).register_forward_hook(
                lambda m, i, o, name=n.name: fake.setdefault(name, o.detach()))
    with torch.no_grad():
        qm(x)
    print(f"{'op':10s} {'node':40s} {'values differing':>17s} {'max steps':>9s}")
    for op in im.ops:
        if op.output not in fake or fake[op.output].numel() != env[op.output].numel():
            continue
        v = im.values[op.output]
        eng = (env[op.output].double() - v.zero_point) * v.scale
        steps = ((eng - fake[op.output].double().reshape(eng.shape)).abs() / v.scale).round()
        print(f"{op.kind:10s} {op.output:40s} {100 * float((steps > 0).double().mean()):16.3f}% "
              f"{int(steps.max()):9d}")


if __name__ == "__main__":
    main()
