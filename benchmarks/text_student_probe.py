"""Which shallower all-MiniLM-L6-v2 students are worth distilling: fidelity of kept-layer subsets before any
training, and of short distillation probes on a slice of the fortunes (fidelity only, no timing).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_probe.py --zero-shot
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_probe.py --keep 0 2 5 --steps 150
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_probe.py --keep 0 2 4 5 --ffn 0.5 --steps 150
    # continue a trained student (a run folder's checkpoint) over the whole training set, measured on all held-out
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_student_probe.py --from RUN/steps/KEY/model.safetensors \
        --keep 0 1 2 3 --hidden-weight 0 --epochs 2 --lr 1.5e-4 --seed 2 --held 1467 --cache RUN/teacher --save OUT

Probes train on the first steps × batch training texts with the recipe's distillation settings and are measured
on the first `--held` held-out texts against the fp32 model (the full recipe measures all 1,467). Results:
docs/bench/text.md ("Choosing the student").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from karuku.cpu import detect
from karuku.text import load_pretrained
from karuku.text.corpus import load_corpus
from karuku.text.distill import TextDistillConfig, distill, drop_layers
from karuku.text.prune import HeadPruneConfig, prune
from karuku.text.task import encode, fidelity

SUBSETS = [(0, 1, 2), (0, 2, 4), (1, 3, 5), (0, 1, 5), (0, 2, 5), (0, 1, 2, 3), (0, 1, 2, 5), (0, 2, 4, 5),
           (0, 1, 3, 5), (0, 1, 2, 3, 5)]


def macs_per_token(heads: list[int], ffn: list[int], hidden: int = 384, head_dim: int = 32, tokens: int = 128) -> int:
    """Multiply-accumulates per token at `tokens` tokens: Q/K/V/O, attention scores and context, the FFN pair."""
    return sum(4 * hidden * h * head_dim + 2 * tokens * h * head_dim + 2 * hidden * f for h, f in zip(heads, ffn))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zero-shot", action="store_true", help="every subset in SUBSETS, no training")
    ap.add_argument("--keep", type=int, nargs="+", help="the teacher layers the student keeps")
    ap.add_argument("--ffn", type=float, default=0.0, help="share of FFN neurons pruned first (layer scope)")
    ap.add_argument("--heads", type=float, default=0.0, help="share of heads pruned first (layer scope)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--hidden-weight", type=float, default=1.0)
    ap.add_argument("--held", type=int, default=500, help="held-out texts measured")
    ap.add_argument("--from", dest="start", help="a trained student checkpoint to continue (no pruning)")
    ap.add_argument("--epochs", type=float, help="passes over the whole training set (instead of --steps)")
    ap.add_argument("--seed", type=int, default=0, help="shuffle seed")
    ap.add_argument("--cache", help="folder for the teacher's cached outputs")
    ap.add_argument("--save", help="write the trained student here (a karuku checkpoint)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher, tok = load_pretrained(log=lambda _: None)
    corpus = load_corpus(log=lambda _: None)
    print(detect().summary(), time.strftime("%Y-%m-%d %H:%M"), flush=True)
    held = tok(corpus.held_out[:args.held])
    ref = encode(teacher, held)

    def show(label: str, model) -> None:
        f = fidelity(ref, encode(model, held))
        print(f"{label}: mean cos {f.mean_cosine:.4f}, p1 {f.p1_cosine:.4f}, top-10 {f.top10_overlap:.3f}, "
              f"MACs/token {macs_per_token(list(model.cfg.heads), list(model.cfg.intermediate)) / 1e6:.2f} M",
              flush=True)

    if args.zero_shot:
        for keep in SUBSETS:
            show(f"keep {keep}, no training", drop_layers(teacher, len(keep), keep=list(keep)))
        return
    if args.start:
        from karuku.text.run import load_encoder

        student = load_encoder(args.start)
        label = f"{args.start}, keep {tuple(args.keep)}"
    else:
        src = teacher
        if args.ffn or args.heads:
            src, _ = prune(teacher, HeadPruneConfig(heads=args.heads, ffn=args.ffn, scope="layer"),
                           tok(corpus.train[:256]))
        student = drop_layers(src, len(args.keep), keep=args.keep)
        label = f"keep {tuple(args.keep)}, ffn −{args.ffn:.0%}, heads −{args.heads:.0%}"
    show(f"{label}, no training", student)
    texts = corpus.train if args.epochs else corpus.train[:args.steps * 32]
    cfg = TextDistillConfig(keep=args.keep, epochs=args.epochs or 1, lr=args.lr, batch_size=32, max_length=64,
                            hidden_weight=args.hidden_weight, seed=args.seed)
    t0 = time.perf_counter()
    hist = distill(teacher, student, texts, tok, cfg, log=lambda s: print(s, flush=True), cache_dir=args.cache)
    show(f"{label}, {hist[-1]['step']} steps ({time.perf_counter() - t0:.0f} s)", student)
    if args.save:
        from karuku.text.run import save_encoder

        save_encoder(Path(args.save), student, {"text_stage": "distill"})


if __name__ == "__main__":
    main()
