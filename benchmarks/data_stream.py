"""Peak memory of reading an image folder in memory vs streamed (docs/bench/data.md).

    OMP_NUM_THREADS=1 python benchmarks/data_stream.py --images 20000 --size 64 [--markdown]

Writes a folder of random PNGs (ROOT/train/<class>/, ROOT/test/<class>/) once, then in a fresh process per mode
loads it with `DataConfig(name="images", stream=...)`, reads the whole training set once in batches through
the classification task (what evaluation, fine-tuning and calibration do) and reports the process's peak RSS
and the seconds taken. Each mode runs in its own process so one's peak cannot hide the other's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, math, sys, time
import torch
from karuku.data import DataConfig, load_splits
from karuku.measure.memory import peak_rss_bytes
from karuku.tasks import measure_task

root, stream = sys.argv[1], sys.argv[2] == "1"
torch.set_num_threads(1)
base = peak_rss_bytes()
start = time.perf_counter()
splits = load_splits(DataConfig(name="images", path=root, stream=stream, val_size=0))
loaded = time.perf_counter() - start
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(splits.input_shape), splits.num_classes))
r = measure_task(model, splits.train, "classification", batch_size=256)
calib = splits.calibration(512)
print(json.dumps({"stream": stream, "in_memory": splits.in_memory, "examples": r.total,
                  "input_shape": list(splits.input_shape), "load_s": round(loaded, 2),
                  "total_s": round(time.perf_counter() - start, 2), "rss_after_imports": base,
                  "peak_rss": peak_rss_bytes(), "calibration": list(calib.shape)}))
"""


def write_folder(root: Path, n: int, size: int, classes: int = 10) -> None:
    from PIL import Image

    marker = root / f".complete-{n}-{size}"
    if marker.exists():
        return
    rng = np.random.default_rng(0)
    n_test = n // 6
    for split, count in (("train", n - n_test), ("test", n_test)):
        for i in range(count):
            c = i % classes
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    marker.write_text("ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--root", type=Path, default=Path("/tmp/karuku-bench-images"))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    t = time.perf_counter()
    write_folder(args.root, args.images, args.size)
    print(f"folder of {args.images} PNGs {args.size}x{args.size} RGB ready in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    rows = []
    for stream in (False, True):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.root), "1" if stream else "0"],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    if args.markdown:
        print("| read | examples read | peak RSS | RSS after imports | seconds (load / total) |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {'streamed' if r['stream'] else 'in memory'} | {r['examples']:,} | "
                  f"{r['peak_rss'] / 1e6:,.0f} MB | {r['rss_after_imports'] / 1e6:,.0f} MB | "
                  f"{r['load_s']} / {r['total_s']} |")


if __name__ == "__main__":
    main()
