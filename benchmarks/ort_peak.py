"""This machine's ONNX Runtime ceilings: fp32 MatMul, uint8 × int8 and uint8 × uint8 QLinearMatMul throughput at N³.

    .venv/bin/python benchmarks/ort_peak.py --n 1024 --threads 2
    .venv/bin/python benchmarks/ort_peak.py --instructions
    benchmarks/as_avx2 .venv/bin/python benchmarks/ort_peak.py   # the AVX2 kernels, timed (CPUID-faulting CPUs)
    .venv/bin/python benchmarks/ort_peak.py --transformer --threads 1   # a sentence encoder's products

The "fraction of peak" figures of the quantization benchmarks divide a model's ops per second by
these (MACHINE.md's were measured on a different CPU). One op = one multiply or one add, so a
matrix product of N³ multiply-adds is 2·N³ ops. Median of --runs timed runs after warm-up.

`--instructions` measures the ceiling where no timing is possible — the AVX2 kernels, run under valgrind
(its CPU has AVX2 but no AVX-512 / VNNI): ops per instruction of a large fp32 and int8 convolution (3×3,
256 → 256 channels on 16×16, ONNX Runtime's QLinearConv kernels, the ones a CNN's int8 file runs) and of
QLinearMatMul. A model's ops per instruction (benchmarks/quant_compare.py --instructions) over the conv
ceiling is its fraction of it. Instructions are not cycles: the figure says how much work per instruction
the kernels reach, not time.

`--transformer` times the float-in, float-out products an int8 transformer file can use, on the shape of
all-MiniLM-L6-v2's FFN up-projection at batch 32 × 128 (4,096 × 384 by 384 × 1,536): fp32 MatMul, ONNX Runtime's
DynamicQuantizeMatMul with 8- and 7-bit per-channel weights (what karuku's dynamic file runs), MatMulNBits
(block-wise 8- and 4-bit weights, accuracy levels 0 and 4), and beside them eager torch's fp32 Linear and
torch.ao's dynamic int8 Linear (fbgemm), each with its largest error against the float product (relative to the
product's largest value). Then a static file's activation quantization of a 4,096 × 384
input under SmoothQuant: Mul by 1/s then per-tensor QuantizeLinear (karuku's static file), against one per-axis
QuantizeLinear of scale S·s (the same integers, one node fewer), and per-tensor QuantizeLinear alone. Interleaved
rounds, medians.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def matmul_model(n: int, int8: bool, u8_weights: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    if not int8:
        w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        graph = helper.make_graph([node], "mm", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [w])
    else:
        w = rng.integers(-127, 128, (n, n), dtype=np.int8)
        # u8_weights: the u8u8 representation (w + 128, zero point 128), exact on CPUs without VNNI
        wq = (w.astype(np.int16) + 128).astype(np.uint8) if u8_weights else w
        inits = [numpy_helper.from_array(wq, "w"),
                 numpy_helper.from_array(np.array(0.02, np.float32), "sa"),
                 numpy_helper.from_array(np.array(128, np.uint8), "za"),
                 numpy_helper.from_array(np.array(0.01, np.float32), "sw"),
                 numpy_helper.from_array(np.array(128 if u8_weights else 0, wq.dtype), "zw"),
                 numpy_helper.from_array(np.array(5.0, np.float32), "sy"),
                 numpy_helper.from_array(np.array(128, np.uint8), "zy")]
        node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sw", "zw", "sy", "zy"], ["y"])
        graph = helper.make_graph([node], "qmm", [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
                                  [helper.make_tensor_value_info("y", TensorProto.UINT8, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def conv_model(c: int, hw: int, int8: bool, u8_weights: bool = False, batch: int = 1) -> bytes:
    """A 3×3 convolution, c → c channels on batch × hw × hw, padding 1: fp32 Conv or QLinearConv with
    per-channel int8 weights within ±63 (karuku's u8s7 on AVX2; u8_weights: u8u8)."""
    rng = np.random.default_rng(0)
    shape = [batch, c, hw, hw]
    attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    if not int8:
        w = numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32), "w")
        node = helper.make_node("Conv", ["a", "w"], ["y"], **attrs)
        graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("a", TensorProto.FLOAT, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], [w])
    else:
        w = rng.integers(-63, 64, (c, c, 3, 3), dtype=np.int8)
        wq = (w.astype(np.int16) + 128).astype(np.uint8) if u8_weights else w
        inits = [numpy_helper.from_array(wq, "w"),
                 numpy_helper.from_array(np.array(0.02, np.float32), "sa"),
                 numpy_helper.from_array(np.array(128, np.uint8), "za"),
                 numpy_helper.from_array(np.full(c, 0.01, np.float32), "sw"),
                 numpy_helper.from_array(np.full(c, 128 if u8_weights else 0, wq.dtype), "zw"),
                 numpy_helper.from_array(np.array(20.0, np.float32), "sy"),
                 numpy_helper.from_array(np.array(128, np.uint8), "zy")]
        node = helper.make_node("QLinearConv", ["a", "sa", "za", "w", "sw", "zw", "sy", "zy"], ["y"], **attrs)
        graph = helper.make_graph([node], "qconv", [helper.make_tensor_value_info("a", TensorProto.UINT8, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.UINT8, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def instructions(raw: bytes, runs: int = 2) -> float:
    """Instructions per run of the ONNX model `raw` under valgrind's callgrind, only the runs counted."""
    import tempfile
    from pathlib import Path

    from valgrind_count import instructions as count

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        path.write_bytes(raw)
        return count(path, 1, runs)


def ops_per_instruction(c: int = 256, hw: int = 16, n: int = 512, only_wide: bool = False) -> dict[str, float]:
    conv_ops, mm_ops = 2 * c * c * 9 * hw * hw, 2 * n ** 3
    # many rows (batch 8 of 32 × 32, 64 channels: resnet-s's widest stage at batch 8): the kernels' best case
    wide = {"QLinearConv u8 x s7, 64 ch, 8 x 32 x 32": 2 * 64 * 64 * 9 * 32 * 32 * 8
            / instructions(conv_model(64, 32, True, batch=8))}
    if only_wide:
        return wide
    return {**wide,"fp32 Conv": conv_ops / instructions(conv_model(c, hw, False)),
            "QLinearConv u8 x s7": conv_ops / instructions(conv_model(c, hw, True)),
            "QLinearConv u8 x u8": conv_ops / instructions(conv_model(c, hw, True, True)),
            "fp32 MatMul": mm_ops / instructions(matmul_model(n, False)),
            "QLinearMatMul u8 x s8": mm_ops / instructions(matmul_model(n, True)),
            "QLinearMatMul u8 x u8": mm_ops / instructions(matmul_model(n, True, True))}


def timed_gops(raw: bytes, shape: list[int], int8: bool, ops: int, threads: int, runs: int) -> float:
    """Median ops per second (in G) of the one-node model `raw` on input `shape`, after warm-up."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, shape, dtype=np.uint8) if int8 else rng.standard_normal(shape).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"a": a})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"a": a})
        times.append(time.perf_counter() - t)
    return ops / float(np.median(times)) / 1e9


def gops(n: int, int8: bool, threads: int, runs: int, u8_weights: bool = False) -> float:
    return timed_gops(matmul_model(n, int8, u8_weights), [n, n], int8, 2 * n ** 3, threads, runs)


def conv_gops(threads: int, runs: int) -> dict[str, float]:
    """The convolution ceilings a CNN's int8 file meets (the shapes of --instructions), timed."""
    out = {}
    for name, c, hw, batch in (("256 ch, 16 x 16", 256, 16, 1), ("64 ch, 8 x 32 x 32", 64, 32, 8)):
        ops, shape = 2 * c * c * 9 * hw * hw * batch, [batch, c, hw, hw]
        out[f"fp32 Conv {name} GFLOP/s"] = timed_gops(conv_model(c, hw, False, batch=batch), shape, False, ops,
                                                      threads, runs)
        out[f"QLinearConv u8 x s7 {name} GOPS"] = timed_gops(conv_model(c, hw, True, batch=batch), shape, True,
                                                            ops, threads, runs)
        out[f"QLinearConv u8 x u8 {name} GOPS"] = timed_gops(conv_model(c, hw, True, True, batch=batch), shape,
                                                            True, ops, threads, runs)
    return {k: round(v, 1) for k, v in out.items()}


def _products(m: int, k: int, n: int) -> tuple[np.ndarray, dict[str, bytes]]:
    """One-node models y = x @ w of x (m, k) for each product kind; w seeded, ~N(0, 0.05)."""
    from onnx import TensorProto as T

    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32) * 0.05

    def model(node, inits):
        g = helper.make_graph([node], "p", [helper.make_tensor_value_info("a", T.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [m, n])], inits)
        mo = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
        mo.ir_version = 10
        return mo.SerializeToString()

    out = {"fp32 MatMul": model(helper.make_node("MatMul", ["a", "w"], ["y"]), [numpy_helper.from_array(w, "w")])}
    for bits in (8, 7):
        scale = (np.abs(w).max(0) / (2 ** (bits - 1) - 1)).astype(np.float32)
        q = np.round(w / scale).astype(np.int8)
        out[f"DynamicQuantizeMatMul {bits}-bit"] = model(
            helper.make_node("DynamicQuantizeMatMul", ["a", "w", "s"], ["y"], domain="com.microsoft"),
            [numpy_helper.from_array(q, "w"), numpy_helper.from_array(scale, "s")])
    for bits in (8, 4):
        for block in (32, 128):
            blocks = w.T.reshape(n, k // block, block)
            scale = np.abs(blocks).max(-1) / (2 ** (bits - 1) - 1)
            # unsigned with the default zero point 2^(bits-1); 4-bit values two to a byte, low nibble first
            q = (np.round(blocks / scale[..., None]) + 2 ** (bits - 1)).astype(np.uint8)
            if bits == 4:
                q = q[..., 0::2] | (q[..., 1::2] << 4)
            for level in (0, 4):
                node = helper.make_node("MatMulNBits", ["a", "w", "s"], ["y"], domain="com.microsoft", K=k, N=n,
                                        bits=bits, block_size=block, accuracy_level=level)
                out[f"MatMulNBits {bits}-bit, block {block}, accuracy level {level}"] = model(
                    node, [numpy_helper.from_array(q, "w"), numpy_helper.from_array(
                        scale.reshape(-1).astype(np.float32), "s")])
    return w, out


def _activation_quantizers(m: int, k: int) -> dict[str, bytes]:
    """x (m, k) float → uint8 three ways: SmoothQuant's Mul then per-tensor QuantizeLinear, per-axis QuantizeLinear
    (scale S·s: the same integers but for ties), per-tensor QuantizeLinear alone."""
    from onnx import TensorProto as T

    s = (np.random.default_rng(2).random(k) + 0.5).astype(np.float32)

    def model(nodes, inits):
        g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("a", T.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", T.UINT8, [m, k])], inits)
        mo = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
        mo.ir_version = 10
        return mo.SerializeToString()

    scale, zero = numpy_helper.from_array(np.array(0.05, np.float32), "S"), numpy_helper.from_array(
        np.array(128, np.uint8), "z")
    return {
        "Mul 1/s + QuantizeLinear per tensor": model(
            [helper.make_node("Mul", ["a", "r"], ["t"]), helper.make_node("QuantizeLinear", ["t", "S", "z"], ["y"])],
            [numpy_helper.from_array(1 / s, "r"), scale, zero]),
        "QuantizeLinear per axis (scale S·s)": model(
            [helper.make_node("QuantizeLinear", ["a", "S", "z"], ["y"], axis=1)],
            [numpy_helper.from_array((0.05 * s).astype(np.float32), "S"),
             numpy_helper.from_array(np.full(k, 128, np.uint8), "z")]),
        "QuantizeLinear per tensor alone": model([helper.make_node("QuantizeLinear", ["a", "S", "z"], ["y"])],
                                                 [scale, zero]),
    }


class _Eager:
    """A torch module behind an ONNX Runtime session's `run`, to time it in the same rounds."""

    def __init__(self, module, threads: int):
        import torch

        self.module, self.threads, self.torch = module.eval(), threads, torch

    def run(self, _outputs, feed: dict) -> list[np.ndarray]:
        self.torch.set_num_threads(self.threads)
        with self.torch.inference_mode():
            return [self.module(self.torch.from_numpy(feed["a"])).numpy()]


def _torch_products(w: np.ndarray, threads: int) -> dict:
    """The same product in eager torch: fp32 Linear, and torch.ao's dynamic int8 Linear (fbgemm: activations
    quantized per tensor at run time, per-tensor int8 weights) — what torch.ao.quantize_dynamic makes of a model."""
    import warnings

    import torch

    lin = torch.nn.Linear(*w.shape, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.T.copy()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
    return {"torch fp32 Linear": _Eager(lin, threads), "torch.ao dynamic int8 Linear (fbgemm)": _Eager(q, threads)}


def _interleaved_ms(sessions: dict, a: np.ndarray, rounds: int) -> dict[str, float]:
    """Median ms of each session on input `a`, the sessions run in turn each round."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"a": a})
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def transformer_products(threads: int, rounds: int, m: int = 4096, k: int = 384, n: int = 1536) -> dict:
    w, models = _products(m, k, n)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads

    def sessions(raws: dict[str, bytes]) -> dict:
        return {name: ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"]) for name, raw in raws.items()}

    products = {**sessions(models), **_torch_products(w, threads)}
    a = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    ref = a @ w
    err = {name: float(np.abs(s.run(None, {"a": a})[0] - ref).max() / np.abs(ref).max())
           for name, s in products.items()}
    ms = _interleaved_ms(products, a, rounds)
    return {"products": {name: {"ms": round(t, 2), "vs fp32": round(ms["fp32 MatMul"] / t, 2),
                                "max error": round(err[name], 4)} for name, t in ms.items()},
            "activation quantization": {name: round(t, 3) for name, t in
                                        _interleaved_ms(sessions(_activation_quantizers(m, k)), a, rounds).items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--instructions", action="store_true",
                    help="ops per instruction under valgrind (AVX2 kernels) instead of timing")
    ap.add_argument("--only-wide", action="store_true", help="with --instructions: only the many-row convolution")
    ap.add_argument("--transformer", action="store_true",
                    help="a sentence encoder's float-in products (fp32, dynamic int8, MatMulNBits) instead")
    args = ap.parse_args()
    try:
        from karuku.cpu import detect

        cpu = detect().summary()
    except ImportError:
        cpu = "unknown (karuku not importable)"
    if args.transformer:
        r = {"onnxruntime": ort.__version__, "cpu": cpu, "threads": args.threads, "shape": "4096 x 384 x 1536",
             **transformer_products(args.threads, args.runs)}
        print(json.dumps(r, indent=1))
        return
    if args.instructions:
        r = {"onnxruntime": ort.__version__, "cpu": "valgrind's (AVX2, no AVX-512 / VNNI) on " + cpu,
             "ops per instruction": {k: round(v, 2) for k, v in ops_per_instruction(only_wide=args.only_wide).items()}}
        print(json.dumps(r))
        return
    r = {"onnxruntime": ort.__version__, "cpu": cpu, "n": args.n, "threads": args.threads,
         "fp32 MatMul GFLOP/s": round(gops(args.n, False, args.threads, args.runs), 1),
         "uint8 x int8 QLinearMatMul GOPS": round(gops(args.n, True, args.threads, args.runs), 1),
         "uint8 x uint8 QLinearMatMul GOPS": round(gops(args.n, True, args.threads, args.runs, True), 1),
         **conv_gops(args.threads, args.runs)}
    print(json.dumps(r))


if __name__ == "__main__":
    main()
