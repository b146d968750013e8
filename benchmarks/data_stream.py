"""Peak memory of reading an image folder in memory vs streamed (docs/bench/data.md).

    OMP_NUM_THREADS=1 python benchmarks/data_stream.py --images 20000 --size 64 [--markdown]
    OMP_NUM_THREADS=1 python benchmarks/data_stream.py --images 1000000 --fashion --modes streamed --delete

`--fashion`: 28×28 grey PNGs made from Fashion-MNIST's training images (the cache: `karuku data fetch
fashion-mnist`), each shifted by up to 2 pixels and flipped left-right at random, in its class's folder — real
image statistics (PNGs of ~0.4 KB) where the default is random noise. `--modes` picks what to measure (the
in-memory read of a large folder needs its decoded size in RAM). `--delete` removes the folder afterwards.

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
total = time.perf_counter() - start
print(json.dumps({"stream": stream, "in_memory": splits.in_memory, "examples": r.total,
                  "per_s": round(r.total / total, 1),
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


def write_fashion(root: Path, n: int) -> None:
    """`n` 28×28 grey PNG files from Fashion-MNIST's training set, each image shifted (±2 px) and flipped at
    random once; beyond 60,000 files the encoded images repeat (file i holds image i mod 60,000 — a PNG encode
    costs ~4× a file write here, and what is measured is reading files, which never sees the repetition)."""
    import io

    from PIL import Image

    from karuku.data.fetch import fetch_dataset
    from karuku.data.idx import read_idx

    marker = root / f".complete-fashion-{n}"
    if marker.exists():
        return
    folder = fetch_dataset("fashion-mnist", log=lambda *_: None)
    x = read_idx(folder / "train-images.idx3-ubyte")
    y = read_idx(folder / "train-labels.idx1-ubyte")
    rng = np.random.default_rng(0)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    pool = []
    for j in range(min(n, len(x))):
        dy, dx = rng.integers(0, 5, 2)
        img = padded[j, dy:dy + 28, dx:dx + 28]
        if rng.integers(2):
            img = img[:, ::-1]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
        pool.append(buf.getvalue())
    n_test = n // 6
    for split, count in (("train", n - n_test), ("test", n_test)):
        for c in range(10):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            j = i % len(pool)
            (root / split / f"class{y[j]}" / f"{i}.png").write_bytes(pool[j])
    marker.write_text("ok")


def folder_bytes(root: Path) -> tuple[int, int]:
    """Files and bytes (their sizes, not the blocks they take) under `root`."""
    files = size = 0
    for p in root.rglob("*.png"):
        files += 1
        size += p.stat().st_size
    return files, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--root", type=Path, default=Path("/tmp/karuku-bench-images"))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--fashion", action="store_true", help="Fashion-MNIST images (28x28 grey), not random RGB")
    ap.add_argument("--modes", default="memory,streamed", help="memory, streamed or both (comma-separated)")
    ap.add_argument("--delete", action="store_true", help="remove the folder afterwards")
    args = ap.parse_args()
    t = time.perf_counter()
    if args.fashion:
        write_fashion(args.root, args.images)
    else:
        write_folder(args.root, args.images, args.size)
    files, size = folder_bytes(args.root)
    print(f"folder of {files:,} PNGs ({size / 1e6:,.0f} MB of files) ready in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    rows = []
    modes = args.modes.split(",")
    for stream in [s == "streamed" for s in ("memory", "streamed") if s in modes]:
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.root), "1" if stream else "0"],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    if args.markdown:
        print("| read | examples read | peak RSS | RSS after imports | seconds (load / total) | examples/s read |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {'streamed' if r['stream'] else 'in memory'} | {r['examples']:,} | "
                  f"{r['peak_rss'] / 1e6:,.0f} MB | {r['rss_after_imports'] / 1e6:,.0f} MB | "
                  f"{r['load_s']} / {r['total_s']} | {r['per_s']:,.0f} |")
    if args.delete:
        import shutil

        shutil.rmtree(args.root)


if __name__ == "__main__":
    main()
