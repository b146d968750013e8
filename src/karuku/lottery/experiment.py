"""A lottery-ticket experiment on disk: `<out>/<model>-<hash of settings>/trial-T/level-LL/<variant>/`.

Every (trial, level, variant) writes `result.json` last; a run that finds it skips that unit,
so a crashed experiment resumes and reaches the same results (training itself also resumes
from its per-epoch state). Variants: `ticket` (IMP mask, survivors rewound), `reinit` (same mask,
fresh initialisation), `random-mask` (same per-layer sparsity, random positions, rewound weights).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from karuku.data.splits import DataSplits, load_splits
from karuku.errors import KarukuError
from karuku.io.atomic import write_text
from karuku.io.checkpoint import load_checkpoint, save_checkpoint, trust_import
from karuku.io.once import once, read_object
from karuku.lottery import imp
from karuku.lottery.config import LotteryConfig
from karuku.models.spec import ModelSpec
from karuku.progress import Progress, duration
from karuku.pruning.mask import SECTION, Mask
from karuku.pruning.masked import MaskedTraining
from karuku.pruning.targets import prunable
from karuku.training.estimate import seconds_per_iteration
from karuku.training.evaluate import score
from karuku.training.hooks import Hook
from karuku.training.loop import planned_iterations, train

Log = Callable[[str], None]


class Snapshot(Hook):
    """Copies the weights at iteration k (the rewind point) during the dense run."""

    def __init__(self, k: int):
        self.k = k
        self.state: dict[str, torch.Tensor] | None = None

    def on_start(self, state) -> None:
        if self.k == 0 and self.state is None:
            self.state = {n: t.detach().clone() for n, t in state.model.state_dict().items()}

    def after_step(self, state) -> None:
        if state.iteration == self.k:
            self.state = {n: t.detach().clone() for n, t in state.model.state_dict().items()}


def experiment_dir(out: str | Path, cfg: LotteryConfig) -> Path:
    """The folder of this experiment; an `out` that is itself another experiment's folder is refused."""
    out = Path(out)
    own = out / "settings.json"
    if own.is_file():
        theirs = read_object(own, f"delete {own} if {out} holds nothing else, or choose another --out")
        if theirs != cfg.model_dump(mode="json"):
            diff = [k for k in theirs if theirs.get(k) != cfg.model_dump(mode="json").get(k)]
            raise KarukuError(f"{out} holds another experiment (settings differ in: {', '.join(diff) or 'keys'})",
                              "choose another --out, or the parent folder")
        return out
    folder = out / f"{cfg.model.replace(':', '_').replace('/', '_')}-{cfg.digest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "settings.json", json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))
    return folder


def total_iterations(cfg: LotteryConfig, splits: DataSplits) -> int:
    """Training iterations of one run: `train.iterations`, else its epochs over the training split."""
    return planned_iterations(cfg.train, splits)


def units(cfg: LotteryConfig, folder: Path) -> list[Path]:
    """Every (trial, level, variant) folder of the experiment, in the order they run."""
    out = []
    for t in range(cfg.trials):
        out.append(folder / f"trial-{t}" / "level-00" / "ticket")
        for level in range(1, cfg.levels + 1):
            out += [folder / f"trial-{t}" / f"level-{level:02d}" / v
                    for v in ("ticket", *(c for c in ("reinit", "random-mask") if c in cfg.controls))]
    return out


def run(cfg: LotteryConfig, out: str | Path, log: Log = print) -> Path:
    """Run (or resume) the whole experiment; return its folder.

    Before training starts, `log` gets the experiment's size and a time estimate from iterations timed here;
    then one line per finished unit, with the elapsed time and the estimate left (a bar on a terminal).
    """
    splits = load_splits(cfg.data)
    total = total_iterations(cfg, splits)
    if cfg.rewind > total:
        raise KarukuError(f"rewind iteration {cfg.rewind} is beyond the training length ({total} iterations)",
                          "rewind to an iteration within training, e.g. 0")
    folder = experiment_dir(out, cfg)
    trust_import(cfg.model)  # named by the user; the experiment reloads its own tickets
    spec = ModelSpec(name=cfg.model, input_shape=splits.input_shape, num_classes=splits.num_classes,
                     kwargs=cfg.model_kwargs)
    todo = [u for u in units(cfg, folder) if not (u / "result.json").is_file()]
    if todo:
        log(f"lottery: {estimate(cfg, spec, splits, len(units(cfg, folder)), len(todo), total)}")
    with Progress(len(todo) * total, "lottery", echo=log) as progress:
        for t in range(cfg.trials):
            _trial(cfg, spec, splits, folder / f"trial-{t}", cfg.seed + t, progress.line)
    return folder


def estimate(cfg: LotteryConfig, spec: ModelSpec, splits: DataSplits, runs: int, todo: int, total: int) -> str:
    """The experiment's size and how long what is left will take, from training iterations timed here."""
    per_iteration = seconds_per_iteration(_build(spec, cfg.seed), splits, cfg.train)
    variants = ", ".join(["ticket", *cfg.controls])
    done = f"; {runs - todo} finished before" if todo < runs else ""
    trials = f"{cfg.trials} trial{'s' * (cfg.trials > 1)}"
    return (f"{runs} training run{'s' * (runs != 1)} of {total:,} iterations ({trials}: the dense run, "
            f"then {cfg.levels} level{'s' * (cfg.levels > 1)} × {variants}){done}. Timed here: "
            f"{1000 * per_iteration:.1f} ms per iteration, so the {todo * total:,} iterations left take about "
            f"{duration(todo * total * per_iteration)} (an estimate; a busy machine is slower)")


