"""Threads on a busy machine: which default keeps karuku fast when other jobs share the cores (issue 19).

    .venv/bin/python benchmarks/threads.py                    # the machine as it is, plus 2 and 4 busy loops
    .venv/bin/python benchmarks/threads.py --quiet            # also: this benchmark's autogroup at nice -20

Each option runs in a fresh process (OpenMP reads its wait policy when it loads) and times training steps of
LeNet-300-100 and LeNet-5 (batch 64, SGD, 28×28 inputs) and ONNX Runtime batch-64 inference of LeNet-5. The
options run round-robin, `--rounds` times, so a change of load hits each alike; the table gives medians per
step. `--load K` adds K busy Python loops for the duration of a condition, on top of whatever else runs.
`--quiet` puts this benchmark's session in an autogroup at nice -20 (root only), which approximates a quiet
machine: the scheduler then gives these processes the cores before everyone else's.
Results: docs/bench/threads.md (written by hand from the printed Markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# (label, threads: "cores", "auto" (karuku's choice, `karuku.threads`) or a number, extra environment)
OPTIONS = [
    ("karuku's automatic choice", "auto", {}),
    ("cores, spinning (torch's default)", "cores", {}),
    ("cores, OMP_WAIT_POLICY=PASSIVE", "cores", {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("cores, GOMP_SPINCOUNT=10000", "cores", {"GOMP_SPINCOUNT": "10000"}),
    ("1 thread", 1, {}),
    ("1 thread, OMP_WAIT_POLICY=PASSIVE", 1, {"OMP_WAIT_POLICY": "PASSIVE"}),
]
WORKLOADS = ("train lenet300", "train lenet5", "ort lenet5 b64 spin", "ort lenet5 b64 no-spin")


def worker(threads: int, seconds: float) -> dict[str, float]:
    """ms per step of each workload in this process, each run for about `seconds`; `threads` 0: karuku's
    automatic choice (chosen at start, stepped down by `adapt` if the machine gets busy, as training does)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F

    from karuku.measure.onnx_runtime import export_bytes
    from karuku.models import build
    from karuku.threads import adapt, use_threads

    chosen = use_threads(threads or None)
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    out = {}

    def timed(step) -> float:
        for _ in range(3):
            step()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or n < 5:
            step()
            n += 1
        return 1000 * (time.perf_counter() - start) / n

    for name in ("lenet300", "lenet5"):
        net = build(name, (1, 28, 28), 10)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

        def step(net=net, opt=opt):
            adapt()
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        out[f"train {name}"] = timed(step)
    onnx = export_bytes(build("lenet5", (1, 28, 28), 10).eval(), (1, 28, 28))
    xb = np.random.default_rng(0).standard_normal((64, 1, 28, 28), dtype=np.float32)
    for label, spin in (("spin", "1"), ("no-spin", "0")):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = torch.get_num_threads(), 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        sess = ort.InferenceSession(onnx, opts, providers=["CPUExecutionProvider"])
        out[f"ort lenet5 b64 {label}"] = timed(lambda sess=sess: sess.run(None, {"input": xb}))
    out["threads"] = chosen
    return out


def run_condition(load: int, rounds: int, seconds: float, cores: int) -> dict[str, dict[str, float]]:
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    samples: dict[str, dict[str, list[float]]] = {label: {w: [] for w in WORKLOADS} for label, _, _ in OPTIONS}
    chosen: dict[str, list[int]] = {label: [] for label, _, _ in OPTIONS}
    loads = []
    try:
        time.sleep(1.0 if load else 0)
        for _ in range(rounds):
            for label, threads, env in OPTIONS:
                n = cores if threads == "cores" else 0 if threads == "auto" else threads
                clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                                           "OMP_NUM_THREADS")}
                proc = subprocess.run([sys.executable, __file__, "--worker", str(n), "--seconds", str(seconds)],
                                      env={**clean, **env}, capture_output=True, text=True, check=True)
                got = json.loads(proc.stdout.strip().splitlines()[-1])
                chosen[label].append(got.pop("threads"))
                for w, ms in got.items():
                    samples[label][w].append(ms)
                loads.append(os.getloadavg()[0])
    finally:
        for p in loops:
            p.kill()
            p.wait()
    table = {label: {w: statistics.median(v) for w, v in ws.items()} for label, ws in samples.items()}
    table["_load"] = {"min": min(loads), "max": max(loads)}
    table["_chosen"] = chosen
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=1.5, help="timing per workload and process")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--load", type=int, nargs="*", default=[0, 2, 4], help="busy loops added per condition")
    ap.add_argument("--quiet", action="store_true", help="also measure at autogroup nice -20 (approximates idle)")
    ap.add_argument("--json", type=Path, help="write the tables here too")
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.seconds)))
        return

    from karuku.cpu import detect
    from karuku.threads import usable_cores

    cores = usable_cores()
    conditions = [(f"+{k} busy loops" if k else "as found", k) for k in args.load]
    results = {}
    if args.quiet:
        if os.getsid(0) != os.getpid():
            os.execvp("setsid", ["setsid", sys.executable, *sys.argv])  # our own session: our own autogroup
        Path("/proc/self/autogroup").write_text("-20")
        results["quiet (autogroup nice -20)"] = run_condition(0, args.rounds, args.seconds, cores)
        Path("/proc/self/autogroup").write_text("0")
    for label, k in conditions:
        results[label] = run_condition(k, args.rounds, args.seconds, cores)
    print(f"CPU: {detect().summary()}; usable cores {cores}; {time.strftime('%Y-%m-%d %H:%M')}; "
          f"{args.rounds} rounds × {args.seconds} s per workload\n")
    for cond, table in results.items():
        load, chosen = table.pop("_load"), table.pop("_chosen")
        auto = chosen[OPTIONS[0][0]]
        print(f"### {cond} (load average {load['min']:.1f}–{load['max']:.1f}; the automatic choice started "
              f"{', '.join(map(str, auto))} thread(s) in its {len(auto)} runs)\n")
        print("| option | " + " | ".join(f"{w} ms" for w in WORKLOADS) + " |")
        print("|---|" + "---:|" * len(WORKLOADS))
        best = {w: min(t[w] for t in table.values()) for w in WORKLOADS}
        for label, t in table.items():
            cells = [f"**{t[w]:.2f}**" if t[w] == best[w] else f"{t[w]:.2f}" for w in WORKLOADS]
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
