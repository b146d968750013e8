"""`compress_text`: run a text recipe (karuku.text.recipe) — stages cached in a run folder, fidelity measured
after each, the result timed side by side with the fp32 baseline, checked against the budget and reported."""

from __future__ import annotations

import io
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes, write_text
from karuku.pipeline.runfolder import RunFolder, key_of
from karuku.quant.config import QuantConfig
from karuku.text.encoder import SentenceEncoder
from karuku.text.recipe import TextRecipe
from karuku.text.task import encode, fidelity, fixed_batch, onnx_fn

ZOO_NAME = "bert"
BASELINE = "fp32 ONNX (standard export)"  # what speed-ups are relative to: the export users run today


def save_encoder(path: Path, model: SentenceEncoder, meta: dict[str, Any]) -> Path:
    """A karuku checkpoint of a float encoder (zoo entry `bert` with its per-layer shape as arguments)."""
    from karuku.io.checkpoint import save_checkpoint
    from karuku.models.spec import ModelSpec

    c = model.cfg
    spec = ModelSpec(name=ZOO_NAME, input_shape=(c.max_positions,), num_classes=c.hidden, kwargs=c.as_kwargs())
    save_checkpoint(path, model, spec, meta)
    return path


def load_encoder(path: str | Path) -> SentenceEncoder:
    """A float sentence encoder from a karuku checkpoint written by `save_encoder`."""
    from karuku.io.checkpoint import load_model

    model, _ = load_model(path)
    if not isinstance(model, SentenceEncoder):
        raise KarukuError(f"{path} is not a sentence encoder checkpoint", "give one written by karuku text")
    return model.eval()


def export_standard(model: SentenceEncoder, example, opset: int = 17) -> bytes:
    """fp32 ONNX in standard operators, as torch.onnx (and Optimum) export it: the baseline users run today."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), tuple(example.inputs()), buf, dynamo=False, opset_version=opset,
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}})
    return buf.getvalue()


def side_by_side(files: dict[str, bytes], big, one, threads: int, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Batch-32 × 128-token throughput and batch-1 × 32-token latency of ONNX files, timed round-robin."""
    from karuku.measure.timing import time_call

    fns = {k: onnx_fn(b, threads) for k, b in files.items()}
    b32: dict[str, list[float]] = {k: [] for k in fns}
    b1: dict[str, list[float]] = {k: [] for k in fns}
    big_np, one_np = [t.numpy() for t in big.inputs()], [t.numpy() for t in one.inputs()]
    for _ in range(rounds):
        for k, fn in fns.items():
            b32[k].append(time_call(lambda fn=fn: fn(*big_np), warmup=1, runs=3).median_ms)
            b1[k].append(time_call(lambda fn=fn: fn(*one_np), warmup=3, runs=20).median_ms)
    return {k: {"b32_s128_per_s": 32_000 / statistics.median(b32[k]), "b1_s32_ms": statistics.median(b1[k])}
            for k in fns}


