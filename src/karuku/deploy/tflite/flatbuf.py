"""Serialize a `Graph` as a .tflite flatbuffer with the TFLite schema's generated builders (PyPI `tflite`).

One subgraph, buffer 0 the empty sentinel the schema reserves, one buffer per constant tensor, each buffer's
bytes aligned to 16 as TFLite's converter does (the schema's force_align). File identifier TFL3, schema
version 3. Equal shape, scale and zero-point vectors and equal quantization tables are written once
and referenced by every tensor that has them (a flatbuffer offset may be shared): per-channel weights and
biases need a scale and a zero point per channel, and the zero points are all 0, so one vector of zeros per
channel count serves them all.

`COMPACT` leaves out what neither interpreter reads (docs/EDGE.md, measured in docs/bench/edge.md): tensor
names and the scales and zero points of a convolution's int32 bias (both interpreters derive the
requantization from the input, weight and output scales; but LiteRT's XNNPACK delegate does not take such a
convolution, and TFLite's converter writes them, so other tools may expect them); and it aligns buffers to 4
bytes — the widest element a file holds is an int32 bias, which TFLite Micro reads in place (the LDRD / LDM
compilers emit for int32 arrays fault on an unaligned address on Cortex-M; the model array itself is placed
16-byte aligned, as TFLite Micro's examples do).
"""

from __future__ import annotations

import numpy as np

from karuku.deploy.tflite.graph import OPS, TYPES, Graph, Tensor
from karuku.errors import KarukuError

# the BuiltinOptions table of each operator (None: the operator has no options)
OPTIONS = {"ADD": "AddOptions", "CONCATENATION": "ConcatenationOptions", "CONV_2D": "Conv2DOptions",
           "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions", "LOGISTIC": None, "MAX_POOL_2D": "Pool2DOptions",
           "RELU": None, "RELU6": None, "RESHAPE": "ReshapeOptions", "TANH": None, "PAD": "PadOptions",
           "GATHER": "GatherOptions", "TRANSPOSE": "TransposeOptions", "MEAN": "ReducerOptions", "CAST": None,
           "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions", "PADV2": "PadV2Options",
           "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions", "LEAKY_RELU": "LeakyReluOptions",
           "QUANTIZE": None, "HARD_SWISH": None, "GELU": "GeluOptions"}
PLACEHOLDER = 127  # deprecated_builtin_code of operators numbered 127 and up (schema.fbs)
ALIGN = 16
COMPACT = {"names": False, "bias_quantization": False, "align": 4}  # serialize's options for `compact`
BIASED = ("CONV_2D", "DEPTHWISE_CONV_2D")  # operators whose third input is an int32 bias


def _schema():
    try:
        import flatbuffers
        import tflite
    except ImportError:
        raise KarukuError("writing .tflite needs the TFLite schema packages",
                          "pip install 'karuku[tflite]'") from None
    return flatbuffers, tflite


def _vector(b, start, values, prepend) -> int:
    start(b, len(values))
    for v in reversed(values):
        prepend(v)
    return b.EndVector()


def _bytes(b, data: np.ndarray, align: int) -> int:
    raw = data.tobytes()
    b.StartVector(1, len(raw), align)
    b.head = b.head - len(raw)
    b.Bytes[b.head:b.head + len(raw)] = raw
    return b.EndVector()


class _Shared:
    """Each distinct vector or quantization table once: its offset, by kind and content."""

    def __init__(self, b, t):
        self.b, self.t, self.seen = b, t, {}

    def vector(self, kind: str, start, values: list, prepend) -> int:
        key = (kind, tuple(values))
        if key not in self.seen:
            self.seen[key] = _vector(self.b, start, values, prepend)
        return self.seen[key]

    def quant(self, tensor: Tensor) -> int:
        b, t = self.b, self.t
        scales = [float(np.float32(s)) for s in tensor.scale]
        zps = [int(z) for z in tensor.zero_point]
        key = ("quant", tuple(scales), tuple(zps), tensor.axis)
        if key not in self.seen:
            scale = self.vector("f32", t.QuantizationParametersStartScaleVector, scales, b.PrependFloat32)
            zp = self.vector("i64", t.QuantizationParametersStartZeroPointVector, zps, b.PrependInt64)
            t.QuantizationParametersStart(b)
            t.QuantizationParametersAddScale(b, scale)
            t.QuantizationParametersAddZeroPoint(b, zp)
            t.QuantizationParametersAddQuantizedDimension(b, tensor.axis)
            self.seen[key] = t.QuantizationParametersEnd(b)
        return self.seen[key]


