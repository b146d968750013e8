"""karuku's C kernels on the paths the MLPerf Tiny models take: the tabulated residual add (uint8 and int8
activations), im2col tiles with an odd pixel and an odd channel, lone channels of the direct kernel (depthwise,
odd group sizes, rows of 3, 5, 6 and 7 pixels); host and Cortex-M4 byte-identical to the engine, in both
roundings."""

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from karuku.deploy.c import toolchain
from karuku.deploy.c.codegen import direct_order, generate
from karuku.deploy.c.project import to_bytes
from karuku.quant import QuantConfig, quantize, to_integer


class Residual(nn.Module):
    """A residual add of 12×12×8 = 1152 elements (the tabulated path); 1×1 convs over 12×12 pixels (im2col tiles,
    the 1×1 gather) and, padded, to 5×5 pixels and 5 channels (a last tile of one pixel, a lone channel);
    depthwise over rows of 5 (one pass of five pixels), 7 (four and three) and 6 pixels (three and three), then
    stride 2 to 3×3 pixels (one pass of three) and a 7-channel conv there (the direct kernel's one-pixel pass)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6(), nn.Conv2d(8, 8, 1))
        self.down = nn.Sequential(nn.Conv2d(8, 5, 1, 3, 1), nn.ReLU(),
                                  nn.Conv2d(5, 5, 3, 1, 1, groups=5), nn.Conv2d(5, 5, 3, 1, 2, groups=5),
                                  nn.Conv2d(5, 5, 4, 1, 1, groups=5), nn.Conv2d(5, 5, 3, 2, 1, groups=5),
                                  nn.Conv2d(5, 7, 3, padding=1, groups=1))
        self.fc = nn.Linear(7 * 3 * 3, 4)

    def forward(self, x):
        y = self.stem(x)
        y = torch.relu(y + self.body(y))
        return self.fc(torch.flatten(self.down(y), 1))


def _engine(rounding: str, act_dtype: str):
    torch.manual_seed(3)
    x = torch.randn(40, 3, 12, 12)
    return to_integer(quantize(Residual().eval(), QuantConfig(rounding=rounding, act_dtype=act_dtype), x[:32])), x


@pytest.mark.parametrize("rounding, act_dtype", [("single", "uint8"), ("double", "int8")])
def test_kernel_paths_are_the_engine_on_the_host(tmp_path, rounding, act_dtype):
    im, x = _engine(rounding, act_dtype)
    assert any(op.kind == "add" for op in im.ops)
    proj = generate(im, "res")
    q = im.quantize_input(x)
    out, _ = toolchain.run(toolchain.build_host(proj, tmp_path), to_bytes(q))
    assert np.array_equal(out, to_bytes(im.run_int(q)))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs gcc-arm-none-eabi and qemu-system-arm (see .ci/run)")
def test_kernel_paths_are_the_engine_on_cortex_m4(tmp_path):
    im, x = _engine("single", "int8")
    proj = generate(im, "res")
    q = im.quantize_input(x[:8])
    out, _ = toolchain.run(toolchain.build_mcu(proj, tmp_path), to_bytes(q))
    assert np.array_equal(out, to_bytes(im.run_int(q)))


def test_direct_weights_store_a_lone_channel_once():
    w = torch.arange(3 * 1 * 3 * 3, dtype=torch.int8).reshape(3, 1, 3, 3)  # depthwise: three lone channels
    words = direct_order(w, groups=3)
    assert words.numel() == 3 * 3 * 2  # per channel: 3 rows of 2 words (3 taps padded to 4), no partner copy
    assert int(words[0]) == (1 << 16) | 0 and int(words[1]) == 2  # taps 0, 1 | tap 2 and the zero pad
    pair = direct_order(torch.ones(2, 1, 3, 3, dtype=torch.int8), groups=1)
    assert pair.numel() == 2 * 3 * 2  # two channels interleaved
