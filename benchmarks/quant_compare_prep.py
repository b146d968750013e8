"""Write the inputs of benchmarks/quant_compare.py: fp32 ONNX, our int8 QDQ ONNX, calibration and test data.

Our int8 files come in the three representations (karuku.quant.representation): `karuku_u8s8.onnx` (8-bit
weights, exact on VNNI / AMX / Arm), `karuku_u8u8.onnx` (the same model stored u8 x u8, exact everywhere) and
`karuku_u8s7.onnx` (quantized for `target_isa="portable"`: 7-bit weights, exact everywhere).

    .venv/bin/python benchmarks/quant_compare_prep.py --out /tmp/qcmp [--mnist CKPT ...]

Speed set: resnet-s and mobilenetv2-s on 3×32×32 with random weights (seed 0, BatchNorm at its
initial statistics) and 256 random-normal calibration inputs. Accuracy set (--mnist): trained MNIST
checkpoints, calibrated on the first 512 training images, tested on the 10,000 test images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.measure.counts import totals
from karuku.measure.onnx_runtime import export_bytes
from karuku.models import build
from karuku.quant import QuantConfig, export_qdq, quantize, to_integer


def write(folder: Path, model, calib: torch.Tensor, shape, test=None, observer: str = "mse") -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fp32.onnx").write_bytes(export_bytes(model, shape))
    for target, reps in (("avx512-vnni", ("u8s8", "u8u8")), ("portable", ("u8s7",))):
        qm = quantize(model, QuantConfig(observer=observer, calibration=len(calib), target_isa=target), calib)
        im = to_integer(qm)
        for rep in reps:
            (folder / f"karuku_{rep}.onnx").write_bytes(export_qdq(im, representation=rep))
    np.save(folder / "calib.npy", calib.numpy())
    if test is not None:
        np.save(folder / "test_x.npy", test[0].numpy())
        np.save(folder / "test_y.npy", test[1].numpy())
    # multiply-adds per sample, so the comparison can state ops/s against the machine's peak
    return {"folder": str(folder), "input_shape": list(shape), "macs": totals(model, tuple(shape)).macs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mnist", nargs="*", default=[])
    args = ap.parse_args()
    torch.set_num_threads(2)
    index = {"speed": {}, "accuracy": {}}
    for name in ("resnet-s", "mobilenetv2-s"):
        torch.manual_seed(0)
        net = build(name, (3, 32, 32), 10).eval()
        calib = torch.randn(256, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        index["speed"][name] = write(args.out / "speed" / name, net, calib, (3, 32, 32))
    if args.mnist:
        splits = load_splits(DataConfig(name="mnist"))
        for path in args.mnist:
            net, ckpt = load_model(path)
            index["accuracy"][ckpt.spec.name] = write(args.out / "mnist" / ckpt.spec.name, net,
                                                      splits.calibration(512), tuple(ckpt.spec.input_shape),
                                                      splits.test.tensors)
    (args.out / "index.json").write_text(json.dumps(index, indent=2))


if __name__ == "__main__":
    main()
