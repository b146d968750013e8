"""Hinton et al.'s MNIST distillation experiment: teacher, plain student, distilled student.

    .venv/bin/python benchmarks/distill_mnist.py --epochs 20 --out-dir runs/distill_mnist

Teacher `mlp-teacher` (784-1200-1200-10, dropout, inputs jittered ±2 px, --teacher-epochs long);
student `mlp-student` (784-800-800-10, no jitter, no dropout) trained on hard labels, and the same student distilled
from the teacher at T = 20. Every stage writes a checkpoint into --out-dir and is skipped when
it exists (a crashed run resumes from the per-epoch state next to it). Results go to
<out-dir>/results.json. The paper: 67 / 146 / 74 test errors.

Tuning the students: --student-optimizer, --student-lr, --student-weight-decay, --student-warmup
and --student-max-grad-norm change how the student of each stage run trains (the teacher keeps --lr
and --weight-decay); --tag names the checkpoints so that settings do not collide. Every result lists
the errors on the 5,000 validation images held out of train; --no-test leaves the test errors out,
so that a sweep picks its settings on validation only:

    .venv/bin/python benchmarks/distill_mnist.py --stages distilled --student-optimizer adam \
        --student-lr 1e-3 --tag _adam1e-3 --no-test --out-dir runs/distill_t60
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from karuku.data import DataConfig, load_splits
from karuku.io.atomic import write_text
from karuku.io.checkpoint import load_checkpoint, load_model, save_checkpoint
from karuku.training import TrainConfig, score
from karuku.training.job import train_checkpoint


def train_cfg(args: argparse.Namespace, teacher: bool = False) -> TrainConfig:
    # by default the same optimiser for all three nets; the --student-* options change the students'
    if teacher:
        return TrainConfig(epochs=args.teacher_epochs or args.epochs, batch_size=args.batch_size, lr=args.lr,
                           momentum=0.9, schedule="cosine", weight_decay=args.weight_decay, seed=args.seed)
    lr = args.student_lr if args.student_lr is not None else args.lr
    wd = args.student_weight_decay if args.student_weight_decay is not None else args.weight_decay
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.student_optimizer, lr=lr,
                       momentum=0.9, schedule="cosine", weight_decay=wd, warmup_iterations=args.student_warmup,
                       seed=args.seed, max_grad_norm=args.student_max_grad_norm)


def stage(path: Path, run) -> dict:
    """Run `run()` unless `path` exists; return the checkpoint's metadata plus the wall time."""
    if not path.exists():
        start = time.perf_counter()
        run()
        meta_path = path.with_suffix(".minutes")
        write_text(meta_path, f"{(time.perf_counter() - start) / 60:.2f}\n")
    meta = load_checkpoint(path).meta
    minutes = path.with_suffix(".minutes")
    meta["minutes"] = float(minutes.read_text()) if minutes.exists() else None
    return meta


def val_errors(path: Path, val) -> int:
    """Errors of the checkpoint `path` on the validation split (carved from train, never trained on)."""
    model, _ = load_model(path)
    return score(model, val).errors


def distilled_stage(args: argparse.Namespace, teacher_path: Path, out: Path) -> None:
    from karuku.distillation import DistillConfig, distill
    from karuku.models import ModelSpec

    teacher, _ = load_model(teacher_path)
    data = DataConfig(name="mnist")
    splits = load_splits(data)
    spec = ModelSpec(name="mlp-student", input_shape=splits.input_shape, num_classes=splits.num_classes)
    torch.manual_seed(args.seed)
    student = spec.build()
    cfg = DistillConfig(temperature=args.temperature, alpha=args.alpha, train=train_cfg(args))
    result = distill(teacher, student, splits, cfg, state_path=Path(f"{out}.state"))
    test = score(student, splits.test)
    save_checkpoint(out, student, spec, {"data": data.model_dump(mode="json"),
                                         "distillation": cfg.model_dump(mode="json"),
                                         "result": result.as_dict(), "metrics": {"test": test.as_dict()}})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20, help="epochs of both students")
    p.add_argument("--teacher-epochs", type=int, default=None, help="epochs of the teacher (default: --epochs)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--student-max-grad-norm", type=float, default=None,
                   help="clip both students' gradient norm (a long-trained teacher's logits can diverge T=20 SGD)")
    p.add_argument("--student-optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    p.add_argument("--student-lr", type=float, default=None, help="the students' learning rate (default: --lr)")
    p.add_argument("--student-weight-decay", type=float, default=None,
                   help="the students' weight decay (default: --weight-decay)")
    p.add_argument("--student-warmup", type=int, default=0, help="the students' linear warm-up, in iterations")
    p.add_argument("--tag", default="", help="suffix of the students' checkpoint and results names")
    p.add_argument("--no-test", action="store_true",
                   help="report validation errors only (for choosing settings without looking at the test set)")
    p.add_argument("--temperature", type=float, default=20.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--teacher-dropout", type=float, default=0.3)
    p.add_argument("--teacher-input-dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=Path("runs/distill_mnist"))
    p.add_argument("--stages", default="teacher,plain,distilled")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    cfg = train_cfg(args)
    results = {}
    teacher = args.out_dir / "teacher.safetensors"
    if "teacher" in stages:
        kwargs = {"dropout": args.teacher_dropout, "input_dropout": args.teacher_input_dropout}
        results["teacher"] = stage(teacher, lambda: train_checkpoint(
            "mlp-teacher", train_cfg(args, teacher=True), teacher, DataConfig(name="mnist", augment_shift=2),
            model_kwargs=kwargs))
    plain = args.out_dir / f"student_plain{args.tag}.safetensors"
    kd = args.out_dir / f"student_kd_T{args.temperature:g}_a{args.alpha:g}{args.tag}.safetensors"
    if "plain" in stages:
        results["plain"] = stage(plain, lambda: train_checkpoint("mlp-student", cfg, plain, DataConfig(name="mnist")))
    if "distilled" in stages:
        results["distilled"] = stage(kd, lambda: distilled_stage(args, teacher, kd))
    paths = {"teacher": teacher, "plain": plain, "distilled": kd}
    val = load_splits(DataConfig(name="mnist")).val
    summary = {}
    for name, m in results.items():
        summary[name] = {"val_errors": val_errors(paths[name], val), "val_total": len(val), "minutes": m["minutes"]}
        if not args.no_test:
            summary[name] |= {"test_errors": m["metrics"]["test"]["errors"],
                              "test_total": m["metrics"]["test"]["total"]}
    if {"teacher", "plain", "distilled"} <= set(summary) and not args.no_test:
        t, s, d = (summary[k]["test_errors"] for k in ("teacher", "plain", "distilled"))
        summary["ratios"] = {"distilled_over_teacher": round(d / t, 3), "distilled_over_plain": round(d / s, 3)}
    summary["settings"] = vars(args) | {"out_dir": str(args.out_dir)}
    write_text(args.out_dir / f"results{args.tag}.json", json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
