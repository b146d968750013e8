"""Export's stage in the compression loop: the deployable file — fp32 or int8 ONNX (by the model), or C."""

from __future__ import annotations

from torch import nn

from karuku.deploy.config import ExportConfig
from karuku.errors import KarukuError
from karuku.pipeline.stage import Stage, StageOutput, StageRun, register_stage


@register_stage("export", ExportConfig)
class ExportStage(Stage):
    """Writes and checks a file; changes nothing trainable, so nothing to recover or back off."""

    def apply(self, model: nn.Module, cfg: ExportConfig, run: StageRun) -> StageOutput:
        from karuku.quant import QuantModel, to_integer

        quantized = isinstance(model, QuantModel) and model.cfg.mode != "dynamic"
        if cfg.format == "c":
            if not quantized:
                raise KarukuError("stage export: format c needs a quantized model", "put a quantize stage before it")
            from karuku.data.batches import first_inputs
            from karuku.deploy.c.project import export_c

            folder, im = run.artifact("c"), to_integer(model)
            # token ids are checked on the run's own test examples; one float input on random ones, as always
            line = export_c(im, run.parent.spec.name, folder, run.input_shape, profile=cfg.profile,
                            inputs=first_inputs(run.splits.test, 64) if im.several else None)
            return StageOutput(model, artifacts={"c": str(folder)}, meta={"c": line}, recover=False)
        if cfg.format == "tflite":
            if not quantized:
                raise KarukuError("stage export: format tflite needs a quantized model",
                                  "put a quantize stage before it")
            from karuku.data.batches import first_inputs
            from karuku.deploy.tflite.export import export_tflite

            path = run.artifact("model.tflite")
            line = export_tflite(to_integer(model), path, first_inputs(run.splits.test, 256), compact=cfg.compact)
            return StageOutput(model, artifacts={"tflite": str(path)}, meta={"tflite": line}, recover=False)
        if quantized:  # token ids and masks too: the int8 file takes them as int64 inputs
            return StageOutput(model, artifacts={"onnx_int8": str(run.artifact("model.int8.onnx"))},
                               meta={"int8_onnx": _int8_onnx(model, cfg, run)}, recover=False)
        if cfg.int8:
            raise KarukuError("stage export: int8 needs a quantized model", "put a quantize stage before it")
        from karuku.deploy.onnx_fp32 import export_fp32

        res = export_fp32(model, run.inputs, run.artifact("model.onnx"))
        return StageOutput(model, artifacts={"onnx": str(res.path)}, recover=False,
                           meta={"onnx_note": res.note} if res.note else {})


def _int8_onnx(model, cfg: ExportConfig, run: StageRun) -> dict:
    """Write the int8 ONNX; if ONNX Runtime here misses the engine's answers, fall back to the u8u8 representation
    (exact on every CPU, no requantization) instead of failing the run, and say so in the report."""
    from karuku.cpu import detect
    from karuku.data.batches import first_inputs
    from karuku.deploy.export import export_int8_onnx
    from karuku.deploy.parity import ParityError

    path, x = run.artifact("model.int8.onnx"), first_inputs(run.splits.test, 2000)
    info = {"cpu": detect().summary()}
    try:
        info["result"] = export_int8_onnx(model, run.input_shape, path, inputs=x, target_isa=cfg.target_isa,
                                          representation=cfg.representation)
    except ParityError as miss:
        info["fallback"] = f"{miss.message}; written as u8u8 instead (exact on every CPU, slower kernels)"
        if run.verbose:
            print(f"export: {info['fallback']}", flush=True)
        info["result"] = export_int8_onnx(model, run.input_shape, path, inputs=x, target_isa="portable",
                                          representation="u8u8")
    return info
