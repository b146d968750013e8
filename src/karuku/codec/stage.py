"""Deep Compression's stages in the compression loop: `cluster` (weight sharing) and `pack` (the `.krk` file)."""

from __future__ import annotations

from torch import nn

from karuku.codec.config import ClusterConfig, PackConfig
from karuku.codec.krk import pack_model
from karuku.codec.sharing import cluster
from karuku.distillation.recovery import finetune, frozen_copy
from karuku.pipeline.stage import Stage, StageOutput, StageRun, register_stage


@register_stage("cluster", ClusterConfig)
class ClusterStage(Stage):
    """Weight sharing; recovery keeps the centroids shared, back-off adds a bit."""

    def apply(self, model: nn.Module, cfg: ClusterConfig, run: StageRun) -> StageOutput:
        teacher = frozen_copy(model) if cfg.distill else None
        sharing = cluster(model, cfg)
        if cfg.finetune is not None:
            finetune(model, run.splits, run.train_config(cfg.finetune), hooks=[sharing.hook()], teacher=teacher,
                     verbose=run.verbose, label="cluster tuning")
        return StageOutput(model, meta=sharing.meta(), hooks=[sharing.hook()])

    def backoff(self, cfg: ClusterConfig, round_: int) -> ClusterConfig | None:
        """One more bit per round (up to 8) for every layer."""
        if cfg.bits >= 8 and all(b >= 8 for b in cfg.layer_bits.values()):
            return None
        return cfg.model_copy(update={"bits": min(8, cfg.bits + 1),
                                      "layer_bits": {k: min(8, b + 1) for k, b in cfg.layer_bits.items()}})


@register_stage("pack", PackConfig)
class PackStage(Stage):
    """Lossless: its size (the `.krk` file's bytes) is the deployable size; nothing to back off."""

    def apply(self, model: nn.Module, cfg: PackConfig, run: StageRun) -> StageOutput:
        meta = {"cluster": run.parent.meta.get("stage_meta", {}).get("cluster", {})}
        path = run.artifact("model.krk")
        packed = pack_model(model, run.parent.spec, path, meta, cfg)
        return StageOutput(model, sizes={"packed": len(packed.data)}, artifacts={"krk": str(path)}, recover=False,
                           meta={"bytes": len(packed.data)})
