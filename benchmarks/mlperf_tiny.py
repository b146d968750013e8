"""MLPerf Tiny models and the LeNets on the edge formats (issue 18): Cortex-M4 C with karuku's kernels vs
CMSIS-NN vs float, .tflite equality in LiteRT / TFLite Micro, LiteRT vs ONNX Runtime int8 on x86.

    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py mcu [N]     # QEMU Cortex-M4: instructions, flash, RAM
    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py tflite [--compact] [MODEL...]   # whole MNIST test set
    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py sizes [N]   # .tflite bytes vs what the weights need, N checked
    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py breakdown   # where each .tflite's bytes go
    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py compact-speed   # LiteRT (XNNPACK) default vs compact file
    OMP_NUM_THREADS=1 python benchmarks/mlperf_tiny.py depthwise [CxHxWxS...]   # one depthwise 3x3 layer on the M4
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
from karuku.deploy.tflite.export import description, to_tflite
from karuku.deploy.tflite.verify import agreement, expected, litert, run_litert, run_tflm
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


DEPTHWISE = ("64x25x5x1", "256x3x3x1", "128x6x6x1", "256x6x6x2", "32x24x24x1")  # DS-CNN's, MobileNetV1's


def depthwise(specs: tuple[str, ...] = DEPTHWISE, n: int = 4) -> None:
    """One depthwise 3×3 layer (C channels, H×W input, stride S, padding 1, BN + ReLU) as karuku's C and as CMSIS-NN's
    on QEMU Cortex-M4: instructions per inference and per output (the call's copies of input and output included)."""
    from torch import nn

    rows = ["| depthwise 3×3 (C×H×W, stride) | karuku: identical | karuku instructions | per output | CMSIS-NN | "
            "per output | karuku / CMSIS-NN |", "|" + "---|" * 7]
    for spec in specs:
        c, h, w, stride = map(int, spec.split("x"))
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(c, c, 3, stride, 1, groups=c), nn.BatchNorm2d(c), nn.ReLU()).eval()
        x = torch.randn(64 + n, c, h, w)
        im = to_integer(quantize(model, QuantConfig(), x[:64]))
        q = im.quantize_input(x[64:])
        with tempfile.TemporaryDirectory() as tmp:
            kb = toolchain.build_mcu(generate(im, "dw"), Path(tmp) / "k", gc_sections=True)
            cb = toolchain.build_mcu(generate_cmsis(im, "dw", CMSIS), Path(tmp) / "c", gc_sections=True)
            kout, kt = toolchain.run(kb, to_bytes(q))
            _, ct = toolchain.run(cb, tflite_input(im, q).view(np.uint8))
        same = int((kout == to_bytes(im.run_int(q, fast=True))).all(1).sum())
        ki, ci = (t * toolchain.INSNS_PER_TICK / n for t in (kt, ct))
        outs = int(np.prod(im.values[im.output].shape))
        rows.append(f"| {c}×{h}×{w}, {stride} | {same} / {n} | {ki:,.0f} | {ki / outs:.1f} | {ci:,.0f} | "
                    f"{ci / outs:.1f} | {ki / ci:.2f}× |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


def _needs(im) -> tuple[int, int]:
    """(int8 weights + int32 biases, what the weights need: the same + a float32 weight scale per output channel)."""
    wb = sum(t.numel() * t.element_size() for k, t in im.arrays.items() if k.endswith((".weight", ".bias")))
    channels = sum(t.numel() for k, t in im.arrays.items() if k.endswith(".bias"))
    return wb, wb + 4 * channels


def _zero_points(raw: bytes) -> int:
    """Bytes of the per-channel int64 zero-point vectors in a .tflite (each distinct one counted once): LiteRT
    refuses a quantized tensor with fewer zero points than scales, so the schema needs them."""
    import tflite

    g, seen = tflite.Model.GetRootAsModel(raw, 0).Subgraphs(0), set()
    for i in range(g.TensorsLength()):
        q = g.Tensors(i).Quantization()
        if q is not None and q.ZeroPointLength() > 1:
            seen.add((q._tab.Vector(q._tab.Offset(10)), q.ZeroPointLength()))
    return sum(4 + 8 * n for _, n in seen)


def _size_models(splits):
    models = [(n, *_tiny(n, c)) for n, c in TINY]
    for name, epochs in (("lenet5-lecun", 8), ("lenet300", 8), ("resnet-s", 1), ("mobilenetv2-s", 1)):
        model, origin = _trained(name, splits, epochs)
        im = to_integer(quantize(model, QuantConfig(observer="mse"), splits.calibration(512)))
        models.append((name, im, splits.test.tensors[0], origin))
    return models


def breakdown() -> None:
    """Where each .tflite's bytes go: the compact file as the weights' needs, the schema's zero points, the
    activations' quantization, shapes and the rest (tables, options, header); then what the default adds."""
    import copy

    from karuku.deploy.tflite.flatbuf import ALIGN, COMPACT, serialize
    from karuku.deploy.tflite.lower import lower
    from karuku.deploy.tflite.verify import probe

    rows = ["| model | compact file | int8 weights + int32 biases | float32 weight scales | int64 zero points | "
            "activation quantization | shape vectors | tensor, buffer, operator tables, options, header | "
            "default: + names | + bias scales and their tables | + 16-byte alignment | default file |",
            "|" + "---|" * 12]
    for name, im, _, _ in _size_models(load_splits(DataConfig(name="mnist", val_size=0))):
        eng, _, _ = to_tflite(im)
        g, desc = lower(eng, probe), description(eng)

        def size(graph, desc=desc, **kw):
            return len(serialize(graph, desc, **{**COMPACT, **kw}))

        small = size(g)
        bare = copy.deepcopy(g)
        for t in bare.tensors:
            if t.data is None:
                t.scale = t.zero_point = None
        act = small - size(bare)
        flat = copy.deepcopy(g)
        for t in flat.tensors:
            t.shape = []
        shapes = small - size(flat)
        wb, need = _needs(im)
        zp = _zero_points(serialize(g, desc, **COMPACT))
        names = size(g, names=True) - small
        bias = size(g, names=True, bias_quantization=True) - small - names
        align = size(g, names=True, bias_quantization=True, align=ALIGN) - small - names - bias
        rest = small - g.data_bytes() - (need - wb) - zp - act - shapes
        rows.append(f"| {name} | {small:,} | {g.data_bytes():,} | {need - wb:,} | {zp:,} | {act:,} | {shapes:,} | "
                    f"{rest:,} | {names:,} | {bias:,} | {align:,} | {small + names + bias + align:,} |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


def compact_speed(names: tuple[str, ...] = ("mobilenetv2-s", "ds-cnn", "resnet8"), rounds: int = 5) -> None:
    """LiteRT's default configuration (XNNPACK), batch 1, 1 thread: the default file against the compact one,
    best of `rounds` rounds of 20 calls on a zero input."""
    for name, im, _, _ in _size_models(load_splits(DataConfig(name="mnist", val_size=0))):
        if name not in names:
            continue
        for compact in (False, True):
            interp = litert(to_tflite(im, compact)[1], 1, "xnnpack")
            inp = interp.get_input_details()[0]
            interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.int8))
            best = float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                for _ in range(20):
                    interp.invoke()
                best = min(best, (time.perf_counter() - t0) / 20)
            print(f"{name} {'compact' if compact else 'default'}: {best * 1e6:,.0f} us", flush=True)