def _build(spec: ModelSpec, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return spec.build()


def _unit(path: Path, label: str, log: Log, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    def run(_folder: Path) -> dict[str, Any]:
        start = time.perf_counter()
        return dict(fn(), seconds=round(time.perf_counter() - start, 2))

    result, cached = once(path, run)
    if not cached:
        log(f"{label}: {100 * result['weights_remaining']:.1f} % weights, test {100 * result['test_acc']:.2f} %, "
            f"early stop at {result['early_stop_iteration']} ({duration(result['seconds'])})")
    return result


def _fit(model: nn.Module, mask: Mask | None, cfg: LotteryConfig, splits: DataSplits, seed: int, unit: Path,
         extra: list[Hook] = ()) -> dict[str, Any]:
    hooks = ([MaskedTraining(mask)] if mask is not None else []) + list(extra)
    tcfg = cfg.train.model_copy(update={"seed": seed})
    res = train(model, splits, tcfg, hooks=hooks, state_path=unit / "train.state", verbose=False,
                label=str(unit.relative_to(unit.parents[2])))
    best = min(res.history, key=lambda h: h["val_loss"]) if res.history else None
    names = prunable(model)
    params = dict(model.named_parameters())
    kept = sum(int((params[n] != 0).sum()) for n in names) if mask is None else mask.kept()
    return {"test_acc": score(model, splits.test).accuracy, "best_val_acc": max(h["val_acc"] for h in res.history),
            "best_val_loss": best["val_loss"], "early_stop_iteration": best["iteration"],
            "iterations": res.iterations, "weights_remaining": kept / sum(params[n].numel() for n in names)}


def _trial(cfg: LotteryConfig, spec: ModelSpec, splits: DataSplits, folder: Path, seed: int, log: Log) -> None:
    rewind_file = folder / "rewind.safetensors"

    def dense() -> dict[str, Any]:
        model = _build(spec, seed)
        snap = Snapshot(cfg.rewind)
        unit = folder / "level-00" / "ticket"
        result = _fit(model, None, cfg, splits, seed, unit, [snap])
        save_checkpoint(rewind_file, _with_state(spec, snap.state), spec, {"kind": "lottery-rewind"})
        save_checkpoint(unit / "model.safetensors", model, spec, {"kind": "lottery-ticket", "level": 0})
        return dict(result, level=0, variant="dense")

    _unit(folder / "level-00" / "ticket", f"trial {seed} level 0 dense", log, dense)
    rewind_state = load_checkpoint(rewind_file).state
    for level in range(1, cfg.levels + 1):
        prev = load_checkpoint(folder / f"level-{level - 1:02d}" / "ticket" / "model.safetensors")
        trained = prev.build_model()
        names = prunable(trained)
        previous = Mask(prev.sections[SECTION]) if SECTION in prev.sections else None
        rates = imp.level_rates(names, cfg.rate, cfg.output_rate, level)
        mask = imp.ticket_mask(trained, previous, names, rates, cfg.scope)
        base = folder / f"level-{level:02d}"

        def ticket(mask=mask, base=base, level=level) -> dict[str, Any]:
            model = _with_state(spec, rewind_state)
            result = _fit(model, mask, cfg, splits, seed, base / "ticket")
            save_checkpoint(base / "ticket" / "model.safetensors", model, spec,
                            {"kind": "lottery-ticket", "level": level}, {SECTION: dict(mask.items())})
            return dict(result, level=level, variant="ticket")

        def reinit(mask=mask, base=base, level=level) -> dict[str, Any]:
            model = _build(spec, seed + 1000 * level + 7)  # fresh weights, same mask
            return dict(_fit(model, mask, cfg, splits, seed, base / "reinit"), level=level, variant="reinit")

        def rand(mask=mask, base=base, level=level) -> dict[str, Any]:
            model = _with_state(spec, rewind_state)
            rmask = imp.random_mask(model, mask, seed + 1000 * level + 13)
            return dict(_fit(model, rmask, cfg, splits, seed, base / "random-mask"), level=level,
                        variant="random-mask")

        _unit(base / "ticket", f"trial {seed} level {level} ticket", log, ticket)
        for control, fn in (("reinit", reinit), ("random-mask", rand)):
            if control in cfg.controls:
                _unit(base / control, f"trial {seed} level {level} {control}", log, fn)


def _with_state(spec: ModelSpec, state: dict[str, torch.Tensor]) -> nn.Module:
    model = spec.build()
    model.load_state_dict(state)
    return model


def results(folder: str | Path) -> list[dict[str, Any]]:
    """Every finished unit of one experiment folder, with its trial index."""
    rows = []
    for path in sorted(Path(folder).glob("trial-*/level-*/*/result.json")):
        row = read_object(path, f"delete the folder {path.parent} to redo that unit")
        row["trial"] = int(path.parts[-4].split("-")[1])
        rows.append(row)
    return rows
