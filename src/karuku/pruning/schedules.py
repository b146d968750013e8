"""Schedules: how sparsity grows. One-shot is a single step; the others are functions of time.

- iterative: N rounds, each removing the same share of what is left,
  s_k = 1 − (1 − s_f)^(k/N);
- gradual (Zhu & Gupta, AGP): s_t = s_f + (s_i − s_f)(1 − t/T)^3, the mask recomputed every
  k steps during training by the `AGP` hook.
"""

from __future__ import annotations

from karuku.pruning.config import PruneConfig
from karuku.pruning.mask import Mask
from karuku.pruning.masked import MaskedTraining


def iterative_sparsity(final: float, round_: int, rounds: int) -> float:
    """Sparsity after round `round_` (1-based) of `rounds`."""
    return 1 - (1 - final) ** (round_ / rounds)


def agp_sparsity(final: float, step: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta's cubic ramp from `initial` at step 0 to `final` at step `end`."""
    t = min(1.0, max(0.0, step / end)) if end > 0 else 1.0
    return final + (initial - final) * (1 - t) ** 3


class AGP(MaskedTraining):
    """Gradual magnitude pruning during training: every `cfg.every` steps the mask tightens.

    The target is reached at `cfg.agp_end` of the run, then held; pruned weights never return.
    """

    def __init__(self, cfg: PruneConfig, mask: Mask | None = None):
        self.cfg = cfg
        self.end = 0
        super().__init__(mask)  # type: ignore[arg-type]  (None until on_start builds it)

    def on_start(self, state) -> None:
        from karuku.pruning.unstructured import compute_mask

        self.end = max(1, int(self.cfg.agp_end * state.total_iterations))
        if self.mask is None:
            self.mask = compute_mask(state.model, self.cfg, at=lambda r: 0.0)
        super().on_start(state)
        self._update(state)

    def _update(self, state) -> None:
        from karuku.pruning.unstructured import compute_mask

        step = min(state.iteration, self.end)
        self.mask = compute_mask(state.model, self.cfg, current=self.mask,
                                 at=lambda r: agp_sparsity(r, step, self.end))
        self.enforce(state.optimizer)

    def after_step(self, state) -> None:
        if state.iteration <= self.end and (state.iteration % self.cfg.every == 0 or state.iteration == self.end):
            self._update(state)
        else:
            self.enforce(state.optimizer)
