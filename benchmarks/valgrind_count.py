"""Instructions one ONNX Runtime inference executes on valgrind's CPU (AVX2, no AVX-512 / VNNI).

valgrind's virtual CPU has AVX2 but no AVX-512 or VNNI, so ONNX Runtime dispatches to the kernels of an
AVX2-only machine; callgrind counts the instructions they execute — a proxy for their speed there
(instructions are not cycles). Only the timed runs are counted: collection starts off and a tiny C library,
built here from valgrind's own `callgrind.h`, toggles it around the loop of inferences. (Subtracting the count
of a process that runs no inference from one that runs some is not usable: whole processes vary by tens of
millions of instructions from run to run, as much as a small CNN's inference.)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

TOGGLE_C = """
#include <valgrind/callgrind.h>
void toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
"""

RUNNER = """
import ctypes, sys, numpy as np, onnxruntime as ort
lib = ctypes.CDLL(sys.argv[1])
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[2], so, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
batch, runs = int(sys.argv[3]), int(sys.argv[4])
shape = [d if isinstance(d, int) and d > 0 else batch for d in i.shape]
rng = np.random.default_rng(1)
x = rng.integers(0, 256, shape, dtype=np.uint8) if "uint8" in i.type else rng.standard_normal(shape).astype(np.float32)
s.run(None, {i.name: x})  # warm-up: lazy allocations stay out of the count
lib.toggle()
for _ in range(runs):
    s.run(None, {i.name: x})
lib.toggle()
"""


def instructions(model: Path, batch: int = 1, runs: int = 2) -> float:
    """Instructions per inference of the ONNX file `model` at `batch` (its symbolic dimensions), one thread."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "toggle.c").write_text(TOGGLE_C)
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(tmp / "toggle.so"), str(tmp / "toggle.c")],
                       check=True)
        (tmp / "run.py").write_text(RUNNER)
        out = tmp / "cg.out"
        subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no", f"--callgrind-out-file={out}", "-q",
                        sys.executable, str(tmp / "run.py"), str(tmp / "toggle.so"), str(model), str(batch),
                        str(runs)], check=True, capture_output=True)
        ann = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True).stdout
        total = int(next(line for line in ann.splitlines() if "PROGRAM TOTALS" in line).split()[0].replace(",", ""))
        return total / runs