def compress_text(recipe: TextRecipe, run_dir: str | Path | None = None, model_source=None, corpus_source=None,
                  log=print, time_rounds: int = 3) -> dict[str, Any]:
    """Run `recipe`; returns the summary (also written to RUN/summary.json, with RUN/report.md)."""
    from karuku.text.corpus import augment_texts, load_corpus, mix_texts
    from karuku.text.distill import distill, drop_layers
    from karuku.text.onnx_export import export_onnx
    from karuku.text.pretrained import load_pretrained
    from karuku.text.prune import prune
    from karuku.text.quantize import quantize

    torch.manual_seed(recipe.seed)
    run = RunFolder(run_dir or Path("runs") / f"{recipe.name}-{recipe.digest()}")
    teacher, tok = load_pretrained(recipe.model.pretrained, model_source, log)
    corpus = load_corpus(recipe.data.corpus, corpus_source, log)
    held, calib = tok(corpus.held_out), tok(corpus.train[: recipe.data.calibration])
    train = mix_texts(corpus.train, [load_corpus(name, log=log).train for name in recipe.data.extra],
                      recipe.data.extra_texts) + augment_texts(corpus.train, recipe.data.augment, recipe.seed)
    ref_path = run.root / "reference.npy"
    if not ref_path.is_file():
        log(f"reference embeddings of {len(held)} held-out texts")
        np.save(ref_path, encode(teacher, held))
    ref = np.load(ref_path)

    def measure(model_or_fn) -> dict[str, Any]:
        return fidelity(ref, encode(model_or_fn, held)).as_dict()

    steps: list[dict[str, Any]] = [{"kind": "pretrained", "params": _params(teacher),
                                    "fidelity": fidelity(ref, ref).as_dict()}]  # the reference itself
    current, parent, qm, onnx_path = teacher, key_of(recipe.model.model_dump(), recipe.data.model_dump()), None, None
    for i, stage in enumerate(recipe.stages):
        cfg = stage.config()
        key = key_of(parent, i, stage.kind, cfg.model_dump(mode="json"), recipe.seed)
        if stage.kind in ("prune", "distill"):
            def make(step_dir: Path, cfg=cfg, kind=stage.kind, src=current, key=key) -> dict[str, Any]:
                t0 = time.perf_counter()
                if kind == "prune":
                    model, info = prune(src, cfg, calib)
                else:
                    model = drop_layers(src, cfg.layers, cfg.init, cfg.keep)
                    info = {"history": distill(teacher, model, train, tok, cfg, log=run.log,
                                               cache_dir=run.root / "teacher",
                                               member_dir=run.root / "members" / key)}
                path = save_encoder(step_dir / "model.safetensors", model, {"text_stage": kind})
                return {"kind": kind, "checkpoint": str(path), "params": _params(model), "fidelity": measure(model),
                        "shape": {"heads": list(model.cfg.heads), "ffn": list(model.cfg.intermediate)},
                        "info": info, "seconds": round(time.perf_counter() - t0, 1)}

            result = run.step(key, f"stage {i + 1} {stage.kind}", make)
            current, parent = load_encoder(result["checkpoint"]), key
        elif stage.kind == "quantize":
            # QAT distils the float model of this point (or the pretrained teacher) into its fake-quantized copy
            qat = ({"texts": corpus.train, "tokenizer": tok, "train": cfg.train, "log": run.log,
                    "qat_activations": cfg.qat_activations} if cfg.mode == "qat" else {})
            if cfg.mode == "qat" and cfg.qat_teacher == "pretrained":
                qat |= {"texts": train, "qat_teacher": teacher, "cache_dir": run.root / "teacher",
                        "train": qat_from_teacher(cfg.train, recipe.stages[:i])}
            qm = quantize(current, QuantConfig(**cfg.model_dump(exclude={"smooth", "rounding", "train",
                                                                         "qat_activations", "qat_teacher"})),
                          calib, smooth=cfg.smooth, rounding=cfg.rounding, **qat)
            result = {"kind": "quantize", "fidelity": measure(qm), "mode": cfg.mode}
        else:
            raw = export_onnx(qm if qm is not None else current, cfg.target_isa, cfg.representation)
            onnx_path = write_bytes(run.root / "model.onnx", raw)
            result = {"kind": "export", "file_bytes": len(raw), "fidelity": measure(onnx_fn(raw)),
                      "onnx": str(onnx_path)}
        log(f"stage {i + 1} {stage.kind}: mean cosine {result['fidelity']['mean_cosine']:.4f}, top-10 "
            f"{result['fidelity']['top10_overlap']:.3f}")
        steps.append({k: v for k, v in result.items() if k != "info"} | {"stage": i + 1})
    return _finish(recipe, run, teacher, tok, corpus, steps, onnx_path, log, time_rounds)


