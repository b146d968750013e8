"""fp32 ONNX export (one self-contained file, as bytes) and ONNX Runtime sessions with fixed threads."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.measure import inputs
from karuku.quiet import native_output_silenced

# What the tracer says when Python control flow reads a tensor's values: the exported graph keeps only the
# branch the example input took (`if x.mean() > 0:`, `for _ in range(int(x.max()))`).
FROZEN = ("Python boolean", "Python number", "Python index", "Python integer", "Python float")


def export_bytes(model: nn.Module, input_shape, opset: int = 17,
                 frozen: list[str] | None = None) -> bytes:
    """Serialise `model` to ONNX with a dynamic batch axis, weights inline (no external data file).

    `input_shape`: what the model takes (an input shape, a `inputs.Signature` or example inputs); the file's
    inputs carry the signature's names and dtypes (one float input is `input`), its first output is `logits`.
    `frozen`: a list that receives the tracer's warnings about control flow on tensor values (see FROZEN).
    """
    import onnx

    sig = inputs.signature(model, input_shape)
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            # The TorchScript-based exporter writes one self-contained model in well under a second;
            # the dynamo exporter takes seconds and splits weights into a .data file by default.
            example = sig.fixed(1)
            # by name: the last element of args is read as keyword arguments; the file's inputs follow forward's order
            args = tuple(example) if not sig.keywords else (dict(zip(sig.names, example)),)
            names = sig.names if not sig.keywords else inputs.forward_order(model, sig.names)
            with native_output_silenced():  # a failing export prints its IR graph from C++
                torch.onnx.export(model, args, buf, dynamo=False, opset_version=opset,
                                  input_names=names, output_names=["logits"],
                                  dynamic_axes={**{n: {0: "batch"} for n in names}, "logits": {0: "batch"}})
    except Exception as exc:
        raise KarukuError(f"ONNX export failed: {str(exc).splitlines()[0][:300]}") from None
    finally:
        model.train(was_training)
    if frozen is not None:
        traced = [str(w.message) for w in seen if issubclass(w.category, torch.jit.TracerWarning)]
        frozen += sorted({m.splitlines()[0] for m in traced if any(k in m for k in FROZEN)})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def session(model_bytes: bytes | str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session with `threads` intra-op threads (default: this process's) and full graph
    optimisation; its threads sleep instead of spinning while they wait when OpenMP's do (`karuku.threads`)."""
    import onnxruntime as ort

    from karuku.threads import current_threads, passive_waiting

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or current_threads()
    opts.inter_op_num_threads = 1
    if passive_waiting():
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    src = model_bytes if isinstance(model_bytes, bytes) else str(model_bytes)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run(sess, *xs: np.ndarray) -> np.ndarray:
    """The first output of `sess` on inputs `xs`, in the file's input order."""
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(xs):
        raise KarukuError(f"the ONNX model takes {len(names)} inputs ({', '.join(names)}), given {len(xs)}",
                          "give one array per input, in the file's order")
    return sess.run(None, dict(zip(names, xs)))[0]
