"""Learning curves of one distillation setting, from one saved student: held-out mean cosine every `--every`
steps, so settings are compared by their slope before a long run is spent on one (fidelity only, no timing).

    # the start: recipe v2's student, FFN halved, layers (0, 2, 4, 5), untrained (made once, then reused)
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_slope_probe.py --make-start START --keep 0 2 4 5 --ffn 0.5
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/text_slope_probe.py --start START --keep 0 2 4 5 \
        --steps 150 --lr 1e-3 --token-weight 100 --cache CACHE_DIR
    # distil first, prune after: the whole 4 layers (0.82 untrained), then their FFN halved
    ... --make-start FULL4 --keep 0 2 4 5 --ffn 0;  ... --start FULL4 ... --save D
    ... --make-start P --start D --keep 0 2 4 5 --ffn 0.5
    # low-rank FFN: layers (0, 2, 4, 5) whole, each FFN matrix factorised at rank 192 (truncated SVD)
    ... --make-start R192 --keep 0 2 4 5 --ffn 0 --rank 192
    # fewer heads: the whole FFN, half of every layer's heads pruned (layer scope)
    ... --make-start H6 --keep 0 2 4 5 --ffn 0 --heads 0.5
    # add a second pinned corpus's training texts (the held-out fortunes stay the measure)
    ... --extra python-docs --extra-texts 20000
    # a uniform model soup: the mean of the weights of students trained from one start (no training)
    ... --soup A B C --save SOUP
    # ... keeping the word table of member 1 (a --word-bits student: its table is the int8 file's grid)
    ... --soup A W --soup-words 1 --save SOUP

Every probe measures the first `--held` held-out fortunes (and, with `--extra`, as many held-out texts of the
extra corpus) against the fp32 model. Results: docs/bench/text.md ("Changing the slope").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from karuku.cpu import detect
from karuku.text import load_pretrained
from karuku.text.corpus import augment_texts, load_corpus, mix_texts
from karuku.text.distill import TextDistillConfig, average_weights, distill, drop_layers
from karuku.text.prune import HeadPruneConfig, factorize_ffn, prune
from karuku.text.quantize import EMBEDDING
from karuku.text.run import load_encoder, save_encoder
from karuku.text.task import encode, fidelity

WORDS = f"{EMBEDDING}.weight"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-start", help="prune (--ffn, layer scope), keep --keep, save the untrained student here")
    ap.add_argument("--start", help="the saved student to train")
    ap.add_argument("--soup-words", type=int, help="with --soup: keep this member's word table (0-based), "
                    "not the mean (a --word-bits member's table is already the int8 file's)")
    ap.add_argument("--soup", nargs="+", help="saved students of one shape from one start: measure the mean of "
                                              "their weights (and each), write it to --save; no training")
    ap.add_argument("--keep", type=int, nargs="+", required=True, help="the teacher layers the student kept")
    ap.add_argument("--ffn", type=float, default=0.5)
    ap.add_argument("--heads", type=float, default=0.0, help="with --make-start: the share of heads pruned too")
    ap.add_argument("--rank", type=int, default=0, help="with --make-start: factorise each FFN matrix at this rank")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--hidden-weight", type=float, default=1.0)
    ap.add_argument("--token-weight", type=float, default=0.0)
    ap.add_argument("--freeze-words", action="store_true", help="keep the teacher's word-embedding table")
    ap.add_argument("--word-bits", type=int, choices=(4, 8), help="freeze the word table at its 4- or 8-bit "
                    "rounding (the table the int8 file holds)")
    ap.add_argument("--word-qat", action="store_true", help="with --word-bits: train the table through its "
                    "rounding instead of freezing it")
    ap.add_argument("--extra", help="a second corpus whose training texts join the fortunes' (e.g. python-docs)")
    ap.add_argument("--extra-texts", type=int, default=0, help="how many of its training texts (0: all)")
    ap.add_argument("--augment", type=int, default=0, help="this many texts made from the training fortunes' word "
                                                            "runs and joins (karuku.text.corpus.augment_texts)")
    ap.add_argument("--every", type=int, default=50, help="measure every this many steps (a multiple of 50)")
    ap.add_argument("--held", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", help="folder for the teacher's cached outputs")
    ap.add_argument("--live", action="store_true", help="run the teacher beside the student (cheaper than caching "
                                                        "every text's outputs when a probe sees less than one epoch)")
    ap.add_argument("--qat", action="store_true", help="train the student's int8 form instead (dynamic QAT from the "
                    "teacher, SmoothQuant 0.75, int4 word table; karuku.text.quantize), measure its ONNX file on "
                    "--held and write it to SAVE.onnx")
    ap.add_argument("--qat-activations", choices=["dynamic", "static"], default="dynamic",
                    help="with --qat: each input's own range (dynamic), or ranges calibrated and trained (static)")
    ap.add_argument("--save", help="write the trained student here (and here-STEP at every measured step)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher, tok = load_pretrained(log=lambda _: None)
    fortunes = load_corpus(log=lambda _: None)
    print(detect().summary(), time.strftime("%Y-%m-%d %H:%M"), vars(args), flush=True)
    if args.make_start:  # from the teacher (then cut to --keep), or prune a trained student given as --start
        src = load_encoder(args.start) if args.start else teacher
        if args.ffn or args.heads:
            src, _ = prune(src, HeadPruneConfig(heads=args.heads, ffn=args.ffn, scope="layer"),
                           tok(fortunes.train[:256]))
        if not args.start:
            src = drop_layers(src, len(args.keep), keep=args.keep)
        if args.rank:
            src = factorize_ffn(src, args.rank)
        save_encoder(Path(args.make_start), src, {"text_stage": "prune"})
        return
    members = [load_encoder(p) for p in args.soup or []]
    student = members[0] if members else load_encoder(args.start)
    sets = {"fortunes": tok(fortunes.held_out[:args.held])}
    texts = list(fortunes.train)
    if args.extra:
        extra = load_corpus(args.extra, log=lambda _: None)
        texts = mix_texts(texts, [extra.train], args.extra_texts)
        add = texts[len(fortunes.train):]
        sets[args.extra] = tok(extra.held_out[:args.held])
        print(f"{len(fortunes.train)} fortunes + {len(add)} {args.extra} training texts", flush=True)
    if args.augment:
        texts += augment_texts(list(fortunes.train), args.augment)
        print(f"+ {args.augment} augmented texts", flush=True)
    refs = {k: encode(teacher, b) for k, b in sets.items()}

    def measure(step: int, model=None) -> dict:
        out = {}
        for k, b in sets.items():
            f = fidelity(refs[k], encode(model or student, b))
            out |= {f"{k}_cos": round(f.mean_cosine, 4), f"{k}_top10": round(f.top10_overlap, 3)}
        print(f"step {step}: {out} ({time.strftime('%H:%M:%S')})", flush=True)
        return out

    if members:
        for path, m in zip(args.soup, members):
            print(path, end=": ")
            measure(0, m)
        soup = average_weights([m.state_dict() for m in members])
        if args.soup_words is not None:  # a word_bits member's table is the int8 file's grid; a mean is not
            soup[WORDS] = members[args.soup_words].state_dict()[WORDS]
        student.load_state_dict(soup)
        print(f"soup of {len(members)}", end=": ")
        measure(0)
        if args.save:
            save_encoder(Path(args.save), student, {"text_stage": "distill"})
        return
    if args.every and args.every % 50:
        raise SystemExit("--every must be a multiple of 50 (distill logs every 50 steps)")
    measure(0)
    cfg = TextDistillConfig(keep=args.keep, epochs=args.steps / ((len(texts) + 31) // 32), lr=args.lr, batch_size=32,
                            max_length=64, hidden_weight=args.hidden_weight, token_weight=args.token_weight,
                            seed=args.seed, cache_teacher=not args.live,
                            freeze_words=args.freeze_words, word_bits=args.word_bits, word_qat=args.word_qat)
    t0 = time.perf_counter()
    if args.qat:
        qat(args, teacher, student, texts, tok, cfg, fortunes, refs["fortunes"], sets["fortunes"])
        print(f"{args.steps} QAT steps and the file in {time.perf_counter() - t0:.0f} s", flush=True)
        return

    def hook(step: int):
        if step % args.every and step != args.steps:
            return None
        if args.save:  # every measured step's student, so a long run stopped early keeps its best
            save_encoder(Path(f"{args.save}-{step}"), student, {"text_stage": "distill"})
        return measure(step)

    distill(teacher, student, texts, tok, cfg, log=lambda s: print(s, flush=True), cache_dir=args.cache,
            hook=hook if args.every else None)
    print(f"{args.steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.save:
        save_encoder(Path(args.save), student, {"text_stage": "distill"})


def qat(args, teacher, student, texts, tok, cfg, fortunes, ref, held) -> None:
    """QAT of `student` from the teacher (the recipe's int8 settings, activations per --qat-activations, weights
    rounded by training instead of GPTQ), its ONNX file measured on the held-out texts and written to SAVE.onnx."""
    from karuku.io.atomic import write_bytes
    from karuku.quant.config import QuantConfig
    from karuku.text.onnx_export import export_onnx
    from karuku.text.quantize import quantize
    from karuku.text.task import onnx_fn

    qcfg = QuantConfig(mode="qat", target_isa="auto", layer_bits={EMBEDDING: 4}, qat_delay=0)
    qm = quantize(student, qcfg, tok(fortunes.train[:256]), smooth=0.75, texts=texts, tokenizer=tok, train=cfg,
                  log=lambda s: print(s, flush=True), qat_activations=args.qat_activations, qat_teacher=teacher,
                  cache_dir=args.cache)
    raw = export_onnx(qm)
    f = fidelity(ref, encode(onnx_fn(raw, 1), held))
    print(f"QAT int8 ONNX: mean cos {f.mean_cosine:.4f}, p1 {f.p1_cosine:.4f}, top-10 {f.top10_overlap:.3f} on "
          f"{f.texts} held-out texts; {len(raw) / 1e6:.2f} MB ({time.strftime('%H:%M:%S')})", flush=True)
    if args.save:
        write_bytes(Path(f"{args.save}.onnx"), raw)


if __name__ == "__main__":
    main()
