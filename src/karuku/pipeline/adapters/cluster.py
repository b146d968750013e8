"""`cluster`: Deep Compression's weight sharing (karuku.codec) with centroid fine-tuning."""

from __future__ import annotations

from pydantic import Field

from karuku.codec import ClusterConfig, cluster
from karuku.pipeline.stages import StageOutput
from karuku.training.config import TrainConfig
from karuku.training.loop import train


class Settings(ClusterConfig):
    tune_epochs: int = Field(1, ge=0, description="epochs of centroid fine-tuning (summed member gradients)")


def apply(model, s: Settings, ctx) -> StageOutput:
    sharing = cluster(model, ClusterConfig(**s.model_dump(exclude={"tune_epochs"})))
    if s.tune_epochs:
        cfg = TrainConfig(epochs=s.tune_epochs, lr=ctx.recipe.recovery.lr, seed=ctx.recipe.seed)
        train(model, ctx.splits, cfg, hooks=[sharing.hook()], verbose=ctx.verbose)
    return StageOutput(model, meta=sharing.meta(), hooks=[sharing.hook()])


def backoff(s: Settings, attempt: int) -> Settings | None:
    """One more bit per round (up to 8) for every layer."""
    if s.bits >= 8 and all(b >= 8 for b in s.layer_bits.values()):
        return None
    return s.model_copy(update={"bits": min(8, s.bits + 1),
                                "layer_bits": {k: min(8, b + 1) for k, b in s.layer_bits.items()}})
