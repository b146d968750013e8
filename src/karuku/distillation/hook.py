"""DistillHook: joins karuku's training loop and replaces its loss with the distillation loss.

The teacher is frozen (eval mode, no gradients) and never enters the optimiser. Without
augmentation its logits are computed once (see cache.py) instead of at every step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from karuku.data.batches import Inputs, describe, feed, map_inputs
from karuku.distillation.cache import LogitCache
from karuku.distillation.hints import FeatureTap, find_layer, hint_loss, make_adapter
from karuku.distillation.loss import DistillationLoss
from karuku.errors import KarukuError
from karuku.models.check import check_inputs
from karuku.training.hooks import Hook

if TYPE_CHECKING:
    from karuku.training.state import TrainState


def freeze(teacher: nn.Module) -> nn.Module:
    """Eval mode (dropout off, batch-norm statistics fixed) and no gradients, in place."""
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def check_pair(teacher: nn.Module, student: nn.Module) -> None:
    """The teacher must be a separate model: freezing it must not freeze the student."""
    if teacher is student:
        raise KarukuError("the teacher and the student are the same model",
                          "pass a copy made before compressing, e.g. copy.deepcopy(model)")
    shared = {id(p) for p in teacher.parameters()} & {id(p) for p in student.parameters()}
    if shared:
        raise KarukuError(f"the teacher and the student share {len(shared)} parameter tensors",
                          "give the teacher its own copy, e.g. copy.deepcopy(model)")


def _run(model: nn.Module, x: Inputs, role: str) -> torch.Tensor:
    check_inputs(model, x, f"the {role}")
    try:
        return feed(model, x)
    except Exception as exc:  # any failure here means the model does not fit the data
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise KarukuError(f"the {role} cannot run on inputs {describe(x)}: {first}",
                          "teacher and student must take the same inputs") from None


class DistillHook(Hook):
    """Replace the training loss by distillation from `teacher` (plus optional hint losses).

    `train_inputs`: the training inputs (a tensor, or a tuple or dict of the models' inputs); a couple of them
    check that the two models fit together, and with `cache=True` (one tensor) the teacher's logits on all of them
    are computed once at the start (pass `cache=False` when the loop augments its inputs). `hints` maps student
    layer names to teacher layer names; each pair gets a learned adapter whose parameters
    `parameters()` hands to the optimiser. Call `close()` when done (removes the layer taps).
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, train_inputs: Inputs,
                 temperature: float = 4.0, alpha: float = 0.9, hints: dict[str, str] | None = None,
                 hint_weight: float = 1.0, cache: bool = True, match: str = "soft-targets"):
        check_pair(teacher, student)
        self.loss_fn = DistillationLoss(temperature, alpha, match)
        self.teacher, self.train_inputs = freeze(teacher), train_inputs
        self.hint_weight = float(hint_weight)
        self.hint_pairs = list((hints or {}).items())
        self.student_taps = [FeatureTap(find_layer(student, s, "the student")) for s, _ in self.hint_pairs]
        self.teacher_taps = [FeatureTap(find_layer(teacher, t, "the teacher")) for _, t in self.hint_pairs]
        # hints need the teacher's inner features at every step, so only logits-only runs cache; the cache keys
        # an example by one tensor's bytes (inputs of several tensors come from datasets read as needed: live)
        self.cache_enabled = cache and not self.hint_pairs and isinstance(train_inputs, torch.Tensor)
        self.cache: LogitCache | None = None
        self.adapters = nn.ModuleList(self._probe(student))
        self._synced: nn.ModuleList | None = None  # the adapters in DDP, under torchrun (see on_start)

    def _probe(self, student: nn.Module) -> list[nn.Module]:
        """Run both models on two examples: check their outputs agree in shape, size the adapters."""
        sample = map_inputs(lambda t: t[:2], self.train_inputs)
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad():
                s_out, t_out = _run(student, sample, "student"), _run(self.teacher, sample, "teacher")
        finally:
            student.train(was_training)
        if s_out.shape != t_out.shape:
            raise KarukuError(f"the student outputs {tuple(s_out.shape[1:])} per example but the teacher "
                              f"{tuple(t_out.shape[1:])}", "both must predict the same classes")
        adapters = []
        for (s, t), st, tt in zip(self.hint_pairs, self.student_taps, self.teacher_taps):
            if st.value is None or tt.value is None:
                raise KarukuError(f"hint {s}→{t}: the layer's output is not a tensor", "pick another layer")
            adapters.append(make_adapter(st.value.shape, tt.value.shape, f"{s}→{t}"))
        return adapters

    # --- the loop's hook points ---

    def on_start(self, state: TrainState) -> None:
        freeze(self.teacher)
        if self.hint_pairs and self._synced is None and state.world.size > 1:
            # DDP averages the student's gradients across processes but knows nothing of the adapters: wrap
            # them in DDP too. (An all_reduce of their .grad from Python hands gloo tensors that Python owns; its
            # worker thread may release one after the interpreter has begun to exit, which aborts the process.)
            self._synced = nn.ModuleList(DistributedDataParallel(a) for a in self.adapters)
        if self.cache_enabled and self.cache is None:
            self.cache = LogitCache(self.teacher, self.train_inputs, state.config.eval_batch_size)

    def teacher_logits(self, x: Inputs) -> torch.Tensor:
        """From the cache when it holds the whole batch, else a live forward pass (eval, no grad)."""
        if self.cache is not None:
            cached = self.cache.lookup(x)
            if cached is not None:
                return cached
        self.teacher.eval()  # in case anything switched it back to training mode
        with torch.no_grad():
            return feed(self.teacher, x)

    def loss(self, state: TrainState, x: Inputs, y: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(output, self.teacher_logits(x), y)
        for adapter, st, tt in zip(self._synced or self.adapters, self.student_taps, self.teacher_taps):
            loss = loss + self.hint_weight * hint_loss(adapter, st.value, tt.value)
        return loss

    def parameters(self) -> list[nn.Parameter]:
        return list(self.adapters.parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        settings = torch.tensor([self.loss_fn.temperature, self.loss_fn.alpha, self.hint_weight], dtype=torch.float64)
        return {"settings": settings, **{f"adapter.{k}": v for k, v in self.adapters.state_dict().items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "settings" in state and not torch.equal(state["settings"], self.state_dict()["settings"]):
            t, a, w = state["settings"].tolist()
            raise KarukuError(f"the saved training state was distilling with temperature {t:g}, alpha {a:g}, "
                              f"hint weight {w:g}", "use the same settings to resume, or delete the .state file")
        adapters = {k[len("adapter."):]: v for k, v in state.items() if k.startswith("adapter.")}
        if adapters:
            self.adapters.load_state_dict(adapters)

    def close(self) -> None:
        """Detach the layer taps from both models; drop the adapters' DDP wrappers."""
        for tap in self.student_taps + self.teacher_taps:
            tap.remove()
        self._synced = None
