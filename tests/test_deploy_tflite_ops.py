""".tflite export of the engine's newer ops (concatenation, tables, pools over windows, upsampling, padding, reshape /
transpose): identical in LiteRT (reference kernels) and TFLite Micro; tables as TFLite's own operator only where
both interpreters compute the engine's 256 values; layouts that move no data where none has to move."""

import collections
import random

import numpy as np
import pytest
import torch

from karuku.deploy import layout as lay
from karuku.deploy.tflite.export import to_tflite
from karuku.deploy.tflite.graph import Graph, Tensor
from karuku.deploy.tflite.lower import lower
from karuku.deploy.tflite.tables import emit_table
from karuku.deploy.tflite.verify import agreement, probe
from test_quant_ops import MODELS, _quantized


@pytest.fixture(scope="module")
def quantized():
    return {name: _quantized(name, 48) for name in MODELS}


# what each model must be written with (the rest of its operators depend on the lowering's choices)
NEEDS = {"concat": {"CONCATENATION", "GATHER"}, "pools": {"MEAN", "DEPTHWISE_CONV_2D"},
         "activations": {"GATHER", "CAST"}, "movement": {"RESIZE_NEAREST_NEIGHBOR", "PAD", "TRANSPOSE"},
         "tables": {"CONCATENATION", "GATHER", "TRANSPOSE"}, "all": {"CONCATENATION", "RESIZE_NEAREST_NEIGHBOR"}}


@pytest.mark.parametrize("name", list(MODELS))
def test_new_ops_are_the_engine_in_both_interpreters(quantized, name):
    _, _, im, x = quantized[name]
    eng, raw, data = to_tflite(im)
    assert agreement(eng, raw, x[:16]) == {"inputs": 16, "litert": 16, "tflm_inputs": 16, "tflm": 16}
    ops = collections.Counter(o.op for o in lower(eng, probe).operators)
    assert NEEDS[name] <= set(ops), ops
    assert data < len(raw)


def test_a_channel_shuffle_moves_data_once(quantized):
    """view + transpose + view on NHWC: RESHAPE, one TRANSPOSE, RESHAPE (the transpose itself is no operator)."""
    _, _, im, _ = quantized["movement"]
    g = lower(to_tflite(im)[0])
    names = [o.layer for o in g.operators if o.op == "TRANSPOSE"]
    shuffle = [op.name for op in im.ops if op.kind == "transpose"]
    assert len(names) <= len(shuffle)  # never more than one per engine transpose


def _graph(table_in=(0.05, 3), table_out=(0.02, -10)):
    g = Graph()
    x = g.add(Tensor("x", [1, 4, 4, 8], "int8", [table_in[0]], [table_in[1]]))
    y = g.add(Tensor("y", [1, 4, 4, 8], "int8", [table_out[0]], [table_out[1]]))
    return g, x, y


def test_a_table_is_tflite_s_operator_only_where_it_computes_the_table():
    table = np.arange(-128, 128).clip(-100, 100).astype(np.int8)
    for answer, expect in ((table, ["LEAKY_RELU"]), (None, ["CAST", "ADD", "GATHER"])):
        g, x, y = _graph()
        emit_table(g, "t", x, y, table, {"fn": "leaky_relu", "slope": 0.1}, lambda *a, r=answer: r)
        assert [o.op for o in g.operators] == expect
    off_by_one = table.copy()
    off_by_one[7] += 1
    g, x, y = _graph()
    emit_table(g, "t", x, y, table, {"fn": "hardswish"}, lambda *a: off_by_one)
    assert [o.op for o in g.operators] == ["CAST", "ADD", "GATHER"]
    g, x, y = _graph()
    emit_table(g, "t", x, y, table, {"fn": "silu"}, lambda *a: table)  # TFLite has no SiLU operator
    assert "GATHER" in [o.op for o in g.operators]


def test_tflite_requantizes_with_two_roundings_so_a_concatenation_input_is_a_lookup():
    """QUANTIZE int8 → int8 at M = 0.3067: 1 · M rounds to 0.5 at the first rounding and to 1 at the second; the
    engine's table (the fake-quant model) rounds 0.3067 to 0. Both interpreters agree with each other."""
    got = probe("QUANTIZE", (), (0.008945680223405361, -128), (0.029163122177124023, 9))
    assert got is not None and got[1] == 10 and got[0] == 9  # input −127: 9 + round(0.3067) would be 9
    assert probe("LOGISTIC", (), (0.0059, 5), (0.0026, -128)) is None  # LOGISTIC's output scale must be 1/256


def test_reshape_plans_move_data_only_when_needed():
    random.seed(0)
    moved = 0
    for _ in range(500):
        r = random.randint(2, 5)
        src = [1] + [random.choice([1, 1, 2, 3, 4]) for _ in range(r - 1)]
        layout = (0, *random.sample(range(1, r), r - 1))
        total, dst = int(np.prod(src)), [1]
        while total > 1 or len(dst) == 1:
            f = random.choice([d for d in range(1, total + 1) if total % d == 0])
            dst.append(f)
            total //= f
        x = np.arange(np.prod(src)).reshape(src)
        need, out = lay.reshape_plan(layout, src, dst)
        got = x.transpose(need).reshape(lay.shape_in(out, dst))
        assert np.array_equal(got, x.reshape(dst).transpose(out)), (src, layout, dst)
        moved += need != layout
    assert 0 < moved < 250
    # NHWC channel shuffle: the split needs no move, the merge of (C/g, g) one
    need, out = lay.reshape_plan((0, 2, 3, 1), [1, 8, 4, 4], [1, 2, 4, 4, 4])
    assert need == (0, 2, 3, 1) and out == (0, 3, 4, 1, 2)
    after = lay.after_transpose(out, (0, 2, 1, 3, 4))
    need, out = lay.reshape_plan(after, [1, 4, 2, 4, 4], [1, 8, 4, 4])
    assert need != after and out == (0, 2, 3, 1)
    assert lay.reshape_plan((0, 2, 3, 1), [1, 8, 1, 1], [1, 8]) == ((0, 2, 3, 1), (0, 1))  # a pooled vector


def test_a_linear_layer_over_the_last_dimension_of_a_sequence():
    """linear on [N, T, K] (rows of a sequence) and a 4-d value: CONV_2D 1×1 over the rows, identical."""
    class Seq(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc, self.out = torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Linear(5, 7), \
                torch.nn.Linear(7 * 6 * 4, 4)

        def forward(self, x):
            y = torch.relu(self.conv(x))  # [N, 6, 4, 5]
            return self.out(torch.sigmoid(self.fc(y)).flatten(1))

    from karuku.quant import QuantConfig, quantize, to_integer

    torch.manual_seed(0)
    x = torch.randn(48, 3, 4, 5)
    im = to_integer(quantize(Seq().eval(), QuantConfig(), x[:32]))
    eng, raw, _ = to_tflite(im)
    assert agreement(eng, raw, x[32:]) == {"inputs": 16, "litert": 16, "tflm_inputs": 16, "tflm": 16}
