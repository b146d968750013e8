"""`evaluate`: every measurement of one model, in one typed `Evaluation`.

The CLI (`karuku evaluate`, `karuku prune`), the compression loop and its report all measure through
here, so a figure means the same everywhere: sizes of every deployed form (`forms`), the smallest one as
the deployed size, activation bytes and energy of the form that is deployed, speed of its ONNX file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from torch import nn

from karuku.errors import KarukuError
from karuku.measure import counts, energy, forms, memory
from karuku.measure.inputs import signature
from karuku.measure.profiles import Fit, Profile, check_fit, get_profile
from karuku.measure.speed import latency
from karuku.measure.units import size

DEFAULT_ON_CHIP = 1 << 20


@dataclass
class Evaluation:
    """Quality, size, compute, speed and energy of one model as deployed (all per sample unless noted).

    Quality is the task's (`karuku.tasks`): `metrics` holds all its figures, `metric` names the one budgets
    judge (`quality`); a classification also fills `accuracy` (top-1), `errors`, `total` and `loss`.

    `sizes` holds every stored form (`fp32`, `int8`, `packed`); `deploy_kind` is the smallest. `integer`:
    the model computes on 8-bit integers, so activations take one byte each. `latency` maps an engine
    (`torch`: the float computation in eager PyTorch; `onnxruntime`: the deployed ONNX file) to its speed.
    """

    params: int
    nonzeros: int
    macs: int
    effective_macs: int
    sizes: dict[str, int]
    deploy_kind: str
    integer: bool
    peak_activation_bytes: int
    activation_traffic_bytes: int  # all leaf-module outputs of one inference (the energy model's activations)
    energy: dict[str, Any]
    threads: int
    accuracy: float | None = None
    errors: int | None = None
    total: int | None = None
    loss: float | None = None
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # technique figures (integer-engine accuracy, ...)
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)  # device profile -> {"fits", "reasons"}
    cpu: str = ""  # what the speed figures were measured on (karuku.cpu.detect().summary())
    task: str | None = None  # the quality measure (classification, regression, fidelity, a user's metric)
    metric: str | None = None  # the figure of `metrics` budgets judge
    metrics: dict[str, float] = field(default_factory=dict)
    inputs: str = ""  # what the model was fed when it is not one float tensor (inputs.Signature.describe())

    def __post_init__(self):
        if not self.metrics and self.accuracy is not None:  # stored before tasks existed: a classification
            self.task, self.metric = "classification", "top1"
            self.metrics = {"top1": self.accuracy, **({"loss": self.loss} if self.loss is not None else {})}

    @property
    def quality(self) -> float | None:
        """The value of the task's headline metric (top-1 accuracy for a classification)."""
        return self.metrics.get(self.metric) if self.metric else None

    def test_score(self) -> dict[str, Any] | None:
        """The test figures as `karuku.training.Score.as_dict()` gives them (checkpoint metadata keeps these)."""
        if self.accuracy is None:
            return None
        return {"loss": self.loss, "accuracy": self.accuracy, "errors": self.errors, "total": self.total}

    @property
    def deploy_bytes(self) -> int:
        return self.sizes[self.deploy_kind]

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzeros / self.params if self.params else 0.0

    @property
    def latency_ms(self) -> float | None:
        """Batch-1 median of the deployed file in ONNX Runtime (else in torch)."""
        speed = self.latency.get("onnxruntime") or self.latency.get("torch")
        return speed["b1_median_ms"] if speed else None

    @property
    def throughput_b64(self) -> float | None:
        speed = self.latency.get("onnxruntime") or self.latency.get("torch")
        return speed["b64_per_s"] if speed else None

    @property
    def energy_uj(self) -> float:
        return self.energy["total_uj"]

    def fit(self, profile: str | Profile) -> Fit:
        """Does the deployed form fit a device profile? The reasons carry the numbers."""
        p = get_profile(profile) if isinstance(profile, str) else profile
        return check_fit(p, self.deploy_bytes, self.peak_activation_bytes)

    def as_dict(self) -> dict[str, Any]:
        """Every field, plus the derived figures reports read (deploy_bytes, latency_ms, throughput_b64, energy_uj)."""
        return dict(asdict(self), deploy_bytes=self.deploy_bytes, latency_ms=self.latency_ms,
                    throughput_b64=self.throughput_b64, energy_uj=self.energy_uj)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a table."""
        out: list[tuple[str, str]] = []
        if self.accuracy is not None:  # what was scored: the model as stored (a quantized one as int8, fake-quant)
            what = f" ({self.deploy_kind} model)" if self.deploy_kind != "fp32" else ""
            out.append((f"test accuracy{what}", f"{100 * self.accuracy:.2f} % ({self.errors} errors / {self.total})"))
        out += quality_rows(self)
        out += [("inputs", self.inputs)] if self.inputs else []
        out += [
            ("parameters", f"{self.params:,}"),
            ("nonzeros", f"{self.nonzeros:,} ({100 * self.sparsity:.1f} % sparse)"),
            ("MACs / sample", f"{self.macs:,} (effective {self.effective_macs:,})"),
        ]
        out += [(f"size {k}" + (" (deployed)" if k == self.deploy_kind and len(self.sizes) > 1 else ""), _kb(v))
                for k, v in self.sizes.items()]
        out += [(k, _kb(v) if k.endswith("bytes") else str(v)) for k, v in self.extra.items()]
        unit = "int8" if self.integer else "fp32"
        out.append((f"peak activations {unit}", _kb(self.peak_activation_bytes)))
        for engine, fig in self.latency.items():
            what = "" if self.deploy_kind == "fp32" else (
                f" ({self.deploy_kind})" if engine == "onnxruntime" else " (float computation)")
            out.append((f"{engine} latency b1{what}",
                        f"{fig['b1_median_ms']:.3f} ms median, {fig['b1_p90_ms']:.3f} p90"))
            out.append((f"{engine} throughput b64{what}", f"{fig['b64_per_s']:,.0f} samples/s"))
        out.append(("threads", str(self.threads)))
        if self.cpu:
            out.append(("CPU", self.cpu))
        for name, f in self.fits.items():
            out.append((f"fits {name}", ("yes" if f["fits"] else "NO") + ": " + "; ".join(f["reasons"])))
        out.append(("energy / inference", f"{self.energy['total_uj']:.3f} µJ (weights in {self.energy['weights_in']})"))
        out.append(("energy assumptions", self.energy["assumptions"]))
        return out


def quality_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """The task's figures as table rows (top-1 accuracy has its own row above); the budget's one marked."""
    if not ev.metrics or ev.task is None:
        return []
    from karuku.tasks.registry import TASKS

    task = TASKS.get_or_none(ev.task)
    rows = []
    for name, value in ev.metrics.items():
        if ev.task == "classification" and name in ("top1", "loss"):
            continue
        m = next((m for m in task.metrics if m.name == name), None) if task is not None else None
        label = f"test {m.description}" if m is not None else f"test {name}"
        shown = m.show(value) if m is not None else f"{value:.6g}"
        rows.append((label + (" (judged)" if name == ev.metric and ev.task != "classification" else ""), shown))
    return rows


def _kb(n: int) -> str:
    return f"{size(n)} ({n:,} B)"


def evaluate(model: nn.Module, data=None, input_shape: tuple[int, ...] | None = None, threads: int | None = None,
             engines=("torch", "onnxruntime"), runs: int = 30, *, sizes: dict[str, int] | None = None,
             profile: str | None = None, on_chip_bytes: int | None = None, details: bool = False,
             task=None, reference: nn.Module | None = None, inputs=None) -> Evaluation:
    """Measure `model`: the task's quality on the test set (when `data`, a DataSplits, is given), counts, sizes,
    activations, speed, energy.

    `task`: a `TaskConfig` (or its name; default: classification for class labels, regression for values,
    fidelity for unlabelled data). `reference`: the uncompressed model, for tasks that compare with it.

    `sizes`: forms stored outside the model object (e.g. {"packed": bytes of a .krk file}). `profile`: check
    the fit and take its on-chip memory for the energy estimate. `details`: add the techniques' own figures.
    `threads`: of the timed runs (default: the threads this process computes with, `karuku.threads`).
    `inputs`: what the model takes when it is not one float tensor of `input_shape` — example inputs (a tensor,
    a tuple or a dict of tensors: token ids and an attention mask) or a `karuku.measure.inputs.Signature`; every
    count, the memory, the ONNX export and the timing use it. Default: the model class's registered inputs, else
    one float input of `input_shape` (or the data's: its first test examples when they carry several inputs).
    """
    from karuku.tasks import measure_task
    from karuku.threads import current_threads

    threads = threads or current_threads()
    if input_shape is None and inputs is None and data is not None:
        inputs = data.model_inputs()  # examples of several inputs (token ids, mask): measured on them
    sig = signature(model, inputs if inputs is not None else (tuple(input_shape) if input_shape is not None else None))
    model.eval()
    rows = counts.layer_counts(model, sig)
    tot = counts.totals(model, sig, rows)
    all_forms = forms.forms_of(model, sizes)
    deploy = forms.deployed(all_forms)
    integer = any(f.integer for f in all_forms)
    acts = memory.activation_bytes(model, sig, bytes_per_value=1 if integer else 4)
    p = get_profile(profile) if profile else None
    chip = on_chip_bytes or (p.on_chip_bytes if p else DEFAULT_ON_CHIP)
    en = energy.estimate(tot.effective_macs, deploy.bytes, acts["total"], integer=integer, on_chip_bytes=chip)
    ev = Evaluation(tot.params, tot.nonzeros, tot.macs, tot.effective_macs, {f.kind: f.bytes for f in all_forms},
                    deploy.kind, integer, acts["peak"], acts["total"], en.as_dict(), threads,
                    layers=[asdict(r) for r in rows], inputs="" if sig.input_shape is not None else sig.describe())
    if data is not None:
        r = measure_task(model, data.test, task, reference, targets=getattr(data, "targets", "classes"))
        ev.task, ev.metric, ev.metrics = r.task, r.metric, r.metrics
        if r.task == "classification":
            ev.errors, ev.total = r.total - round(r.metrics["top1"] * r.total), r.total
            ev.accuracy, ev.loss = 1 - ev.errors / r.total, r.metrics["loss"]
    if engines:
        from karuku.cpu import detect

        ev.cpu = detect().summary()
        reference, onnx = _deployed(model, all_forms, "onnxruntime" in engines)
        if "onnxruntime" in engines and onnx is None:
            from karuku.measure.onnx_runtime import export_bytes

            try:
                onnx = export_bytes(reference, sig)
            except KarukuError as exc:  # torch.onnx cannot export every model: time the rest, say why not this
                engines = tuple(e for e in engines if e != "onnxruntime")
                ev.extra["onnxruntime"] = f"not timed: {exc.message}"
        if engines:
            ev.latency = {k: s.as_dict() for k, s in latency(reference, sig, threads, engines, runs, onnx).items()}
    if details:
        for f in all_forms:
            if f.details is not None:
                ev.extra.update(f.details(data))
    if p is not None:
        fit = ev.fit(p)
        ev.fits[p.name] = fit.as_dict()
    return ev


def _deployed(model: nn.Module, all_forms: list[forms.Form], want_onnx: bool = True) -> tuple[nn.Module, bytes | None]:
    """(the float computation of the model, its registered deployed ONNX or None for the fp32 export)."""
    own = next((f for f in all_forms if f.onnx is not None or f.float_model is not None), None)
    reference = own.float_model if own is not None and own.float_model is not None else model
    onnx = own.onnx() if own is not None and own.onnx is not None and want_onnx else None
    return reference, onnx


def deployed_onnx(model: nn.Module, input_shape) -> bytes:
    """The ONNX file `model` deploys as: its form's own (int8 for a quantized model) or its fp32 export
    (`input_shape`: what it takes, as `evaluate`'s `inputs`)."""
    from karuku.measure.onnx_runtime import export_bytes

    reference, onnx = _deployed(model, forms.forms_of(model))
    return onnx or export_bytes(reference, signature(model, input_shape))
