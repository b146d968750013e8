"""Edge benchmarks (issue 9): int8 C on an emulated Cortex-M4, and ONNX Runtime int8 vs fp32.

    OMP_NUM_THREADS=1 python benchmarks/edge.py mcu [N_MCU]   # lenet5-lecun and lenet300 on real MNIST
    python benchmarks/edge.py onnx                             # resnet-s / mobilenetv2-s exports, 3×32×32

Prints Markdown blocks for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from karuku.data import DataConfig, load_splits
from karuku.deploy.c import toolchain
from karuku.deploy.c.codegen import generate
from karuku.deploy.c.project import to_bytes
from karuku.io.checkpoint import load_model
from karuku.measure.onnx_runtime import export_bytes, session
from karuku.measure.timing import time_call
from karuku.models import build
from karuku.quant import QuantConfig, export_qdq, quantize, to_integer
from karuku.training import TrainConfig, score, train

OUT = Path("runs/bench/edge")


def _trained(name: str, splits, epochs: int):
    ckpt = Path("runs/bench") / f"{name}.safetensors"
    if ckpt.exists():
        model, _ = load_model(ckpt)
        return model, f"runs/bench/{name}.safetensors"
    from karuku.io.checkpoint import save_checkpoint
    from karuku.models import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(name=name, input_shape=splits.input_shape, num_classes=10)
    model = spec.build()
    train(model, splits, TrainConfig(epochs=epochs, lr=0.05), verbose=False)
    save_checkpoint(ckpt, model, spec, {"data": {"name": "mnist"}})
    return model.eval(), f"trained here, {epochs} epochs SGD lr 0.05"


def mcu(n_mcu: int = 1000) -> None:
    splits = load_splits(DataConfig(name="mnist", val_size=0))
    rows = ["| model | float acc. | int8 engine acc. | C host: identical bytes | Cortex-M4 (QEMU): identical bytes "
            "| flash (model + kernels) | RAM (arena + scratch) | instructions / inference int8 | float C | ratio "
            "| float C, -ffp-contract=fast | ratio |",
            "|" + "---|" * 12]
    for name, epochs in (("lenet5-lecun", 8), ("lenet300", 8)):
        model, origin = _trained(name, splits, epochs)
        qm = quantize(model, QuantConfig(observer="mse"), splits.calibration(512))
        im = to_integer(qm)
        x, y = splits.test.tensors
        q = im.quantize_input(x)
        ref = to_bytes(im.run_int(q, fast=True))
        int_acc = float((im.dequantize_output(im.run_int(q, fast=True)).argmax(1) == y).float().mean())
        proj = generate(im, name)
        with tempfile.TemporaryDirectory() as tmp:
            host = toolchain.build_host(proj, Path(tmp) / "host")
            out, _ = toolchain.run(host, to_bytes(q))
            host_same = int((out == ref).all(1).sum())
            m4 = toolchain.build_mcu(proj, Path(tmp) / "m4")
            t0 = time.perf_counter()
            mout, ticks = toolchain.run(m4, to_bytes(q[:n_mcu]), timeout=3600)
            qemu_s = time.perf_counter() - t0
            m4_same = int((mout == ref[:n_mcu]).all(1).sum())
            flt = toolchain.build_mcu(proj, Path(tmp) / "m4f", float_build=True)
            fout, fticks = toolchain.run(flt, x[:200].numpy(), timeout=3600)
            fma = toolchain.build_mcu(proj, Path(tmp) / "m4fma", float_build=True,
                                      extra_flags=("-ffp-contract=fast",))
            _, mticks = toolchain.run(fma, x[:200].numpy(), timeout=3600)
            mem = toolchain.memory_from_map(m4.map_file, (f"m4_{proj.name}.o", "m4_karuku_kernels.o"))
            fmem = toolchain.memory_from_map(flt.map_file, (f"m4_{proj.name}_float.o", "m4_karuku_float_kernels.o"))
        insn = ticks * toolchain.INSNS_PER_TICK / n_mcu
        finsn = fticks * toolchain.INSNS_PER_TICK / 200
        minsn = mticks * toolchain.INSNS_PER_TICK / 200
        rows.append(f"| {name} ({origin}) | {100 * score(model, splits.test).accuracy:.2f} % | {100 * int_acc:.2f} % | "
                    f"{host_same:,} / {len(q):,} | {m4_same:,} / {n_mcu:,} ({qemu_s:.0f} s in QEMU) | "
                    f"{mem['flash_bytes']:,} B (float build {fmem['flash_bytes']:,} B) | {mem['ram_bytes']:,} B "
                    f"(float {fmem['ram_bytes']:,} B) | {insn:,.0f} | {finsn:,.0f} | {finsn / insn:.2f}× | "
                    f"{minsn:,.0f} | {minsn / insn:.2f}× |")
    print("\n".join(rows))
    print("\nInstructions: QEMU -icount shift=0 (1 instruction = 1 ns of virtual time), read through the mps2-an386 "
          "25 MHz timer around each inference (resolution 40 instructions). Flash and RAM: the model's and the "
          "kernels' sections in the linker map (text + rodata + data; data + bss). gcc "
          f"{'-O2'}, arm-none-eabi-gcc -O2 -mcpu=cortex-m4 -mfloat-abi=hard.")


def onnx(runs: int = 30) -> None:
    rows = ["| model (3×32×32, random weights) | fp32 ONNX b64 /s | int8 QDQ ONNX b64 /s | ratio |", "|---" * 4 + "|"]
    for name in ("resnet-s", "mobilenetv2-s"):
        torch.manual_seed(0)
        model = build(name, (3, 32, 32), 10).eval()
        x = torch.randn(512, 3, 32, 32)
        qm = quantize(model, QuantConfig(), x)
        fp32 = session(export_bytes(model, (3, 32, 32)), threads=2)
        int8 = session(export_qdq(qm), threads=2)
        batch = x[:64].numpy()
        tf = time_call(lambda s=fp32, b=batch: s.run(None, {"input": b}), runs=runs)
        ti = time_call(lambda s=int8, b=batch: s.run(None, {s.get_inputs()[0].name: b}), runs=runs)
        rows.append(f"| {name} | {tf.throughput(64):,.0f} | {ti.throughput(64):,.0f} | "
                    f"{tf.median_ms / ti.median_ms:.2f}× |")
    print("\n".join(rows))


if __name__ == "__main__":
    torch.set_num_threads(1)  # training ran with 1 thread; the ONNX sessions set their own
    if sys.argv[1] == "mcu":
        mcu(int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    else:
        onnx()
