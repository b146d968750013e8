"""Int8 ONNX on an AVX2-only CPU, whatever CPU runs the suite: ONNX Runtime under `qemu-x86_64 -cpu Haswell`
(an AVX2 CPU without AVX-512 or VNNI, so ONNX Runtime takes its saturating u8 x s8 kernels).

Everything with torch runs natively; only ONNX Runtime runs emulated (tests/helpers/ort_outputs.py).
"""

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from karuku.deploy.parity import as_onnxruntime, locate
from karuku.quant import QuantConfig, quantize, to_integer
from karuku.quant.onnx_export import export_qdq
from karuku.quant.representation import pair_saturating_dot

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="emulates an x86 CPU on an x86 host")
HELPER = Path(__file__).parent / "helpers" / "ort_outputs.py"


def _qemu() -> str:
    exe = shutil.which("qemu-x86_64")
    assert exe, "qemu-x86_64 is needed (Debian: apt-get install qemu-user; .ci/run installs it)"
    return exe


def _run_emulated(tmp: Path, x: np.ndarray | dict[str, np.ndarray], files: list[bytes]) -> tuple[str, list[dict]]:
    """Outputs of each ONNX file run by ONNX Runtime on an emulated Haswell; `x`: the input, or inputs by name."""
    x_path = tmp / ("x.npz" if isinstance(x, dict) else "x.npy")
    if isinstance(x, dict):
        np.savez(x_path, **x)
    else:
        np.save(x_path, x)
    paths = []
    for i, raw in enumerate(files):
        paths.append(tmp / f"m{i}.onnx")
        paths[-1].write_bytes(raw)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("KARUKU_CPU_FEATURES", None)
    proc = subprocess.run([_qemu(), "-cpu", "Haswell", sys.executable, str(HELPER), str(tmp / "out.npz"),
                           str(x_path), *map(str, paths)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = np.load(tmp / "out.npz")
    outs = [{k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith(f"{i}/")} for i in range(len(files))]
    return proc.stdout.strip().splitlines()[-1], outs


def _saturating_mlp():
    """An MLP whose first layer's pairs of products overflow int16 for bright inputs (weights all near +max)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.0)
        net[1].weight[::2] *= -1  # half the units negative, so ReLU keeps some range in both directions
        net[1].bias.zero_()
    return net


def test_portable_representations_are_exact_on_avx2_and_u8s8_is_not(tmp_path):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(96, 1, 8, 8, generator=gen)
    x[:48] = (x[:48] > 0.3).float()  # bright images: stored inputs at 255
    net = _saturating_mlp()
    wide = to_integer(quantize(net, QuantConfig(target_isa="avx512-vnni"), x))
    seven = to_integer(quantize(net, QuantConfig(target_isa="avx2"), x))
    files = [export_qdq(wide, representation="u8s8", debug_outputs=True),
             export_qdq(wide, representation="u8u8"), export_qdq(seven, representation="u8s7")]
    target, (u8s8, u8u8, u8s7) = _run_emulated(tmp_path, x.numpy(), files)
    assert target == "avx2"  # CPUID under the emulator: no AVX-512, no VNNI

    def steps(im, logits):
        out = im.values[im.output]
        ref = as_onnxruntime(im).run_int(im.quantize_input(x), fast=True).numpy()
        got = np.rint(logits / out.scale).astype(np.int64) + out.zero_point
        return np.abs(got - ref).max(), np.mean(got.argmax(1) == ref.argmax(1))

    for im, outs in ((wide, u8u8), (seven, u8s7)):  # exact integers, and ONNX Runtime's requantization rule
        max_steps, agree = steps(im, outs["logits"])
        assert max_steps == 0 and agree == 1.0
    max_steps, _ = steps(wide, u8s8["logits"])
    assert max_steps > 1  # the saturating kernels really break the 8-bit weights here

    # the NumPy model of the multiply reproduces what ONNX Runtime computed in the saturating layer
    fc = next(op for op in wide.ops if op.kind == "linear")
    x_in = u8s8[f"q:{fc.inputs[0]}"].astype(np.int64)
    w = wide.arrays[fc.arrays["weight"]].numpy()
    sat, exact = pair_saturating_dot(x_in, w), x_in @ w.astype(np.int64).T
    assert (sat != exact).any()

    # and the parity check's explanation finds that layer and that cause, from the emulated CPU's values
    departure, cause = locate(wide, "u8s8", x, u8s8)
    assert departure is not None and departure.value == fc.output and departure.max_steps > 1
    assert departure.saturation_match is not None and departure.saturation_match >= 0.99
    assert "saturating int16" in cause and "--target-isa portable" in cause


def test_transformer_int8_is_exact_on_avx2_in_its_representations(tmp_path):
    """A sentence encoder's MatMulIntegerToFloat / DynamicQuantizeMatMul: u8s8 saturates on AVX2, u8u8 and u8s7
    do not."""
    from helpers.textmodels import TEXTS, tiny_encoder, tiny_tokenizer
    from karuku.text.onnx_export import export_onnx
    from karuku.text.quantize import quantize as quantize_text

    b = tiny_tokenizer(tmp_path / "vocab")(TEXTS)
    m = tiny_encoder(layers=1, hidden=64, heads=2, ffn=128)
    with torch.no_grad():  # every weight near ± its channel's maximum: adjacent products add up past int16
        for lin in (m.layers[0].attn.q, m.layers[0].attn.k, m.layers[0].attn.v, m.layers[0].attn.o,
                    m.layers[0].ffn.up, m.layers[0].ffn.down):
            lin.weight.uniform_(0.5, 1.0)
            lin.weight[::2] *= -1
    cfg = {"mode": "dynamic", "layer_bits": {"embed.word": "float"}}
    wide = quantize_text(m, QuantConfig(target_isa="avx512-vnni", **cfg))
    seven = quantize_text(m, QuantConfig(target_isa="avx2", **cfg))
    files = [export_onnx(wide, representation="u8s8"), export_onnx(wide, representation="u8u8"), export_onnx(seven)]
    target, (u8s8, u8u8, u8s7) = _run_emulated(tmp_path, {"input_ids": b.input_ids.numpy(),
                                                          "attention_mask": b.attention_mask.numpy()}, files)
    assert target == "avx2"
    with torch.no_grad():
        ref_wide, ref_seven = wide(*b.inputs()).numpy(), seven(*b.inputs()).numpy()
    for outs, ref in ((u8u8, ref_wide), (u8s7, ref_seven)):
        off = np.abs(outs["embedding"] - ref).max(1) > 1e-5
        assert off.sum() <= 2 and (outs["embedding"] * ref).sum(1).min() > 0.99999
    assert (np.abs(u8s8["embedding"] - ref_wide).max(1) > 1e-3).sum() >= len(TEXTS) // 2  # saturated


def test_onnxruntime_rule_is_exact_on_avx2(tmp_path):
    """The engine's "onnxruntime" rule on an AVX2-only CPU: every value of the folded-BatchNorm block (conv,
    depthwise, add, global pool, linear; 7-bit weights) and a conv whose multipliers put accumulators on
    halves equal what ONNX Runtime's AVX2 kernels compute; the fixed-point rule "single" differs on the latter."""
    from dataclasses import replace

    from helpers.ort_cases import folded_block, one_conv

    im, x = folded_block()
    x = x[:16]
    rng = np.random.default_rng(0)
    s_w = np.concatenate([2.0 ** -np.arange(7, 11), rng.uniform(1e-3, 2e-2, 12)])
    conv = one_conv(8, 16, 1, s_w, rng.integers(-3000, 3000, 16), rng)
    q = torch.from_numpy(rng.integers(0, 256, (48, 8, 12, 12)).astype(np.int32))
    xc = ((q.float() - 7) * 0.5).numpy()
    target, (block_out, conv_out) = _run_emulated_each(tmp_path, [(x.numpy(), export_qdq(im, representation="u8s7",
                                                                                            debug_outputs=True)),
                                                                  (xc, export_qdq(conv, representation="u8s7"))])
    assert target == "avx2"
    eng = as_onnxruntime(im).run_all(im.quantize_input(x), fast=True)
    for op in im.ops:
        assert np.array_equal(block_out[f"q:{op.output}"].astype(np.int64), eng[op.output].numpy()), op.output
    got = np.rint(conv_out["logits"] / np.float32(1.0)).astype(np.int64) + 3
    assert np.array_equal(got, replace(conv, rounding="onnxruntime").run_int(q, fast=True).numpy())
    assert (got != conv.run_int(q, fast=True).numpy()).any()


def _run_emulated_each(tmp: Path, cases: list[tuple[np.ndarray, bytes]]) -> tuple[str, list[dict]]:
    """`_run_emulated` for files that each have their own input."""
    outs, target = [], ""
    for i, (x, raw) in enumerate(cases):
        sub = tmp / f"case{i}"
        sub.mkdir()
        target, (out,) = _run_emulated(sub, x, [raw])
        outs.append(out)
    return target, outs
