"""A user's token classifier on real text, from training to int8 ONNX, .tflite and C on a Cortex-M4.

The task: which file of Debian's `fortunes` package (pinned .deb, karuku's text corpus) a fortune comes from,
among the `--topics` largest files; karuku's corpus split (one in ten held out by hash). Texts are cut to
`--length` WordPiece tokens of all-MiniLM-L6-v2's vocabulary (the pinned model package), re-numbered by
frequency into a `--vocab`-entry table (rarer pieces share one id) — what one does for a microcontroller.
The models are what a user writes: `flat`, an embedding flattened into a hidden layer beside the attention mask
(as features), a head; `bag`, the mean of the real tokens' embeddings (`nn.EmbeddingBag`, pads left out) into an
MLP (no .tflite: TFLite has no operator for it, and the export says so; torch.onnx cannot export the float bag,
so its fp32 is timed in torch only). Trained here, quantized (PTQ), measured (karuku.measure), then
every deployable file checked against the integer engine (int8 ONNX top-1 agreement; .tflite every byte in
LiteRT and TFLite Micro; C every byte on the host) and the C timed on an emulated Cortex-M4 (QEMU icount:
instructions, int8 build vs its float twin).

    karuku text fetch    # once: the fortunes .deb and the model's vocabulary
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/token_edge.py --out /tmp/token_edge
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset


class Fortunes(Dataset):
    """Examples ((input_ids, attention_mask), topic)."""

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, y: torch.Tensor):
        self.ids, self.mask, self.y = ids, mask, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return (self.ids[i], self.mask[i]), self.y[i]


class TopicClassifier(nn.Module):
    def __init__(self, vocab: int, length: int, topics: int, dim: int = 16, hidden: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.tokens, self.mask = nn.Linear(length * dim, hidden), nn.Linear(length, hidden)
        self.head = nn.Linear(hidden, topics)

    def forward(self, input_ids, attention_mask):
        h = self.tokens(self.embed(input_ids).flatten(1)) + self.mask(attention_mask.float())
        return self.head(torch.relu(h))


class BagClassifier(nn.Module):
    """The usual bag-of-embeddings text classifier: the mean of the real tokens' rows (pads left out), an MLP."""

    def __init__(self, vocab: int, length: int, topics: int, dim: int = 16, hidden: int = 64):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean", padding_idx=0)
        self.hidden, self.head = nn.Linear(dim, hidden), nn.Linear(hidden, topics)

    def forward(self, input_ids, attention_mask):  # the mask is implied by the pads (id 0)
        return self.head(torch.relu(self.hidden(self.bag(input_ids))))


MODELS = {"flat": TopicClassifier, "bag": BagClassifier}


def topic_texts(topics: int) -> tuple[list[str], list[tuple[str, int]]]:
    """(topic names, (text, topic) pairs) of the `topics` largest fortune files, each text once."""
    from karuku.text.corpus import DEB, DEB_SHA256, DEB_VERSION, FORTUNE_DIR, SKIP, parse_fortunes, pinned_deb, read_deb

    data, _ = pinned_deb(DEB, DEB_VERSION, DEB_SHA256, None, print)
    files = {p.rsplit("/", 1)[-1]: parse_fortunes(b.decode("utf-8", errors="replace"))
             for p, b in read_deb(data).items()
             if p.startswith(FORTUNE_DIR) and "." not in p.rsplit("/", 1)[-1] and p.rsplit("/", 1)[-1] not in SKIP}
    names = sorted(sorted(files, key=lambda n: -len(files[n]))[:topics])
    seen, pairs = set(), []
    for k, name in enumerate(names):
        for t in files[name]:
            if t not in seen:
                seen.add(t)
                pairs.append((t, k))
    return names, pairs


def encode(texts: list[str], length: int, vocab: int, table: dict[int, int] | None = None):
    """(ids, mask, table): WordPiece ids re-numbered by training frequency (0 pad, 1 the shared rare id)."""
    from karuku.text.pretrained import model_dir
    from karuku.text.tokenizer import Tokenizer

    folder = model_dir("all-minilm-l6-v2")
    words = {w: i for i, w in enumerate((folder / "vocab.txt").read_text().splitlines())}
    tok = Tokenizer(words, max_length=length + 2, tokenizer_json=str(folder / "tokenizer.json"))
    b = tok(texts)
    raw, mask = b.input_ids[:, 1:length + 1], b.attention_mask[:, 1:length + 1]  # without [CLS]
    raw = raw * (raw != tok.sep)
    mask = mask * (b.input_ids[:, 1:length + 1] != tok.sep)
    if raw.shape[1] < length:
        pad = length - raw.shape[1]
        raw, mask = nn.functional.pad(raw, (0, pad)), nn.functional.pad(mask, (0, pad))
    if table is None:
        counts = Counter(int(v) for v in raw[mask.bool()])
        table = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(vocab - 2))}
    ids = torch.tensor([[table.get(int(w), 1) if m else 0 for w, m in zip(row, mrow)]
                        for row, mrow in zip(raw.tolist(), mask.tolist())], dtype=torch.int64)
    return ids, mask.to(torch.int64), table


