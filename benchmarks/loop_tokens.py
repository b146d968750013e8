"""The compression loop on a user's model of two integer inputs (token ids, attention mask): a table of what the
run measured on them — quality, MACs, deployable size, ONNX Runtime latency (baseline and result timed side by
side). The model is tests/helpers/usermodels.py's TokenFlat; the data: 12 tokens padded after 4-12, the class
says whether token 5 or 7 is among them (helpers.usermodels.Masked, the tests' data).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/loop_tokens.py --out /tmp/loop_tokens
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # helpers.usermodels: the user's package


def main() -> None:
    from helpers.usermodels import Masked
    from karuku.cpu import detect
    from karuku.data import from_torch
    from karuku.pipeline import compress
    from karuku.pipeline.recipe import parse_recipe

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="run folder (reruns resume from it)")
    args = ap.parse_args()
    recipe, problems = parse_recipe({
        "version": 1, "name": "tokens", "model": {"name": "helpers.usermodels:token_flat", "train": {
            "epochs": 6, "lr": 0.01, "optimizer": "adam", "batch_size": 32}},
        "budget": {"max_drop": 5}, "recovery": {"epochs": 0, "max_rounds": 0},
        "stages": [{"prune": {"sparsity": 0.5}}, {"quantize": {"mode": "ptq"}}]})
    assert not problems, problems
    out = compress(recipe, args.out, verbose=False, threads=1,
                   data=from_torch(Masked(600, 0), Masked(200, 1), val_size=100))
    s = json.loads((out.run_dir / "summary.json").read_text())
    print(f"cpu: {detect().summary()}; load average {os.getloadavg()[0]:.1f}")
    print(f"inputs: {s['baseline']['measure']['inputs']}")
    print("| step | test accuracy | MACs | deployable | b1 ms (ORT) | b64 /s (ORT) |\n|---|---|---|---|---|---|")
    for k in ("baseline", "final"):
        m = s[k]["measure"]
        ort = m["latency"]["onnxruntime"]
        print(f"| {k} | {100 * m['accuracy']:.1f} % | {m['macs']:,} | {m['deploy_bytes']:,} B ({m['deploy_kind']}) "
              f"| {ort['b1_median_ms']:.4f} | {ort['b64_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
