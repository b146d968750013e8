"""Where the integer engine and the fake-quant model part ways: per node, the share of values that differ.

    .venv/bin/python benchmarks/quant_layer_diff.py CKPT [--images 200] [--rounding single|double]

Each engine value is dequantized and compared with the fake-quant model's value of the same node, in
quantization steps. `--rounding double` runs the engine with Jacob et al.'s requantization (a rounding
doubling high multiply, then a rounding right shift: two roundings) instead of the default single rounding
of acc·M0·2^−(31+shift), to show which rule the fake-quant model follows.
"""

from __future__ import annotations

import argparse

import torch

from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.quant import QuantConfig, quantize, to_integer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounding", choices=("single", "double"), default="single")
    args = ap.parse_args()
    model, _ = load_model(args.checkpoint)
    splits = load_splits(DataConfig(name="mnist"))
    x = splits.test.tensors[0][: args.images]
    cfg = QuantConfig(observer="mse", calibration=512, rounding=args.rounding)
    qm = quantize(model, cfg, splits.calibration(512)).eval()
    im = to_integer(qm)
    env = im.run_all(im.quantize_input(x), fast=True)
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
