"""Generated C: byte-identical to the integer engine on the host (gcc -Werror) and on an emulated Cortex-M4."""

import subprocess

import numpy as np
import pytest
import torch

from karuku.deploy.c import toolchain
from karuku.deploy.c.arena import plan
from karuku.deploy.c.codegen import generate, kernel_order, runtime_files
from karuku.deploy.c.project import check_profile, to_bytes
from karuku.errors import KarukuError
from karuku.models import build
from karuku.quant import QuantConfig, quantize, to_integer
from karuku.quant.engine.graph import Op
from karuku.quant.primitives import requantize, rescale


def _integer(name, shape=(1, 28, 28), rounding="single", **kw):
    torch.manual_seed(0)
    model = build(name, shape, 10, **kw).eval()
    x = torch.randn(64, *shape)
    return to_integer(quantize(model, QuantConfig(rounding=rounding), x)), x


REQUANT_MAIN = r"""#include <stdio.h>
#include "karuku_kernels.h"
int main(void) {
    int32_t t[3];
    while (fread(t, sizeof t[0], 3, stdin) == 3) {
        int32_t r[2] = {kk_mbqm(t[0], t[1], t[2]), kk_requantize(t[0], t[1], t[2], -5, -128, 127)};
        fwrite(r, sizeof r[0], 2, stdout);
    }
    return 0;
}
"""


@pytest.mark.parametrize("rounding", ["single", "double"])
def test_c_requantization_matches_the_python_primitive(tmp_path, rounding):
    for name, text in runtime_files(rounding).items():  # the kernels as a generated project has them
        (tmp_path / name).write_text(text)
    (tmp_path / "main.c").write_text(REQUANT_MAIN)
    subprocess.run(["gcc", *toolchain.HOST_FLAGS, "-o", "rq", "main.c", "karuku_kernels.c"], cwd=tmp_path, check=True)
    g = torch.Generator().manual_seed(0)
    n = 20000
    scale = 2 ** torch.randint(0, 32, (n,), generator=g)  # accumulators of every magnitude
    acc = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * scale
    acc = torch.cat([acc.round().clamp(-(1 << 31), (1 << 31) - 1).to(torch.int64),
                     torch.tensor([-(1 << 31), (1 << 31) - 1, 0, 1, -1, 2, -2])])
    m0 = torch.randint(1 << 30, 1 << 31, (len(acc),), generator=g)
    shift = torch.randint(-31, 32, (len(acc),), generator=g)
    triples = torch.stack([acc, m0, shift], 1).to(torch.int32).numpy()
    out = subprocess.run(["./rq"], cwd=tmp_path, input=triples.tobytes(), capture_output=True, check=True).stdout
    got = np.frombuffer(out, dtype=np.int32).reshape(-1, 2)
    a, m, s_ = (torch.from_numpy(triples[:, i].copy()) for i in range(3))
    assert np.array_equal(got[:, 0], rescale(a, m, s_, rounding).numpy())
    assert np.array_equal(got[:, 1], requantize(a, m, s_, -5, -128, 127, rounding).numpy())


def test_every_kernel_part_is_included_once_and_shipped():
    """karuku_kernels.c is one translation unit of kk_*.inc parts: each part in the runtime folder is included
    exactly once and copied into every project (a part left out would not compile there)."""
    from importlib import resources

    from karuku.deploy.c.codegen import KERNEL_PARTS, runtime_files

    runtime = resources.files("karuku.deploy.c").joinpath("runtime")
    parts = sorted(p.name for p in runtime.iterdir() if p.name.endswith(".inc"))
    assert parts == sorted(KERNEL_PARTS) and len(parts) >= 5
    main = runtime.joinpath("karuku_kernels.c").read_text()
    assert all(main.count(f'#include "{p}"') == 1 for p in parts)
    assert set(parts) <= set(runtime_files("single"))
    assert all(len(runtime.joinpath(p).read_text().splitlines()) <= 400 for p in (*parts, "karuku_kernels.c"))


def test_double_rounding_projects_are_byte_identical_too(tmp_path):
    im, x = _integer("resnet-s", rounding="double", widths=(8, 16, 16))
    proj = generate(im, "resnet_double")
    assert proj.files["karuku_kernels.c"].startswith("#define KK_DOUBLE_ROUNDING 1")
    build_ = toolchain.build_host(proj, tmp_path)
    q = im.quantize_input(x[:16])
    out, _ = toolchain.run(build_, to_bytes(q))
    assert np.array_equal(out, to_bytes(im.run_int(q)))


