"""`cluster`: Deep Compression's weight sharing (karuku.codec) with centroid fine-tuning."""

from __future__ import annotations

from karuku.codec import ClusterConfig, cluster
from karuku.pipeline.stages import StageOutput
from karuku.training.loop import train


class Settings(ClusterConfig):
    pass


def apply(model, s: Settings, ctx) -> StageOutput:
    sharing = cluster(model, ClusterConfig(**s.model_dump()))
    if s.finetune is not None:
        train(model, ctx.splits, ctx.train_config(s.finetune), hooks=[sharing.hook()], verbose=ctx.verbose)
    return StageOutput(model, meta=sharing.meta(), hooks=[sharing.hook()])


def backoff(s: Settings, attempt: int) -> Settings | None:
    """One more bit per round (up to 8) for every layer."""
    if s.bits >= 8 and all(b >= 8 for b in s.layer_bits.values()):
        return None
    return s.model_copy(update={"bits": min(8, s.bits + 1),
                                "layer_bits": {k: min(8, b + 1) for k, b in s.layer_bits.items()}})