def serialize(graph: Graph, description: str = "karuku", names: bool = True, bias_quantization: bool = True,
              align: int = ALIGN) -> bytes:
    """The .tflite bytes of `graph`: with tensor names, the convolutions' bias quantization and buffers aligned
    to `align` bytes, or without (`COMPACT`)."""
    flatbuffers, t = _schema()
    b = flatbuffers.Builder(1024 + graph.data_bytes() * 2)
    codes = list(dict.fromkeys(o.opcode for o in graph.operators))
    # buffers: 0 is the empty sentinel, then one per constant tensor
    buffers, tensor_buffer = [], {}
    t.BufferStart(b)
    buffers.append(t.BufferEnd(b))
    for i, tensor in enumerate(graph.tensors):
        if tensor.data is not None:
            data = _bytes(b, tensor.data, align)
            t.BufferStart(b)
            t.BufferAddData(b, data)
            tensor_buffer[i] = len(buffers)
            buffers.append(t.BufferEnd(b))
    tensors, shared = [], _Shared(b, t)
    biases = set() if bias_quantization else {o.inputs[2] for o in graph.operators
                                              if o.op in BIASED and len(o.inputs) > 2}
    for i, tensor in enumerate(graph.tensors):
        name = b.CreateString(tensor.name) if names else None
        shape = shared.vector("i32", t.TensorStartShapeVector, [int(d) for d in tensor.shape], b.PrependInt32)
        quant = shared.quant(tensor) if tensor.scale is not None and i not in biases else None
        t.TensorStart(b)
        t.TensorAddShape(b, shape)
        t.TensorAddType(b, TYPES[tensor.dtype])
        t.TensorAddBuffer(b, tensor_buffer.get(i, 0))
        if name is not None:
            t.TensorAddName(b, name)
        if quant is not None:
            t.TensorAddQuantization(b, quant)
        tensors.append(t.TensorEnd(b))
    operators = []
    for o in graph.operators:
        table = OPTIONS[o.op]
        opts = None
        if table is not None:
            getattr(t, f"{table}Start")(b)
            for field, value in o.options.items():
                getattr(t, f"{table}Add{field}")(b, value)
            opts = getattr(t, f"{table}End")(b)
        ins = _vector(b, t.OperatorStartInputsVector, o.inputs, b.PrependInt32)
        outs = _vector(b, t.OperatorStartOutputsVector, o.outputs, b.PrependInt32)
        t.OperatorStart(b)
        t.OperatorAddOpcodeIndex(b, codes.index(o.opcode))
        t.OperatorAddInputs(b, ins)
        t.OperatorAddOutputs(b, outs)
        if opts is not None:
            t.OperatorAddBuiltinOptionsType(b, getattr(t.BuiltinOptions, table))
            t.OperatorAddBuiltinOptions(b, opts)
        operators.append(t.OperatorEnd(b))
    tensor_vec = _vector(b, t.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    op_vec = _vector(b, t.SubGraphStartOperatorsVector, operators, b.PrependUOffsetTRelative)
    in_vec = _vector(b, t.SubGraphStartInputsVector, graph.inputs, b.PrependInt32)
    out_vec = _vector(b, t.SubGraphStartOutputsVector, graph.outputs, b.PrependInt32)
    sg_name = b.CreateString("main")
    t.SubGraphStart(b)
    t.SubGraphAddTensors(b, tensor_vec)
    t.SubGraphAddOperators(b, op_vec)
    t.SubGraphAddInputs(b, in_vec)
    t.SubGraphAddOutputs(b, out_vec)
    t.SubGraphAddName(b, sg_name)
    subgraph = t.SubGraphEnd(b)
    opcodes = []
    for name, version in codes:
        code = OPS[name][0]
        t.OperatorCodeStart(b)
        t.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, PLACEHOLDER))  # readers of every age look here first
        t.OperatorCodeAddBuiltinCode(b, code)
        t.OperatorCodeAddVersion(b, version)
        opcodes.append(t.OperatorCodeEnd(b))
    code_vec = _vector(b, t.ModelStartOperatorCodesVector, opcodes, b.PrependUOffsetTRelative)
    sg_vec = _vector(b, t.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    buf_vec = _vector(b, t.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
    desc = b.CreateString(description)
    t.ModelStart(b)
    t.ModelAddVersion(b, 3)
    t.ModelAddOperatorCodes(b, code_vec)
    t.ModelAddSubgraphs(b, sg_vec)
    t.ModelAddDescription(b, desc)
    t.ModelAddBuffers(b, buf_vec)
    b.Finish(t.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
