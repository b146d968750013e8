"""The TFLite graph as plain data: tensors (shape, type, quantization, constant data) and builtin operators.

`lower.py` builds one from an IntegerModel; `flatbuf.py` serializes it with the TFLite schema. Keeping the
graph as data between the two lets tests inspect what is written without parsing a flatbuffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# BuiltinOperator codes of the TFLite schema (schema.fbs), with the version TFLite's converter gives the int8
# form of each op (tflite/converter/tools/versioning/op_version.cc)
# (an operator whose int8 form has another version says so when it is emitted: grouped CONV_2D 6, ADD on int32 1)
OPS: dict[str, tuple[int, int]] = {
    "ADD": (0, 2), "CONCATENATION": (2, 2), "CONV_2D": (3, 3), "DEPTHWISE_CONV_2D": (4, 3), "LOGISTIC": (14, 2),
    "MAX_POOL_2D": (17, 2), "RELU": (19, 2), "RELU6": (21, 2), "RESHAPE": (22, 1), "TANH": (28, 2), "PAD": (34, 2),
    "GATHER": (36, 2), "TRANSPOSE": (39, 2), "MEAN": (40, 2), "CAST": (53, 3), "MAXIMUM": (55, 2),
    "MINIMUM": (57, 2), "PADV2": (60, 2), "RESIZE_NEAREST_NEIGHBOR": (97, 2), "LEAKY_RELU": (98, 1),
    "QUANTIZE": (114, 1), "HARD_SWISH": (117, 1), "GELU": (150, 2),
}
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADDING = {"SAME": 0, "VALID": 1}
TYPES = {"float32": 0, "int32": 2, "int8": 9}  # TensorType


@dataclass
class Tensor:
    """A TFLite tensor: NHWC shape with batch; per-tensor or per-channel (`axis`) quantization; `data` if constant."""

    name: str
    shape: list[int]
    dtype: str
    scale: list[float] | None = None
    zero_point: list[int] | None = None
    axis: int = 0
    data: np.ndarray | None = None


@dataclass
class Operator:
    """A builtin operator: `op` names an entry of OPS; `options` are its BuiltinOptions fields by schema name."""

    op: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    layer: str = ""  # the integer-engine op it comes from (for messages and tests)
    version: int | None = None  # None: OPS's version of the op

    @property
    def opcode(self) -> tuple[str, int]:
        return self.op, self.version or OPS[self.op][1]


@dataclass
class Graph:
    """One subgraph: tensors, operators in execution order, and the graph's input / output tensor indices."""

    tensors: list[Tensor] = field(default_factory=list)
    operators: list[Operator] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def add(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def const(self, name: str, data: np.ndarray, **quant) -> int:
        """A constant tensor holding `data` (its dtype decides the tensor type)."""
        return self.add(Tensor(name, list(data.shape), str(data.dtype), data=np.ascontiguousarray(data), **quant))

    def emit(self, op: str, inputs: list[int], outputs: list[int], layer: str = "", version: int | None = None,
             **options) -> Operator:
        o = Operator(op, inputs, outputs, options, layer, version)
        self.operators.append(o)
        return o

    def data_bytes(self) -> int:
        """Bytes of every constant tensor (weights, biases, shapes): what the file cannot do without."""
        return sum(t.data.nbytes for t in self.tensors if t.data is not None)