@pytest.mark.parametrize("name, kw", [("lenet5-lecun", {}), ("resnet-s", {"widths": (8, 16, 16)}),
                                      ("mobilenetv2-s", {"width": 0.25})])
def test_host_build_is_byte_identical(tmp_path, name, kw):
    im, x = _integer(name, **kw)
    proj = generate(im, name)
    kinds = {op.kind for op in im.ops}
    build_ = toolchain.build_host(proj, tmp_path)  # -std=c99 -Wall -Wextra -Werror
    q = im.quantize_input(x[:16])
    out, _ = toolchain.run(build_, to_bytes(q))
    assert np.array_equal(out, to_bytes(im.run_int(q)))
    if name == "resnet-s":
        assert "add" in kinds and "avgpool2d" in kinds
    if name == "mobilenetv2-s":
        assert any(op.kind == "conv2d" and op.attrs["groups"] > 1 for op in im.ops)  # depthwise


def test_cortex_m4_under_qemu_is_byte_identical_and_int8_needs_fewer_instructions(tmp_path):
    im, x = _integer("lenet300")
    proj = generate(im, "lenet300")
    q = im.quantize_input(x[:8])
    int8 = toolchain.build_mcu(proj, tmp_path)
    out, ticks = toolchain.run(int8, to_bytes(q))
    assert np.array_equal(out, to_bytes(im.run_int(q)))
    flt = toolchain.build_mcu(proj, tmp_path, float_build=True)
    fout, fticks = toolchain.run(flt, x[:8].numpy())
    assert (fout.argmax(1) == im.run(x[:8]).argmax(1).numpy()).mean() >= 0.75
    assert 0 < ticks < fticks  # the int8 build executes fewer instructions (QEMU icount)
    mem = toolchain.memory_from_map(int8.map_file, ("m4_lenet300.o", "m4_karuku_kernels.o"))
    assert mem["flash_bytes"] >= proj.weight_bytes and mem["ram_bytes"] >= proj.arena_bytes


def test_arena_never_overlaps_live_values():
    order = ["in", "a", "b", "c", "out"]
    sizes = {"in": 100, "a": 50, "b": 70, "c": 30, "out": 10}
    reads = {"in": [0, 3], "a": [1], "b": [2], "c": [3]}  # "in" is read again by op 3 (a residual)
    offsets, total = plan(order, sizes, reads)
    first = {v: i - 1 for i, v in enumerate(order)}
    last = {v: max(reads.get(v, [first[v]])) for v in order}
    last["out"] = len(order)
    for u in order:
        for v in order:
            if u < v and not (last[u] < first[v] or last[v] < first[u]):
                assert offsets[u] + sizes[u] <= offsets[v] or offsets[v] + sizes[v] <= offsets[u], (u, v)
    assert total < sum(sizes.values())  # values with disjoint lifetimes shared bytes
    assert total >= 100 + 50  # "in" and "a" are alive together


def test_kernel_order_groups_of_four():
    w = torch.arange(2 * 10).reshape(2, 10).to(torch.int8)
    assert kernel_order(w)[0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7, 8, 9]


def test_unsupported_op_is_named(tmp_path):
    im, _ = _integer("lenet5-lecun")
    im.ops.append(Op("softmax", [im.output], im.output, "head.softmax"))
    with pytest.raises(KarukuError, match="no kernel for op 'softmax' \\(layer 'head.softmax'\\)"):
        generate(im, "x")


def test_onnxruntime_rule_has_no_c_kernels():
    """The engine's "onnxruntime" rule (ONNX Runtime's float32 requantization, for the int8 ONNX parity check)
    is not what the fixed-point C kernels compute: generating C from such a model is one line."""
    from dataclasses import replace

    im, _ = _integer("lenet5-lecun")
    with pytest.raises(KarukuError, match="the C kernels requantize in fixed point; this integer model uses rule "
                                          "'onnxruntime'") as err:
        generate(replace(im, rounding="onnxruntime"), "x")
    assert "single, double" in err.value.hint


def test_a_model_too_big_for_the_profile_says_the_sizes():
    im, _ = _integer("mlp-teacher")  # 2.4 M int8 weights: more than the 1 MiB of flash of an M4
    proj = generate(im, "teacher")
    with pytest.raises(KarukuError, match=r"does not fit mcu-m4: weights 2,\d{3},\d{3} B vs flash 1,048,576 B"):
        check_profile(proj, "mcu-m4")
    check_profile(proj, "rpi4")  # fits a board with more memory


