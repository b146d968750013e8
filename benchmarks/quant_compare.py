"""Our int8 QDQ ONNX beside onnxruntime.quantization.quantize_static (default and best settings) and NNCF PTQ.

Every karuku representation (u8s8, u8u8, u8s7; see benchmarks/quant_compare_prep.py) and ORT's own remedy for
CPUs without VNNI (quantize_static with reduce_range=True: 7-bit weights) are timed beside fp32. The CPU and its
int8 target (karuku.cpu) are recorded with the results. `--instructions` counts instructions per inference under
valgrind instead of timing: valgrind's CPU has AVX2 but no AVX-512 / VNNI, so ONNX Runtime runs the kernels of
an AVX2-only machine (a proxy for their speed there; instructions are not cycles).

Run in a separate environment (these tools are never karuku dependencies):

    python3 -m venv /tmp/q-venv && /tmp/q-venv/bin/pip install torch==2.13.0 nncf onnx onnxruntime numpy
    .venv/bin/python benchmarks/quant_compare_prep.py --out /tmp/qcmp --mnist runs/*.safetensors
    /tmp/q-venv/bin/python benchmarks/quant_compare.py /tmp/qcmp --out /tmp/qcmp/results.json

Speed: batch-64 throughput (`--threads`, default 2), all sessions timed round-robin in one process (the machine
is shared and noisy: compare ratios within one run); each file against `quantize_static best` as the median of
per-round ratios. On an AVX2-only view of a CPU with cpuid_fault (`benchmarks/as_avx2 ...`) the AVX2 kernels
run. Accuracy: top-1 on the MNIST test set.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process


class Reader(CalibrationDataReader):
    def __init__(self, x: np.ndarray, batch: int = 64):
        self.batches = iter([{"input": x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


NAMES = {"fp32": "fp32", "karuku u8s8": "karuku_u8s8", "karuku u8u8": "karuku_u8u8", "karuku u8s7": "karuku_u8s7",
         "quantize_static default": "qs_default",
         "quantize_static best (pre-processed, per-channel, uint8 act)": "qs_best",
         "quantize_static best + reduce_range (7-bit weights)": "qs_reduce", "NNCF PTQ": "nncf"}


def variants(folder: Path, reuse: bool = False) -> dict[str, Path]:
    """fp32, ours, quantize_static default / best, NNCF: paths of the ONNX files (`reuse`: those already made)."""
    if reuse and (folder / "qs_best.onnx").is_file():
        return {k: folder / f"{v}.onnx" for k, v in NAMES.items() if (folder / f"{v}.onnx").is_file()}
    calib = np.load(folder / "calib.npy").astype(np.float32)
    fp32 = folder / "fp32.onnx"
    out = {"fp32": fp32, **{f"karuku {r}": folder / f"karuku_{r}.onnx" for r in ("u8s8", "u8u8", "u8s7")}}
    quantize_static(str(fp32), str(folder / "qs_default.onnx"), Reader(calib))
    out["quantize_static default"] = folder / "qs_default.onnx"
    quant_pre_process(str(fp32), str(folder / "fp32_pre.onnx"))
    quantize_static(str(folder / "fp32_pre.onnx"), str(folder / "qs_best.onnx"), Reader(calib),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    out["quantize_static best (pre-processed, per-channel, uint8 act)"] = folder / "qs_best.onnx"
    quantize_static(str(folder / "fp32_pre.onnx"), str(folder / "qs_reduce.onnx"), Reader(calib),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    out["quantize_static best + reduce_range (7-bit weights)"] = folder / "qs_reduce.onnx"
    try:
        import nncf
        import onnx

        model = onnx.load(str(fp32))
        q = nncf.quantize(model, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))],
                                              lambda x: {"input": x}), subset_size=len(calib))
        onnx.save(q, str(folder / "nncf.onnx"))
        out["NNCF PTQ"] = folder / "nncf.onnx"
    except Exception as exc:  # reported, not hidden
        print(f"NNCF failed on {folder.name}: {exc}")
    return out


def session(path: Path, threads: int = 2):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


BEST = "quantize_static best (pre-processed, per-channel, uint8 act)"


def throughput(paths: dict[str, Path], shape, rounds: int = 5, runs: int = 10, threads: int = 2
               ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Images per second of each file (median batch time), and each file's speed against ONNX Runtime's best
    `quantize_static` file as the median (and quartiles) of per-round ratios: within a round the files run
    back to back, so a load change mostly hits both sides of a ratio."""
    x = np.random.default_rng(0).standard_normal((64, *shape)).astype(np.float32)
    sessions = {k: session(p, threads) for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    per_round: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        s.run(None, {"input": x})
    for _ in range(rounds):  # round-robin so that load changes hit every variant alike
        for k, s in sessions.items():
            start = len(times[k])
            for _ in range(runs):
                t = time.perf_counter()
                s.run(None, {"input": x})
                times[k].append(time.perf_counter() - t)
            per_round[k].append(float(np.median(times[k][start:])))
    speed = {k: 64 / float(np.median(v)) for k, v in times.items()}
    vs_best = {}
    if BEST in per_round:
        for k, v in per_round.items():
            r = np.array(per_round[BEST]) / np.array(v)
            vs_best[k] = {"median": float(np.median(r)), "q1": float(np.quantile(r, 0.25)),
                          "q3": float(np.quantile(r, 0.75))}
    return speed, vs_best


def instructions(paths: dict[str, Path], shape, batch: int = 8, runs: int = 2) -> dict[str, float]:
    """Instructions per `batch`-sample inference under valgrind's callgrind (AVX2 kernels: valgrind has no
    AVX-512), only the inferences counted (benchmarks/valgrind_count.py)."""
    from valgrind_count import instructions as count

    return {k: count(p, batch, runs) for k, p in paths.items()}


def accuracy(paths: dict[str, Path], folder: Path) -> dict[str, float]:
    x, y = np.load(folder / "test_x.npy").astype(np.float32), np.load(folder / "test_y.npy")
    out = {}
    for k, p in paths.items():
        s = session(p)
        logits = np.concatenate([s.run(None, {"input": x[i:i + 1000]})[0] for i in range(0, len(x), 1000)])
        out[k] = float((logits.argmax(1) == y).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reuse", action="store_true", help="time the ONNX files made by an earlier run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per file per round")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--skip", nargs="*", default=[], help="speed / accuracy")
    ap.add_argument("--peak-gops", type=float, help="int8 peak (benchmarks/ort_peak.py) for the fraction of peak")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per batch-8 inference under valgrind (AVX2 kernels) instead of timing")
    ap.add_argument("--only", nargs="*", help="only these variants (names as printed, e.g. 'fp32' 'karuku u8s7')")
    args = ap.parse_args()
    index = json.loads((args.folder / "index.json").read_text())
    results = {"onnxruntime": ort.__version__, "speed": {}, "accuracy": {}}
    try:  # karuku is importable when this runs in karuku's venv; the peers' venv records the CPU without it
        from karuku.cpu import detect

        results["cpu"] = detect().summary()
    except ImportError:
        import platform

        results["cpu"] = platform.processor() or platform.machine()
    if args.instructions:
        for name, info in index["speed"].items():
            paths = variants(Path(info["folder"]), args.reuse)
            paths = {k: v for k, v in paths.items() if not args.only or k in args.only}
            results.setdefault("instructions_b8", {})[name] = counts = instructions(paths, info["input_shape"])
            print(name, json.dumps(counts), flush=True)
            args.out.write_text(json.dumps(results, indent=2))
        return
    for name, info in ({} if "speed" in args.skip else index["speed"]).items():
        paths = variants(Path(info["folder"]), args.reuse)
        speed, vs_best = throughput(paths, info["input_shape"], args.rounds, args.runs, args.threads)
        results["speed"][name], results.setdefault("vs_best", {})[name] = speed, vs_best
        if "macs" in info:  # one multiply-add = 2 ops
            results.setdefault("gops", {})[name] = {k: 2 * info["macs"] * v / 1e9 for k, v in speed.items()}
            if args.peak_gops:
                results.setdefault("fraction_of_peak", {})[name] = {
                    k: g / args.peak_gops for k, g in results["gops"][name].items()}
        print(name, json.dumps(speed), flush=True)
        for k, r in vs_best.items():
            print(f"  {k}: {r['median']:.3f} x best (quartiles {r['q1']:.3f}-{r['q3']:.3f})", flush=True)
        args.out.write_text(json.dumps(results, indent=2))
    for name, info in ({} if "accuracy" in args.skip else index["accuracy"]).items():
        paths = variants(Path(info["folder"]), args.reuse)
        results["accuracy"][name] = accuracy(paths, Path(info["folder"]))
        print(name, json.dumps(results["accuracy"][name]), flush=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