def sizes(check: int = 256) -> None:
    """Every model's .tflite, as written by default and with `compact`, against what its weights need and
    MLPerf's reference int8 files; each file checked byte for byte in both interpreters on `check` inputs."""
    splits = load_splits(DataConfig(name="mnist", val_size=0))
    rows = ["| model | weights | int8 weights + int32 biases | + a float32 weight scale per channel: what the "
            "weights need | .tflite bytes (default) | .tflite bytes (compact) | of which per-channel int64 zero "
            "points | compact without them | MLPerf v1.3 reference int8 .tflite | LiteRT (reference): identical, "
            "default / compact | TFLite Micro: identical, default / compact |", "|" + "---|" * 11]
    for name, im, x, origin in _size_models(splits):
        (eng, raw, _), (_, small, _) = to_tflite(im), to_tflite(im, compact=True)
        res, cres = agreement(eng, raw, x[:check]), agreement(eng, small, x[:check])
        wb, need = _needs(im)
        zp = _zero_points(small)
        ref = f"{ANCHORS[name][1]:,} ({len(small) / ANCHORS[name][1] - 1:+.1%})" if name in ANCHORS else "—"
        rows.append(f"| {name} | {origin} | {wb:,} | {need:,} | {len(raw):,} ({len(raw) / need - 1:+.1%}) | "
                    f"{len(small):,} ({len(small) / need - 1:+.1%}) | {zp:,} | {(len(small) - zp) / need - 1:+.1%} | "
                    f"{ref} | {res['litert']} / {cres['litert']} of {res['inputs']} | "
                    f"{res['tflm']} / {cres['tflm']} of {res['tflm_inputs']} |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


def _identical(name: str, kind: str, raw: bytes, xi: np.ndarray, ref: np.ndarray, chunk: int = 500) -> int:
    """Rows of `xi` whose output equals `ref` in LiteRT ("reference" or "xnnpack" kernels) or TFLite Micro ("tflm"),
    a progress line per chunk (a whole-set run on a loaded machine takes an hour)."""
    same, t0 = 0, time.perf_counter()
    for i in range(0, len(xi), chunk):
        xs = xi[i:i + chunk]
        out = run_tflm(raw, xs) if kind == "tflm" else run_litert(raw, xs, kind)
        same += int((out == ref[i:i + chunk]).all(1).sum())
        print(f"  {name} {kind}: {same:,} / {i + len(xs):,} identical ({time.perf_counter() - t0:.0f} s)", flush=True)
    return same


def tflite(only: tuple[str, ...] = (), compact: bool = False) -> None:
    splits = load_splits(DataConfig(name="mnist", val_size=0))
    rows = ["| model | weights | .tflite bytes | weights + biases | + a float32 weight scale per channel | "
            "LiteRT (reference kernels): identical | TFLite Micro: identical | LiteRT XNNPACK: identical | "
            "engine top-1 |", "|" + "---|" * 9]
    for name, epochs in (("lenet5-lecun", 8), ("lenet300", 8), ("resnet-s", 1), ("mobilenetv2-s", 1)):
        if only and name not in only:
            continue
        model, origin = _trained(name, splits, epochs)
        im = to_integer(quantize(model, QuantConfig(observer="mse"), splits.calibration(512)))
        eng, raw, _ = to_tflite(im, compact)
        x, y = splits.test.tensors
        q = eng.quantize_input(x)
        xi, ref = tflite_input(eng, q), expected(eng, q)
        t0 = time.perf_counter()
        lit, tflm, xnn = (_identical(name, kind, raw, xi, ref) for kind in ("reference", "tflm", "xnnpack"))
        acc = float((torch.from_numpy(ref.astype(np.int32)).argmax(1) == y).float().mean())
        wb, scaled = _needs(im)
        rows.append(f"| {name} | {origin} | {len(raw):,} | {wb:,} ({len(raw) / wb - 1:+.1%}) | "
                    f"{scaled:,} ({len(raw) / scaled - 1:+.1%}) | {lit:,} / {len(x):,} | "
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
        tflite(tuple(a for a in sys.argv[2:] if a != "--compact"), "--compact" in sys.argv)
    elif what == "depthwise":
        depthwise(tuple(sys.argv[2:]) or DEPTHWISE)
    elif what == "compact-speed":
        compact_speed()
    elif what == "breakdown":
        breakdown()
    elif what == "sizes":
        sizes(int(sys.argv[2]) if len(sys.argv) > 2 else 256)
    else:
        x86()
