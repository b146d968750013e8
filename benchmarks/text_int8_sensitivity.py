"""What int8 costs all-MiniLM-L6-v2, part by part, and what SmoothQuant wins back (fidelity only, no timing).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/text_int8_sensitivity.py [--alphas 0.5 0.75] [--parts]

Every variant is exported to ONNX and run in ONNX Runtime over the 1,467 held-out fortunes; fidelity is to the fp32
file (mean / 1st-percentile cosine, top-10 retrieval overlap). Results: docs/bench/text.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from karuku.cpu import detect
from karuku.quant.config import QuantConfig
from karuku.text import load_pretrained
from karuku.text.corpus import load_corpus
from karuku.text.onnx_export import export_onnx
from karuku.text.quantize import quantize
from karuku.text.task import encode, fidelity, onnx_fn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alphas", nargs="*", type=float, default=[0.5, 0.75])
    ap.add_argument("--parts", action="store_true", help="also each part alone, and each FFN output kept float")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = load_pretrained(log=lambda _: None)
    corpus = load_corpus(log=lambda _: None)
    held, calib = tok(corpus.held_out), tok(corpus.train[:256])
    ref = encode(onnx_fn(export_onnx(model)), held)
    print(detect().summary())

    def run(name: str, smooth: float | None = None, **kw) -> None:
        t0 = time.perf_counter()
        q = quantize(model, QuantConfig(mode="dynamic", target_isa="avx512-vnni", **kw), calib, smooth=smooth)
        f = fidelity(ref, encode(onnx_fn(export_onnx(q)), held))
        print(f"| {name} | {f.mean_cosine:.5f} | {f.p1_cosine:.5f} | {f.top10_overlap:.4f} | "
              f"{time.perf_counter() - t0:.0f} s |", flush=True)

    print("| int8 dynamic (u8s8) | mean cos | p1 cos | top-10 | time |\n|---|---|---|---|---|")
    run("no smoothing")
    run("word embedding float", layer_bits={"embed.word": "float"})
    run("word embedding int4", layer_bits={"embed.word": 4})
    for alpha in args.alphas:
        run(f"SmoothQuant α {alpha}", smooth=alpha)
    if args.parts:
        run("only the word embedding", layer_bits={"*": "float", "embed.word": 8})
        for part in ("attn.[qkv]", "attn.o", "ffn.up", "ffn.down"):
            run(f"only {part}", layer_bits={"*": "float", f"layers.*.{part}": 8})
        for layer in range(len(model.layers)):
            run(f"layer {layer} ffn.down float",
                layer_bits={"embed.word": "float", f"layers.{layer}.ffn.down": "float"})


if __name__ == "__main__":
    main()