def qat_from_teacher(train, before: list) -> Any:
    """QAT's TextDistillConfig when it distils from the pretrained teacher: the student's hint targets are the last
    distill stage's (its `keep`, `layers`, `init`) unless `train` names its own."""
    from karuku.text.quantize import default_qat_train

    train = train or default_qat_train()
    last = next((s.config() for s in reversed(before) if s.kind == "distill"), None)
    shape = {"keep", "layers", "init"}
    if last is None or train.model_fields_set & shape:
        return train
    return train.model_copy(update={k: getattr(last, k) for k in shape})


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _finish(recipe, run, teacher, tok, corpus, steps, onnx_path, log, rounds) -> dict[str, Any]:
    from karuku.cpu import detect
    from karuku.text.onnx_export import export_onnx

    big, one = fixed_batch(tok, corpus.train, 32, 128), fixed_batch(tok, corpus.train[len(corpus.train) // 2:], 1, 32)
    base = export_standard(teacher, one)
    files = {BASELINE: base, "fp32 ONNX (karuku fused graph)": export_onnx(teacher)}
    if onnx_path is not None:
        files["result"] = Path(onnx_path).read_bytes()
    log(f"timing {len(files)} ONNX files side by side ({recipe.threads} thread(s))")
    timing = side_by_side(files, big, one, recipe.threads, rounds)
    result_bytes = Path(onnx_path).stat().st_size if onnx_path else None
    checks = budget_checks(recipe.budget, steps[-1]["fidelity"], result_bytes, timing)
    summary = {"recipe": recipe.model_dump(mode="json"), "steps": steps, "timing": timing, "checks": checks,
               "ok": all(c["ok"] for c in checks), "cpu": detect().summary(), "date": time.strftime("%Y-%m-%d %H:%M"),
               "sizes": {BASELINE: len(base),
                         **({"result": Path(onnx_path).stat().st_size} if onnx_path else {})}}
    run.write_json("summary.json", summary)
    write_text(run.root / "report.md", report(summary))
    log(f"{'within budget' if summary['ok'] else 'budget NOT met'}; report {run.root / 'report.md'}")
    summary["run_dir"] = str(run.root)
    return summary


def budget_checks(budget, fidelity: dict[str, float], result_bytes: int | None,
                  timing: dict[str, dict[str, float]]) -> list[dict]:
    """Every limit of a text budget with its measured value, read from the report's timing: batch-1 × 32 latency
    and batch 32 × 128 throughput of the result's ONNX file, the latter against the standard fp32 export."""
    result = timing.get("result")
    return budget.checks(fidelity, result_bytes, result["b1_s32_ms"] if result else None,
                         result["b32_s128_per_s"] if result else None, timing[BASELINE]["b32_s128_per_s"])


def report(s: dict[str, Any]) -> str:
    """The run as Markdown: stages with their fidelity, sizes, speed side by side, the budget."""
    lines = [f"# {s['recipe']['name']}: sentence-embedding compression", "",
             f"{s['cpu']}; {s['recipe']['threads']} thread(s); {s['date']}.", "",
             "| step | parameters | mean cosine | 1st-pct cosine | top-10 overlap |", "|---|---|---|---|---|"]
    for st in s["steps"]:
        f = st["fidelity"]
        label = st["kind"] + (f" ({st['mode']})" if "mode" in st else "")
        lines.append(f"| {label} | {st.get('params', '–'):,} | {f['mean_cosine']:.4f} | {f['p1_cosine']:.4f} | "
                     f"{f['top10_overlap']:.3f} |" if isinstance(st.get("params"), int) else
                     f"| {label} | – | {f['mean_cosine']:.4f} | {f['p1_cosine']:.4f} | {f['top10_overlap']:.3f} |")
    lines += ["", "| ONNX file | size | batch 32 × 128 tokens | vs standard fp32 | batch 1 × 32 tokens |",
              "|---|---|---|---|---|"]
    base = s["timing"]["fp32 ONNX (standard export)"]["b32_s128_per_s"]
    for name, t in s["timing"].items():
        size = s["sizes"].get(name)
        lines.append(f"| {name} | {f'{size / 1e6:.1f} MB' if size else '–'} | {t['b32_s128_per_s']:.1f} /s | "
                     f"{t['b32_s128_per_s'] / base:.2f}× | {t['b1_s32_ms']:.2f} ms |")
    lines += ["", "| budget | value | limit | |", "|---|---|---|---|"]
    lines += [f"| {c['limit']} | {c['value']:.4f} {c['unit']} | {'≥' if c['limit'].startswith('min_') else '≤'} "
              f"{c['allowed']} | {'ok' if c['ok'] else 'MISSED'} |" for c in s["checks"]]
    return "\n".join(lines) + "\n"
