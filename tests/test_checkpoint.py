import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from karuku.errors import KarukuError
from karuku.io.checkpoint import load_checkpoint, load_model, read_weights, register_transform, save_checkpoint
from karuku.models import ModelSpec


@pytest.fixture
def saved(tmp_path):
    spec = ModelSpec(name="lenet5-lecun", input_shape=(1, 28, 28), num_classes=10)
    model = spec.build()
    path = save_checkpoint(tmp_path / "m.safetensors", model, spec, {"metrics": {"test": {"accuracy": 0.5}}},
                           sections={"mask": {"fc1.weight": torch.ones(120, 400, dtype=torch.bool)}})
    return path, model


def test_round_trip_gives_identical_outputs(saved):
    path, model = saved
    loaded, ckpt = load_model(path)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))
    assert ckpt.meta["metrics"]["test"]["accuracy"] == 0.5
    assert ckpt.meta["format_version"] == 1 and ckpt.meta["karuku_version"]
    assert ckpt.sections["mask"]["fc1.weight"].dtype == torch.bool


def test_no_temp_file_is_left_behind(saved):
    path, _ = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.safetensors"]


def test_truncated_file(saved, tmp_path):
    path, _ = saved
    bad = tmp_path / "t.safetensors"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(KarukuError, match="truncated or corrupt"):
        load_checkpoint(bad)


def test_flipped_bit_in_the_weights_is_caught(saved, tmp_path):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x10
    bad = tmp_path / "f.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(KarukuError, match="checksum mismatch"):
        load_checkpoint(bad)


def test_not_safetensors(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_text("hello world, not a checkpoint")
    with pytest.raises(KarukuError, match="not a readable safetensors"):
        load_checkpoint(p)


def test_plain_safetensors_without_spec(tmp_path):
    p = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(p))
    with pytest.raises(KarukuError, match="no karuku metadata"):
        load_checkpoint(p)


def test_checkpoint_for_another_architecture(saved, tmp_path):
    path, _ = saved
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    doc = json.loads(header["__metadata__"]["karuku"])
    doc["model"]["name"] = "lenet5"
    header["__metadata__"]["karuku"] = json.dumps(doc)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    other = tmp_path / "o.safetensors"
    other.write_bytes(len(new).to_bytes(8, "little") + new + raw[8 + n :])
    with pytest.raises(KarukuError, match="does not fit model 'lenet5'.*another architecture"):
        load_model(other)


def test_transforms_are_replayed_before_loading(tmp_path):
    @register_transform("test-widen")
    def widen(model, params):
        model.fc3 = torch.nn.Linear(84, params["classes"])
        return model

    spec = ModelSpec(name="lenet5-lecun", input_shape=(1, 28, 28), num_classes=10)
    model = widen(spec.build(), {"classes": 3})
    path = save_checkpoint(tmp_path / "w.safetensors", model, spec,
                           {"transforms": [{"name": "test-widen", "params": {"classes": 3}}]})
    loaded, _ = load_model(path)
    assert loaded(torch.randn(1, 1, 28, 28)).shape == (1, 3)


def test_user_pt_state_dict_loads_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    state = read_weights(tmp_path / "w.pt")
    assert torch.equal(state["weight"], model.weight)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": Evil()}, fh)
    with pytest.raises(KarukuError, match="pickled models are refused"):
        read_weights(path)


def test_import_paths_in_files_need_trust(tmp_path, monkeypatch):
    from karuku.io import checkpoint

    spec = ModelSpec(name="helpers.usermodels:tiny", input_shape=(1, 28, 28), num_classes=10, kwargs={"width": 3})
    path = save_checkpoint(tmp_path / "u.safetensors", spec.build(), spec)
    monkeypatch.setattr(checkpoint, "_TRUSTED", set())
    monkeypatch.delenv("KARUKU_TRUSTED_IMPORTS", raising=False)
    with pytest.raises(KarukuError, match="importing 'helpers.usermodels:tiny'.*KARUKU_TRUSTED_IMPORTS=helpers"):
        load_model(path)
    monkeypatch.setenv("KARUKU_TRUSTED_IMPORTS", "helpers")
    model, _ = load_model(path)
    assert model.net[1].out_features == 3
    monkeypatch.setenv("KARUKU_TRUSTED_IMPORTS", "")
    checkpoint.trust_import("helpers.usermodels:tiny")  # named directly in this process
    assert load_model(path)[0].net[1].out_features == 3


def test_a_fresh_process_loads_a_quantized_checkpoint_without_importing_quant_first(tmp_path):
    import subprocess
    import sys

    from karuku.quant import QuantConfig, quantize, save_quantized

    spec = ModelSpec(name="lenet5-lecun", input_shape=(1, 28, 28), num_classes=10)
    path = save_quantized(tmp_path / "q.safetensors", quantize(spec.build().eval(), QuantConfig(),
                                                                torch.randn(32, 1, 28, 28)), spec)
    code = f"from karuku.io.checkpoint import load_model; print(type(load_model({str(path)!r})[0]).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "QuantModel"
