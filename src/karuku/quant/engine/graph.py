"""IntegerModel: the integer-only model as a value object (ops, tensors, arrays), its file and executor.

The file is one safetensors: the int8 weights and int32 biases / multipliers / shifts as tensors,
and a JSON document (format `karuku.int-engine`) with the ordered ops, each value's shape, integer
type, zero point and scale. docs/QUANTIZATION.md specifies every op; the C generator reproduces
`run_int` bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from karuku.errors import KarukuError
from karuku.io import safefile
from karuku.quant import ort_requant
from karuku.quant.engine import ops
from karuku.quant.primitives import ROUNDINGS, quantize

FORMAT = "karuku.int-engine"
FORMAT_VERSION = 4  # 2 added `rounding` (version-1 files were made with "double"); 3 added the kinds from
# concat on (tables, asymmetric conv padding, padded average pooling); 4 several inputs, integer inputs (token
# ids) and the ops that read them (gather, quantize, gather_mean); older files read unchanged
KINDS = ("conv2d", "linear", "maxpool2d", "avgpool2d", "add", "flatten", "clamp", "concat", "lut", "reshape",
         "transpose", "upsample", "pad", "gather", "quantize", "gather_mean")
DTYPES = {"uint8": (0, 255), "int8": (-128, 127)}
INTEGER_INPUT = "int64"  # an input of integers taken as they are (token ids, a mask): scale 1, zero point 0
ONNXRUNTIME = "onnxruntime"  # ONNX Runtime's float32 requantization (karuku.quant.ort_requant): what an int8
RULES = (*ROUNDINGS, ONNXRUNTIME)  # ONNX file computes, for its parity check; the C kernels round in fixed point


def check_rule(rule: str) -> str:
    """`rule` itself when it is a known requantization rule of the engine, else an error naming them."""
    if rule not in RULES:
        raise KarukuError(f"unknown requantization rounding {rule!r}", f"use one of: {', '.join(RULES)}")
    return rule


@dataclass
class Value:
    """One tensor between ops: shape without batch, integer type, zero point, and its real scale."""

    shape: list[int]
    dtype: str
    zero_point: int
    scale: float

    @property
    def qmin(self) -> int:
        return DTYPES[self.dtype][0]


@dataclass
class Op:
    """One integer op: `kind` on `inputs` into `output`; `attrs` are ints / int lists, `arrays` name tensors."""

    kind: str
    inputs: list[str]
    output: str
    name: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, str] = field(default_factory=dict)  # role (weight, bias, m0, shift) -> array key


@dataclass
class IntegerModel:
    """An integer-only model: run it with `run` (float in/out) or `run_int` (integers in/out)."""

    input: str
    output: str
    values: dict[str, Value]
    ops: list[Op]
    arrays: dict[str, torch.Tensor]
    rounding: str = "single"  # requantization rule: "single" or "double" (karuku.quant.primitives), or
    # "onnxruntime" (karuku.quant.ort_requant: what an int8 ONNX file gives in ONNX Runtime)
    inputs: list[str] = field(default_factory=list)  # every input in forward's order (default: [input])

    def __post_init__(self):
        self.inputs = list(self.inputs) or [self.input]

    @property
    def several(self) -> bool:
        """Takes several inputs or an integer one (token ids, a mask): run and quantize_input take / give tuples."""
        return len(self.inputs) > 1 or self.values[self.input].dtype == INTEGER_INPUT

    def need_examples(self, inputs, what: str) -> None:
        """A one-line error when a check of `what` has no `inputs` for a model random ones will not do for (token
        ids must be the model's own)."""
        if inputs is None and self.several:
            raise KarukuError(f"checking {what} of inputs {', '.join(self.inputs)} needs examples of them",
                              "pass --data naming the dataset whose examples carry them (Python: inputs=...)")

    def n_examples(self, x) -> int:
        """How many examples inputs `x` hold (a tensor, or a tuple / dict for a model of several inputs)."""
        return len(self.split_inputs(x)[0])

    def slice_inputs(self, x, i: int, j: int):
        """Examples i..j of inputs `x`: a tensor, or a tuple in forward's order for a model of several inputs."""
        part = tuple(t[i:j] for t in self.split_inputs(x))
        return part if self.several else part[0]

    # ---- execution -------------------------------------------------------------------------
    def quantize_input(self, x):
        """The one float step before the integers: q = clamp(round_half_even(x / s) + z). With several inputs
        (`several`), a tuple in forward's order: float inputs quantized, integer ones as they are."""
        if not self.several:
            v = self.values[self.input]
            return quantize(x, v.scale, v.zero_point, *DTYPES[v.dtype])
        xs = self.split_inputs(x)
        return tuple(t if self.values[n].dtype == INTEGER_INPUT else
                     quantize(t, self.values[n].scale, self.values[n].zero_point, *DTYPES[self.values[n].dtype])
                     for n, t in zip(self.inputs, xs))

    def split_inputs(self, x) -> tuple[torch.Tensor, ...]:
        """`x` as one tensor per input (a lone tensor for a model of one input), checked for their number."""
        if isinstance(x, dict):  # a batch by forward's names
            missing = [n for n in self.inputs if n not in x]
            if missing:
                raise KarukuError(f"the integer model takes {', '.join(self.inputs)}; the batch lacks "
                                  f"{', '.join(missing)}", "give every input by its name in forward")
            x = tuple(x[n] for n in self.inputs)
        xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        if len(xs) != len(self.inputs):
            raise KarukuError(f"the integer model takes {len(self.inputs)} inputs ({', '.join(self.inputs)}), "
                              f"given {len(xs)}", "give one tensor per input, in forward's order")
        return xs

    def dequantize_output(self, q: torch.Tensor) -> torch.Tensor:
        v = self.values[self.output]
        return (q.to(torch.int32) - v.zero_point).to(torch.float32) * v.scale

    @torch.no_grad()
    def run_int(self, q: torch.Tensor, fast: bool = False) -> torch.Tensor:
        """Integers in, integers out; every op exactly as specified.

        `fast` evaluates the conv / linear sums with float64 BLAS, exactly (see `ops.conv2d`); the
        result is bit-identical, and tests check that it is.
        """
        return self.run_all(q, fast)[self.output]

    @torch.no_grad()
    def run_all(self, q: torch.Tensor, fast: bool = False) -> dict[str, torch.Tensor]:
        """As `run_int`, but every value the model computes, by name (for layer-by-layer comparisons)."""
        xs = self.split_inputs(q)
        env = {n: t if self.values[n].dtype == INTEGER_INPUT else t.to(torch.int32) for n, t in zip(self.inputs, xs)}
        for op in self.ops:
            env[op.output] = self._run_op(op, env, fast)
        return env

    def run(self, x, batch_size: int = 256, fast: bool = False) -> torch.Tensor:
        """Float inputs (a tuple with several inputs) to float logits through the integer model (in batches)."""
        outs = [self.dequantize_output(self.run_int(self.quantize_input(self.slice_inputs(x, i, i + batch_size)), fast))
                for i in range(0, self.n_examples(x), batch_size)]
        return torch.cat(outs)

    def _run_op(self, op: Op, env: dict[str, torch.Tensor], fast: bool = False) -> torch.Tensor:
        a = op.attrs
        arr = {role: self.arrays[k] for role, k in op.arrays.items()}
        x = env[op.inputs[0]]
        vin, vout = self.values[op.inputs[0]], self.values[op.output]
        ort = self.rounding == ONNXRUNTIME
        if op.kind in ("conv2d", "linear"):
            m = ort_requant.multiplier(vin.scale, arr["weight_scale"], vout.scale) if ort else None
            if op.kind == "linear":
                return ops.linear(x, vin.zero_point, arr["weight"], arr["bias"], arr["m0"], arr["shift"],
                                  vout.zero_point, a["lo"], a["hi"], fast, self.rounding, m)
            return ops.conv2d(x, vin.zero_point, arr["weight"], arr["bias"], arr["m0"], arr["shift"],
                              vout.zero_point, a["lo"], a["hi"], a["stride"], a["padding"], a["groups"], fast,
                              self.rounding, m)
        if op.kind == "maxpool2d":
            return ops.maxpool2d(x, a["kernel"], a["stride"], a["padding"], vin.qmin)
        if ort and op.kind in ("avgpool2d", "add"):
            return self._onnxruntime_op(op, env)
        if op.kind == "avgpool2d":
            return ops.avgpool2d(x, vin.zero_point, a["kernel"], a["stride"], a["m0"], a["shift"],
                                 vout.zero_point, a["lo"], a["hi"], self.rounding, a.get("padding", [0, 0]))
        if op.kind == "add":
            vb = self.values[op.inputs[1]]
            return ops.add(x, vin.zero_point, env[op.inputs[1]], vb.zero_point, a["left_shift"], a["a_m0"],
                           a["a_shift"], a["b_m0"], a["b_shift"], a["m0"], a["shift"], vout.zero_point,
                           a["lo"], a["hi"], self.rounding)
        if op.kind == "flatten":
            return ops.flatten(x)
        if op.kind == "clamp":
            return ops.clamp(x, a["lo"], a["hi"])
        if op.kind == "concat":
            return ops.concat([env[i] for i in op.inputs], [arr.get(f"table{j}") for j in range(len(op.inputs))],
                              a["axis"])
        if op.kind == "lut":
            return ops.lut(x, arr["table"])
        if op.kind == "reshape":
            return ops.reshape(x, vout.shape)
        if op.kind == "transpose":
            return ops.transpose(x, a["perm"])
        if op.kind == "upsample":
            return ops.upsample(x, a["scale"])
        if op.kind == "pad":
            return ops.pad(x, a["pads"], vin.zero_point)
        if op.kind == "gather":
            return ops.gather(x, arr["rows"], op.output)
        if op.kind == "quantize":
            return quantize(x, vout.scale, vout.zero_point, *DTYPES[vout.dtype])
        if op.kind == "gather_mean":
            lo, hi = DTYPES[vout.dtype]
            return ops.gather_mean(x, arr["rows"], arr["m0"], arr["shift"], a["pad"], vout.zero_point, lo, hi,
                                   self.rounding, arr["weight_scale"] if ort else None, vout.scale, op.output,
                                   bool(a["sum"]))
        raise KarukuError(f"unknown integer op '{op.kind}'", f"known: {', '.join(KINDS)}")

    def _onnxruntime_op(self, op: Op, env: dict[str, torch.Tensor]) -> torch.Tensor:
        """An add or average pool as ONNX Runtime's QLinearAdd / QLinear(Global)AveragePool compute it, on the
        bytes the QDQ file stores (int8 values moved up by 128), then clamped to the op's range."""
        ins = [self.values[i] for i in op.inputs]
        vout, a = self.values[op.output], op.attrs
        xs = [ort_requant.stored(env[i], v.dtype) for i, v in zip(op.inputs, ins)]
        z = [v.zero_point + (128 if v.dtype == "int8" else 0) for v in [*ins, vout]]
        if op.kind == "add":
            y = ort_requant.add(xs[0], z[0], ins[0].scale, xs[1], z[1], ins[1].scale, z[2], vout.scale)
        elif list(a["kernel"]) == ins[0].shape[1:] and not any(a.get("padding", [0, 0])):
            y = ort_requant.global_average_pool(xs[0], z[0], ins[0].scale, vout.scale, z[1])
        else:
            y = ort_requant.average_pool(xs[0], z[0], ins[0].scale, a["kernel"], a["stride"],
                                         ops.pads4(a.get("padding", [0, 0])), vout.scale, z[1])
        return torch.clamp(y - (z[-1] - vout.zero_point), a["lo"], a["hi"])

    # ---- file ------------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """The JSON part: everything but the arrays."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "input": self.input, "inputs": self.inputs,
                "output": self.output, "rounding": self.rounding,
                "values": {k: asdict(v) for k, v in self.values.items()}, "ops": [asdict(o) for o in self.ops]}

    def save(self, path: str | os.PathLike) -> Path:
        """One safetensors file (atomic write); no pickle."""
        return safefile.write(path, self.arrays, self.document())

    @classmethod
    def load(cls, path: str | os.PathLike) -> IntegerModel:
        tensors, doc = safefile.read(path, "integer model")
        return cls.from_parts(tensors, doc, str(path))

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], doc: dict[str, Any], source: str = "") -> IntegerModel:
        """Rebuild from arrays and the JSON document, checking kinds and array references."""
        if doc.get("format") != FORMAT:
            raise KarukuError(f"{source} is not a karuku integer model (format {doc.get('format')!r})")
        if int(doc.get("format_version", 0)) > FORMAT_VERSION:
            raise KarukuError(f"{source}: integer-model version {doc['format_version']} is newer than this karuku",
                              "upgrade karuku")
        try:
            values = {k: Value(**v) for k, v in doc["values"].items()}
            op_list = [Op(**o) for o in doc["ops"]]
            rounding = check_rule(doc.get("rounding", "double"))  # version 1 had no field: "double"
            inputs = [str(i) for i in doc.get("inputs", [doc["input"]])]  # version 4 added it
        except (KeyError, TypeError) as exc:
            raise KarukuError(f"{source}: malformed integer-model document ({exc})") from None
        for o in op_list:
            missing = [k for k in o.arrays.values() if k not in tensors]
            tables = [tensors[k] for r, k in o.arrays.items() if r.startswith("table") and k in tensors]
            if any(t.shape != (256,) for t in tables):
                missing.append("a 256-entry table")
            rows = tensors.get(o.arrays.get("rows", ""))
            if o.kind in ("gather", "gather_mean") and (rows is None or rows.dim() != 2 or o.output not in values
                                       or list(rows.shape[1:]) != values[o.output].shape[-1:]):
                missing.append("a table of rows as wide as its output")
            counts = [tensors.get(o.arrays.get(r, "")) for r in ("m0", "shift")]
            if o.kind == "gather_mean" and o.inputs and o.inputs[0] in values and any(
                    c is None or c.shape != (values[o.inputs[0]].shape[-1] + 1,) for c in counts):
                missing.append("a multiplier for every count of tokens")
            if o.kind in ("gather", "quantize", "gather_mean") and (len(o.inputs) != 1 or o.inputs[0] not in values
                                                     or values[o.inputs[0]].dtype != INTEGER_INPUT):
                missing.append("an integer input to read")
            if o.kind not in KINDS or missing or any(i not in values for i in [*o.inputs, o.output]):
                raise KarukuError(f"{source}: op '{o.name}' ({o.kind}) is malformed or refers to missing data")
        if doc["input"] not in inputs or any(i not in values for i in inputs) or doc["output"] not in values:
            raise KarukuError(f"{source}: the integer model's inputs or output are not among its values")
        return cls(doc["input"], doc["output"], values, op_list, dict(tensors), rounding, inputs)

    def summary(self) -> dict[str, Any]:
        """Counts and bytes, for reports."""
        weight_bytes = sum(t.numel() * t.element_size() for t in self.arrays.values())
        return {"ops": len(self.ops), "kinds": sorted({o.kind for o in self.ops}), "array_bytes": weight_bytes}
