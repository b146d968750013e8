"""Int8 on every CPU: what the portable representation costs in accuracy, and whose answers each file gives.

    .venv/bin/python benchmarks/isa_int8.py CKPT [CKPT ...] --out results.json [--emulate 1000]

For each float MNIST checkpoint: quantized for a VNNI CPU (8-bit weights) and for `target_isa="portable"` (7-bit
weights; exact on every CPU), both with observer mse, 512 calibration images, per-channel weights, uint8
activations. Top-1 on the 10,000 test images of fp32, of both integer engines, and the agreement of each ONNX
file (u8s8 and u8u8 of the 8-bit model, u8s7 of the 7-bit one) with its engine when ONNX Runtime runs it on this
CPU and — with `--emulate N` — on the first N test images under `qemu-x86_64 -cpu Haswell` (an AVX2 CPU
without VNNI: ONNX Runtime's saturating kernels). Prints one markdown row per checkpoint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from karuku.cpu import detect
from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import load_model
from karuku.measure.onnx_runtime import session
from karuku.quant import QuantConfig, quantize, to_integer
from karuku.quant.onnx_export import export_qdq
from karuku.training import predict

HELPER = Path(__file__).resolve().parents[1] / "tests" / "helpers" / "ort_outputs.py"


def agreement(im, logits: np.ndarray, x: torch.Tensor) -> tuple[float, int]:
    """(top-1 agreement with the engine, max |difference| in output steps)."""
    out = im.values[im.output]
    ref = torch.cat([im.run_int(im.quantize_input(x[i:i + 256]), fast=True) for i in range(0, len(x), 256)]).numpy()
    got = np.rint(logits / out.scale).astype(np.int64) + out.zero_point
    return float(np.mean(got.argmax(1) == ref.argmax(1))), int(np.abs(got - ref).max())


def emulated(files: dict[str, bytes], x: np.ndarray) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", x)
        paths = []
        for i, raw in enumerate(files.values()):
            paths.append(tmp / f"{i}.onnx")
            paths[-1].write_bytes(raw)
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1",
               "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(["qemu-x86_64", "-cpu", "Haswell", sys.executable, str(HELPER), str(tmp / "o.npz"),
                               str(tmp / "x.npy"), *map(str, paths)], capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        assert proc.stdout.strip().splitlines()[-1] == "avx2"
        saved = np.load(tmp / "o.npz")
        return {k: saved[f"{i}/logits"] for i, k in enumerate(files)}


def run(path: str, emulate: int) -> dict:
    model, ckpt = load_model(path)
    splits = load_splits(DataConfig(name="mnist"))
    x, y = splits.test.tensors
    calib = splits.calibration(512)
    res = {"model": ckpt.spec.name, "fp32": float((predict(model, x).argmax(1) == y).float().mean())}
    files, ims = {}, {}
    for target, reps in (("avx512-vnni", ("u8s8", "u8u8")), ("portable", ("u8s7",))):
        im = to_integer(quantize(model, QuantConfig(observer="mse", calibration=512, target_isa=target), calib))
        res[f"engine_{target}"] = float((im.run(x, fast=True).argmax(1) == y).float().mean())
        for rep in reps:
            files[rep], ims[rep] = export_qdq(im, representation=rep), im
    for rep, raw in files.items():
        sess = session(raw, threads=1)
        logits = np.concatenate([sess.run(None, {"input": x[i:i + 1000].numpy()})[0] for i in range(0, len(x), 1000)])
        res[f"here_{rep}"] = agreement(ims[rep], logits, x)
    if emulate:
        xe = x[:emulate]
        for rep, logits in emulated(files, xe.numpy()).items():
            res[f"avx2_{rep}"] = agreement(ims[rep], logits, xe)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--emulate", type=int, default=0, help="also run the files on N test images on emulated AVX2")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {"cpu": detect().summary(), "rows": []}
    print("| model | fp32 | engine 8-bit | engine 7-bit | 7-bit − 8-bit | here u8s8 / u8u8 / u8s7 | emulated AVX2 "
          "u8s8 / u8u8 / u8s7 (top-1 agreement, max steps) |")
    for path in args.checkpoints:
        r = run(path, args.emulate)
        results["rows"].append(r)
        args.out.write_text(json.dumps(results, indent=2))

        def fmt(k: str, r: dict = r) -> str:
            return f"{100 * r[k][0]:.2f} % ({r[k][1]})" if k in r else "—"

        print(f"| {r['model']} | {100 * r['fp32']:.2f} | {100 * r['engine_avx512-vnni']:.2f} | "
              f"{100 * r['engine_portable']:.2f} | {100 * (r['engine_portable'] - r['engine_avx512-vnni']):+.2f} pt | "
              f"{' / '.join(fmt('here_' + k) for k in ('u8s8', 'u8u8', 'u8s7'))} | "
              f"{' / '.join(fmt('avx2_' + k) for k in ('u8s8', 'u8u8', 'u8s7'))} |", flush=True)


if __name__ == "__main__":
    main()