def test_odd_shapes_take_every_kernel_path(tmp_path):
    """One input channel, an odd pixel count (the last pixel alone), odd channel counts (the last channel
    alone), a 2×2 pool over an odd output width, and an odd linear layer: host and Cortex-M4 byte-identical."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Conv2d(5, 3, 3, stride=2, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(18, 7)).eval()
    x = torch.randn(32, 1, 9, 11)
    im = to_integer(quantize(model, QuantConfig(), x))
    assert [op.kind for op in im.ops][:4] == ["conv2d", "maxpool2d", "conv2d", "flatten"]
    proj = generate(im, "odd")
    q = im.quantize_input(x)
    ref = to_bytes(im.run_int(q))
    out, _ = toolchain.run(toolchain.build_host(proj, tmp_path / "host"), to_bytes(q))
    assert np.array_equal(out, ref)
    m4, _ = toolchain.run(toolchain.build_mcu(proj, tmp_path / "m4"), to_bytes(q))
    assert np.array_equal(m4, ref)


@pytest.mark.parametrize("direct", [True, False])
def test_direct_and_im2col_convolutions_are_byte_identical(tmp_path, monkeypatch, direct):
    """The direct kernel (one input channel with kernels 5 and 3 over odd widths: a last block of four pixels
    that overlaps the one before, widths under four; stride 2; padding; several input channels; depthwise; an
    odd channel count) and, with the direct kernel switched off, the im2col kernel: host and Cortex-M4
    byte-identical, and the float build computes the same either way."""
    from karuku.deploy.c import codegen

    if not direct:
        monkeypatch.setattr(codegen, "DIRECT_SCRATCH_BYTES", 0)
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 5, padding=2), torch.nn.ReLU(),  # 1 channel, 5×5, W 11
                                torch.nn.Conv2d(5, 6, 3, padding=1), torch.nn.ReLU(),  # 5 channels, 3×3
                                torch.nn.Conv2d(6, 6, 3, groups=6, padding=1),  # depthwise
                                torch.nn.Conv2d(6, 3, 3, stride=2, padding=1), torch.nn.ReLU(),  # stride 2
                                torch.nn.Conv2d(3, 3, 5, padding=(1, 0)),  # output width 2 (< 4)
                                torch.nn.Flatten(), torch.nn.Linear(18, 7)).eval()
    x = torch.randn(32, 1, 9, 11)
    im = to_integer(quantize(model, QuantConfig(), x))
    proj = generate(im, "convs")
    kernels = proj.files["convs.c"].count("kk_conv2d_direct_")
    assert kernels == (5 if direct else 0)
    assert proj.files["convs_float.c"].count("kf_conv2d_direct(") == kernels
    q = im.quantize_input(x)
    ref = to_bytes(im.run_int(q))
    out, _ = toolchain.run(toolchain.build_host(proj, tmp_path / "host"), to_bytes(q))
    assert np.array_equal(out, ref)
    m4, _ = toolchain.run(toolchain.build_mcu(proj, tmp_path / "m4"), to_bytes(q[:8]))
    assert np.array_equal(m4, ref[:8])
    fout, _ = toolchain.run(toolchain.build_host(proj, tmp_path / "hostf", float_build=True), x.numpy())
    monkeypatch.setattr(codegen, "DIRECT_SCRATCH_BYTES", 0)
    fref, _ = toolchain.run(toolchain.build_host(generate(im, "convs"), tmp_path / "hostf2", float_build=True),
                            x.numpy())
    assert np.allclose(fout, fref, rtol=1e-4, atol=1e-4)


def test_geometry_table_reads_each_op_once_for_every_generator():
    """The per-op shapes the integer, float and CMSIS-NN generators call their kernels with."""
    from karuku.deploy.c.geometry import SHAPES, geometry

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, (3, 5), stride=(1, 2), padding=(1, 2)), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 7 * 7, 10))
    torch.manual_seed(0)
    im = to_integer(quantize(model.eval(), QuantConfig(), torch.randn(32, 1, 14, 28)))
    g = {op.kind: geometry(im, op) for op in im.ops}
    conv, pool, fc = g["conv2d"], g["maxpool2d"], g["linear"]
    assert (conv.c, conv.h, conv.w, conv.oc, conv.oh, conv.ow) == (1, 14, 28, 4, 14, 14)
    assert conv.window == "3, 5, 1, 2, 1, 2" and conv.groups == 1 and conv.symmetric and conv.n == 4 * 14 * 14
    assert (pool.c, pool.oh, pool.ow, pool.window) == (4, 7, 7, "2, 2, 2, 2, 0, 0")
    assert (fc.rows, fc.k_in, fc.k_out, fc.n) == (1, 196, 10, 10)
    assert set(SHAPES) == {"conv2d", "linear", "maxpool2d", "avgpool2d"}
