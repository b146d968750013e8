"""`pack`: the `.krk` container (relative indices + Huffman); its size is the deployable size."""

from __future__ import annotations

from karuku.codec import PackConfig, pack_model
from karuku.pipeline.stages import StageOutput


class Settings(PackConfig):
    pass


def apply(model, s: Settings, ctx) -> StageOutput:
    ckpt = ctx.current_ckpt
    meta = {"cluster": ckpt.meta.get("stage_meta", {}).get("cluster", {})}
    path = ctx.artifact_path("model.krk")
    packed = pack_model(model, ckpt.spec, path, meta, PackConfig(**s.model_dump()))
    return StageOutput(model, sizes={"packed": len(packed.data)}, artifacts={"krk": str(path)}, recover=False,
                       meta={"bytes": len(packed.data)})


def backoff(s: Settings, attempt: int) -> None:
    return None  # packing is lossless
