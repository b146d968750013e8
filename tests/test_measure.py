from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from karuku.measure import (
    activation_bytes,
    energy,
    evaluate,
    export_bytes,
    layer_counts,
    session,
    time_call,
    time_engines,
    totals,
)
from karuku.measure.energy import PJ
from karuku.models import build


def test_lenet300_macs_and_counts_are_exact():
    model = build("lenet300", (1, 28, 28), 10)
    t = totals(model, (1, 28, 28))
    assert (t.params, t.macs) == (266_610, 784 * 300 + 300 * 100 + 100 * 10)
    rows = {r.name: r for r in layer_counts(model, (1, 28, 28))}
    assert rows["fc1"].macs == 235_200 and rows["fc1"].params == 235_500


def test_conv_macs_follow_the_formula():
    model = build("lenet5", (1, 28, 28), 10)
    rows = {r.name: r for r in layer_counts(model, (1, 28, 28))}
    assert rows["conv1"].macs == 24 * 24 * 20 * 25
    assert rows["conv2"].macs == 8 * 8 * 50 * 20 * 25


def test_depthwise_macs_count_groups():
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1, groups=8))
    assert totals(model, (8, 10, 10)).macs == 10 * 10 * 8 * 9


def test_zeroed_weights_lower_effective_macs_and_nonzeros():
    model = build("lenet300", (1, 28, 28), 10)
    with torch.no_grad():
        model.fc1.weight[:, : 784 // 2] = 0
    t = totals(model, (1, 28, 28))
    assert t.nonzeros == 266_610 - 300 * 392
    assert t.effective_macs == 235_200 // 2 + 30_000 + 1_000


def test_energy_table_and_on_chip_rule():
    e = energy.estimate(macs=1000, weight_bytes=4000, activation_bytes=400, on_chip_bytes=4000)
    assert e.weights_in == "SRAM"
    assert e.compute_uj == pytest.approx(1000 * (PJ["float_mult"] + PJ["float_add"]) / 1e6)
    assert e.weights_uj == pytest.approx(1000 * 5.0 / 1e6)
    assert e.activations_uj == pytest.approx(2 * 100 * 5.0 / 1e6)
    big = energy.estimate(macs=1000, weight_bytes=4004, activation_bytes=400, on_chip_bytes=4000)
    assert big.weights_in == "DRAM" and big.weights_uj == pytest.approx(1001 * 640 / 1e6)
    integer = energy.estimate(macs=1000, weight_bytes=1000, activation_bytes=0, integer=True)
    assert integer.compute_uj == pytest.approx(1000 * 3.2 / 1e6)
    assert "DRAM" in big.assumptions and "Horowitz" in big.assumptions


def test_activation_memory_of_a_chain():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 300), torch.nn.ReLU(),
                                torch.nn.Linear(300, 10))
    acts = activation_bytes(model, (1, 28, 28))
    assert acts["peak"] == 4 * (784 + 784)  # the flatten: input and output both live
    assert acts["total"] == 4 * (784 + 300 + 300 + 10)


@pytest.mark.parametrize("name", ["lenet5", "mobilenetv2-s", "resnet-s"])
def test_onnx_export_is_one_checked_file_matching_torch(name):
    model = build(name, (1, 28, 28), 10).eval()
    raw = export_bytes(model, (1, 28, 28))
    proto = onnx.load_from_string(raw)
    assert all(init.data_location != onnx.TensorProto.EXTERNAL for init in proto.graph.initializer)
    x = torch.randn(5, 1, 28, 28)
    out = session(raw, threads=1).run(None, {"input": x.numpy()})[0]
    assert np.abs(out - model(x).detach().numpy()).max() <= 1e-4


def test_time_call_reports_median_and_p90():
    t = time_call(lambda: sum(range(1000)), warmup=1, runs=11)
    assert t.runs == 11 and 0 < t.median_ms <= t.p90_ms
    assert t.throughput(64) == pytest.approx(64 / (t.median_ms / 1000))


def test_evaluate_gathers_everything(idx_dir):
    from karuku.data import DataConfig, load_splits

    splits = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=0))
    model = build("lenet5-lecun", (1, 28, 28), 10)
    ev = evaluate(model, splits, runs=3)
    assert ev.params == 61_706 and ev.macs == 416_520 and ev.total == 200
    assert set(ev.latency) == {"torch", "onnxruntime"}
    assert ev.latency["onnxruntime"]["b64_per_s"] > 0
    assert ev.sizes["fp32"] > 4 * 61_706 and ev.deploy_kind == "fp32"
    labels = [k for k, _ in ev.rows()]
    assert "test accuracy" in labels and "energy assumptions" in labels


def test_time_engines_interleaves_rounds():
    calls = []

    def engine(name):
        def make(batch):
            return lambda: calls.append((name, batch))
        return make

    speed = time_engines({"a": engine("a"), "b": engine("b")}, runs=4, rounds=3)
    assert set(speed) == {"a", "b"} and speed["a"].b64_per_s == pytest.approx(64_000 / speed["a"].b64_median_ms)
    # every round times a then b: the engines alternate instead of running back to back
    firsts = [name for name, batch in calls if batch == 1]
    assert firsts[:6] == ["a"] * 6 and firsts[6:12] == ["b"] * 6 and firsts[12] == "a"


def test_a_registered_form_is_the_deployed_one():
    """A technique's own form (here: a 1-byte-per-weight one) becomes the deployed size, with integer activations."""
    from karuku.measure import Form, register_form
    from karuku.measure.forms import FORMS

    class Tiny(torch.nn.Sequential):
        pass

    model = Tiny(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    register_form(Tiny)(lambda m: Form("int8", 650, integer=True))
    try:
        ev = evaluate(model, None, (1, 8, 8), engines=())
    finally:
        del FORMS[Tiny]
    plain = evaluate(torch.nn.Sequential(*model), None, (1, 8, 8), engines=())
    assert ev.deploy_kind == "int8" and ev.deploy_bytes == 650 and ev.sizes["fp32"] == plain.deploy_bytes
    assert ev.integer and ev.peak_activation_bytes * 4 == plain.peak_activation_bytes
    assert ev.fit("mcu-m4").reasons[0] == "weights 0.7 KB ≤ flash 1.05 MB"  # 650 B; 1 MiB in decimal units


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux: ru_maxrss survives exec elsewhere too, "
                    "but only /proc gives the program's own peak")
def test_peak_rss_is_the_programs_own_not_a_large_parents():
    # ru_maxrss is kept across exec: a reader started by a parent that once held 600 MB more reported the
    # parent's peak; the program's own high-water mark does not carry over
    import subprocess
    import sys

    from karuku.measure.memory import peak_rss_bytes

    held = np.ones(600 * 2**20, dtype=np.uint8)  # touched, so resident
    parent = peak_rss_bytes()
    out = subprocess.run([sys.executable, "-c", "from karuku.measure.memory import "
                          "peak_rss_bytes; print(peak_rss_bytes())"], capture_output=True, text=True, check=True)
    del held
    child = int(out.stdout.split()[-1])
    assert 0 < child < parent - 400 * 2**20, (child, parent)
