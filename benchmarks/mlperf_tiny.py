"""MLPerf Tiny models and the LeNets on the edge formats (issue 18): Cortex-M4 C with karuku's kernels vs
CMSIS-NN vs float, .tflite equality in LiteRT / TFLite Micro, LiteRT vs ONNX Runtime int8 on x86.

    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py mcu [N]     # QEMU Cortex-M4: instructions, flash, RAM
    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py tflite [MODEL...]   # whole MNIST test set, both interpreters
    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py x86         # LiteRT int8 vs ORT int8, batch 1 and 64

CMSIS-NN comes from $KARUKU_CMSIS_NN or ../shared/vendor/CMSIS-NN. Prints Markdown for docs/bench/edge.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from karuku.data import DataConfig, load_splits
from karuku.deploy.c import toolchain
from karuku.deploy.c.cmsis import generate_cmsis
from karuku.deploy.c.codegen import generate
from karuku.deploy.c.project import to_bytes
from karuku.deploy.tflite.export import to_tflite
from karuku.deploy.tflite.verify import expected, litert, run_litert, run_tflm
from karuku.deploy.tflite.verify import to_tflite as tflite_input
from karuku.measure.onnx_runtime import session
from karuku.models import build
from karuku.models.mlperf_tiny import REFERENCE_SHAPES
from karuku.quant import QuantConfig, export_qdq, quantize, to_integer

sys.path.insert(0, str(Path(__file__).parent))
from edge import _trained  # noqa: E402  (the LeNets trained on MNIST, cached in runs/bench)

ROOT = Path(__file__).resolve().parents[1]
CMSIS = Path(os.environ.get("KARUKU_CMSIS_NN", ROOT.parent / "shared/vendor/CMSIS-NN"))
if not CMSIS.is_dir():
    CMSIS = Path("/work/shared/vendor/CMSIS-NN")
TINY = (("ds-cnn", 12), ("resnet8", 10), ("fc-autoencoder", 640), ("mobilenetv1-025", 2))
# MLPerf Tiny v1.3 closed, STM32L4R5 (Cortex-M4, 120 MHz, X-CUBE-AI): latency -> cycles; reference int8 sizes
ANCHORS = {"ds-cnn": (43.4, 53_936), "resnet8": (165.7, 98_496), "fc-autoencoder": (4.79, 276_976)}


def _tiny(name: str, classes: int):
    """An untrained MLPerf Tiny model quantized on 256 random inputs (their data sets are not obtainable here)."""
    torch.manual_seed(0)
    shape = REFERENCE_SHAPES[name]
    model = build(name, shape, classes).eval()
    x = torch.randn(320, *shape)
    return to_integer(quantize(model, QuantConfig(), x[:256])), x[256:], "untrained, random calibration"


def _lenet(name: str, splits):
    model, origin = _trained(name, splits, 8)
    im = to_integer(quantize(model, QuantConfig(observer="mse"), splits.calibration(512)))
    return im, splits.test.tensors[0], origin


def _models(n_lenet: int):
    splits = load_splits(DataConfig(name="mnist", val_size=0))
    for name, classes in TINY:
        yield name, *_tiny(name, classes)
    for name in ("lenet5-lecun", "lenet300"):
        im, x, origin = _lenet(name, splits)
        yield name, im, x[:n_lenet], origin


def mcu(n: int = 20) -> None:
    rows = ["| model | weights | karuku C: identical | CMSIS-NN C: identical | instructions / inference: karuku | "
            "CMSIS-NN | karuku / CMSIS-NN | float C | flash karuku | flash CMSIS-NN | karuku / CMSIS-NN | "
            "flash float | RAM karuku | RAM CMSIS-NN | RAM float | MLPerf v1.3 anchor (cycles) |",
            "|" + "---|" * 16]
    for name, im, x, origin in _models(n):
        x = x[:n]
        q = im.quantize_input(x)
        with tempfile.TemporaryDirectory() as tmp:
            kar = generate(im, name)
            cms = generate_cmsis(im, name, CMSIS)
            kb = toolchain.build_mcu(kar, Path(tmp) / "k", gc_sections=True)
            cb = toolchain.build_mcu(cms, Path(tmp) / "c", gc_sections=True)
            fb = toolchain.build_mcu(kar, Path(tmp) / "f", float_build=True, gc_sections=True)
            kout, kt = toolchain.run(kb, to_bytes(q), timeout=3600)
            cout, ct = toolchain.run(cb, tflite_input(im, q).view(np.uint8), timeout=3600)
            _, ft = toolchain.run(fb, x.numpy(), timeout=3600)
            kmem = toolchain.memory_from_map(kb.map_file, (f"m4_{kar.name}.o", "m4_karuku_kernels.o"))
            cmem = toolchain.memory_from_map(cb.map_file, (f"m4_{cms.name}.o", "m4_karuku_cmsis.o", "libcmsisnn.a("))
            fmem = toolchain.memory_from_map(fb.map_file, (f"m4_{kar.name}_float.o", "m4_karuku_float_kernels.o"))
        k_same = int((kout == to_bytes(im.run_int(q, fast=True))).all(1).sum())
        c_same = int((cout == expected(im, q).view(np.uint8)).all(1).sum())
        ki, ci, fi = (t * toolchain.INSNS_PER_TICK / len(x) for t in (kt, ct, ft))
        anchor = ANCHORS.get(name)
        rows.append(f"| {name} | {origin} | {k_same} / {len(x)} | {c_same} / {len(x)} | {ki:,.0f} | {ci:,.0f} | "
                    f"**{ki / ci:.2f}×** | {fi:,.0f} | {kmem['flash_bytes']:,} | {cmem['flash_bytes']:,} | "
                    f"{kmem['flash_bytes'] / cmem['flash_bytes']:.2f}× | {fmem['flash_bytes']:,} | "
                    f"{kmem['ram_bytes']:,} | {cmem['ram_bytes']:,} | {fmem['ram_bytes']:,} | "
                    f"{f'{anchor[0] * 120e3:,.0f}' if anchor else '—'} |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


def tflite(only: tuple[str, ...] = ()) -> None:
    splits = load_splits(DataConfig(name="mnist", val_size=0))
    rows = ["| model | weights | .tflite bytes | weights + biases | int8 params + per-channel scales / zero points | "
            "LiteRT (reference kernels): identical | TFLite Micro: identical | LiteRT XNNPACK: identical | "
            "engine top-1 |", "|" + "---|" * 9]
    for name, epochs in (("lenet5-lecun", 8), ("lenet300", 8), ("resnet-s", 1), ("mobilenetv2-s", 1)):
        if only and name not in only:
            continue
        model, origin = _trained(name, splits, epochs)
        im = to_integer(quantize(model, QuantConfig(observer="mse"), splits.calibration(512)))
        eng, raw, _ = to_tflite(im)
        x, y = splits.test.tensors
        q = eng.quantize_input(x)
        xi, ref = tflite_input(eng, q), expected(eng, q)
        t0 = time.perf_counter()
        lit = int((run_litert(raw, xi) == ref).all(1).sum())
        tflm = int((run_tflm(raw, xi) == ref).all(1).sum())
        xnn = int((run_litert(raw, xi, "xnnpack") == ref).all(1).sum())
        acc = float((torch.from_numpy(ref.astype(np.int32)).argmax(1) == y).float().mean())
        wb = sum(t.numel() * t.element_size() for k, t in im.arrays.items() if k.endswith((".weight", ".bias")))
        channels = sum(t.numel() for k, t in im.arrays.items() if k.endswith(".bias"))
        rows.append(f"| {name} | {origin} | {len(raw):,} | {wb:,} ({len(raw) / wb - 1:+.1%}) | "
                    f"{wb + 24 * channels:,} ({len(raw) / (wb + 24 * channels) - 1:+.1%}) | {lit:,} / {len(x):,} | "
                    f"{tflm:,} / {len(x):,} | {xnn:,} / {len(x):,} | {100 * acc:.2f} % |")
        print(rows[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\n".join(rows))


def _interleaved(fns, runs: int) -> list[float]:
    """Best time (s) of each function over `runs` rounds that call them in turn: on a shared, loaded machine the
    two engines then see the same conditions, and the best run is the least disturbed one."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def x86(runs: int = 50) -> None:
    rows = ["| model | .tflite bytes | LiteRT b1 /s | ORT b1 /s | LiteRT / ORT b1 | LiteRT b64 /s | ORT b64 /s | "
            "LiteRT / ORT b64 | LiteRT XNNPACK identical to the engine |", "|" + "---|" * 9]
    models = [(n, *_tiny(n, c)[:2]) for n, c in TINY]
    splits = load_splits(DataConfig(name="mnist", val_size=0))
    models += [(n, *_lenet(n, splits)[:2]) for n in ("lenet5-lecun", "lenet300")]
    for name, im, x in models:
        eng, raw, _ = to_tflite(im)
        ort = session(export_qdq(im), threads=1)
        cells = []
        for batch in (1, 64):
            xb = x[:batch]
            lit = litert(raw, batch, "xnnpack", threads=1)
            lit.set_tensor(lit.get_input_details()[0]["index"], tflite_input(eng, eng.quantize_input(xb)))
            feed = {ort.get_inputs()[0].name: xb.numpy()}
            tl, to = _interleaved([lit.invoke, lambda s=ort, f=feed: s.run(None, f)], runs)
            cells += [batch / tl, batch / to]
        q = eng.quantize_input(x[:64])
        same = int((run_litert(raw, tflite_input(eng, q), "xnnpack") == expected(eng, q)).all(1).sum())
        rows.append(f"| {name} | {len(raw):,} | {cells[0]:,.0f} | {cells[1]:,.0f} | {cells[0] / cells[1]:.2f}× | "
                    f"{cells[2]:,.0f} | {cells[3]:,.0f} | {cells[2] / cells[3]:.2f}× | {same} / 64 |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "mcu":
        mcu(int(sys.argv[2]) if len(sys.argv) > 2 else 20)
    elif what == "tflite":
        tflite(tuple(sys.argv[2:]))
    else:
        x86()