def main() -> None:
    from karuku.cpu import detect
    from karuku.data import from_torch
    from karuku.data.batches import first_inputs
    from karuku.deploy.c import toolchain
    from karuku.deploy.c.codegen import generate
    from karuku.deploy.c.project import export_c, records, to_bytes
    from karuku.deploy.export import export_int8_onnx
    from karuku.deploy.tflite.export import export_tflite
    from karuku.errors import KarukuError
    from karuku.measure import evaluate
    from karuku.quant import QuantConfig, quantize, to_integer
    from karuku.text.corpus import split
    from karuku.training import TrainConfig, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="folder for the deployable files")
    ap.add_argument("--topics", type=int, default=6)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--m4-inputs", type=int, default=32, help="inferences timed on the emulated Cortex-M4")
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["flat", "bag"])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    names, pairs = topic_texts(args.topics)
    by_text = dict(pairs)
    train_t, test_t = split([t for t, _ in pairs])
    ids, mask, table = encode(train_t, args.length, args.vocab)
    tids, tmask, _ = encode(test_t, args.length, args.vocab, table)
    y, ty = (torch.tensor([by_text[t] for t in ts]) for ts in (train_t, test_t))
    splits = from_torch(Fortunes(ids, mask, y), Fortunes(tids, tmask, ty), val_size=len(y) // 10)
    majority = float((ty == ty.mode().values).float().mean())
    print(f"topics: {', '.join(names)}; {len(train_t):,} training and {len(test_t):,} held-out texts; "
          f"{float(tmask.float().sum(1).mean()):.1f} tokens a text of {args.length}; "
          f"majority class {100 * majority:.1f} %")

    print(f"cpu: {detect().summary()}; load average {os.getloadavg()[0]:.1f}; 1 thread")
    for kind in args.models:
        torch.manual_seed(0)
        model = MODELS[kind](args.vocab, args.length, len(names))
        t0 = time.perf_counter()
        train(model, splits, TrainConfig(epochs=args.epochs, lr=3e-3, optimizer="adam", batch_size=64,
                                         weight_decay=1e-4), verbose=False)
        print(f"\n## {kind}: {type(model).__name__}, trained {args.epochs} epochs in {time.perf_counter() - t0:.0f} s")
        model.eval()
        qm = quantize(model, QuantConfig(mode="ptq", calibration=1024), splits.calibration(1024))
        rows = {}
        for label, net in (("fp32", model), ("int8 (PTQ)", qm)):  # timed one after the other in one process
            try:
                rows[label] = evaluate(net, splits, engines=("torch", "onnxruntime"), runs=50)
            except KarukuError as exc:  # torch.onnx cannot export every float model (a bag with padding_idx)
                print(f"{label}: no ONNX Runtime timing ({exc}); timed in torch only")
                rows[label] = evaluate(net, splits, engines=("torch",), runs=50)
        print("| model | held-out accuracy | deployable | torch b1 ms | ORT b1 ms | ORT b64 /s |\n"
              "|---|---|---|---|---|---|")
        for label, ev in rows.items():
            ort = ev.latency.get("onnxruntime", {})
            print(f"| {label} | {100 * ev.accuracy:.2f} % | {ev.deploy_bytes:,} B ({ev.deploy_kind}) | "
                  f"{ev.latency['torch']['b1_median_ms']:.4f} | {ort.get('b1_median_ms', float('nan')):.4f} | "
                  f"{ort.get('b64_per_s', float('nan')):,.0f} |")
        folder = out / kind
        x = first_inputs(splits.test, len(ty))
        im = to_integer(qm)
        print(f"int8 ONNX: {export_int8_onnx(qm, None, folder / 'topics.int8.onnx', inputs=x)}")
        try:
            print(f".tflite: {export_tflite(im, folder / 'topics.tflite', x)}")
        except KarukuError as exc:  # a bag has no TFLite operator: said, not hidden
            print(f".tflite: refused: {exc}")
        print(f"C: {export_c(im, 'topics', folder / 'c', None, profile='mcu-m4', inputs=x)}")
        proj, n = generate(im, "topics"), args.m4_inputs
        q = im.quantize_input(tuple(t[:n] for t in x))
        m4, ticks = toolchain.run(toolchain.build_mcu(proj, folder / "m4"), records(im, q))
        same = int((m4 == to_bytes(im.run_int(q))).all(1).sum())
        _, fticks = toolchain.run(toolchain.build_mcu(proj, folder / "m4f", float_build=True),
                                  records(im, tuple(t[:n] for t in x), float_build=True))
        insn, finsn = (t * toolchain.INSNS_PER_TICK / n for t in (ticks, fticks))  # QEMU's timer: 40 a tick
        print(f"Cortex-M4 (QEMU mps2-an386, -icount shift=0): {same}/{n} outputs identical to the engine; "
              f"{insn:,.0f} instructions an inference (int8) vs {finsn:,.0f} (float twin): {finsn / insn:.2f}x fewer")


if __name__ == "__main__":
    main()
