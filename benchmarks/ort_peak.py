"""This machine's ONNX Runtime ceilings: fp32 MatMul, uint8 × int8 and uint8 × uint8 QLinearMatMul throughput at N³.

    .venv/bin/python benchmarks/ort_peak.py --n 1024 --threads 2

The "fraction of peak" figures of the quantization benchmarks divide a model's ops per second by
these (MACHINE.md's were measured on a different CPU). One op = one multiply or one add, so a
matrix product of N³ multiply-adds is 2·N³ ops. Median of --runs timed runs after warm-up.
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


def gops(n: int, int8: bool, threads: int, runs: int, u8_weights: bool = False) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(matmul_model(n, int8, u8_weights), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8) if int8 else rng.standard_normal((n, n)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"a": a})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"a": a})
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    try:
        from karuku.cpu import detect

        cpu = detect().summary()
    except ImportError:
        cpu = "unknown (karuku not importable)"
    r = {"onnxruntime": ort.__version__, "cpu": cpu, "n": args.n, "threads": args.threads,
         "fp32 MatMul GFLOP/s": round(gops(args.n, False, args.threads, args.runs), 1),
         "uint8 x int8 QLinearMatMul GOPS": round(gops(args.n, True, args.threads, args.runs), 1),
         "uint8 x uint8 QLinearMatMul GOPS": round(gops(args.n, True, args.threads, args.runs, True), 1)}
    print(json.dumps(r))


if __name__ == "__main__":
    main()
