import pytest
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.models import MODELS, ModelSpec, build
from karuku.models.mlperf_tiny import REFERENCE_SHAPES


@pytest.mark.parametrize("name, params", [("lenet300", 266_610), ("lenet5", 431_080), ("lenet5-lecun", 61_706),
                                          ("mlp-teacher", 2_395_210), ("mlp-student", 1_276_810),
                                          ("mnist1d-mlp", 276_010)])
def test_parameter_counts_match_the_papers(name, params):
    shape = (1, 40) if name.startswith("mnist1d") else (1, 28, 28)
    assert sum(p.numel() for p in build(name, shape, 10).parameters()) == params


SENTENCE_ENCODERS = ("bert", "minilm-l6")  # token ids + attention mask in, embeddings out (karuku.text)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_zoo_model_runs_on_its_inputs(name):
    if name in SENTENCE_ENCODERS:
        model = build(name, (16,), 7, **({"layers": 1} if name == "bert" else {}))
        ids = torch.randint(0, model.cfg.vocab_size, (3, 16))
        assert model(ids, torch.ones_like(ids)).shape == (3, model.cfg.hidden)
        return
    shape = REFERENCE_SHAPES.get(name, (1, 40) if name.startswith("mnist1d") else (1, 28, 28))
    model = build(name, shape, 7)
    out = 640 if name == "fc-autoencoder" else 7  # the autoencoder reconstructs its input
    assert model.eval()(torch.randn(3, *shape)).shape == (3, out)


@pytest.mark.parametrize("name, params, classes, feature_map", [
    ("ds-cnn", 23_756, 12, (64, 25, 5)),  # 10×4 stride-2 conv: 49×10 -> 25×5, as Keras' 'same'
    ("resnet8", 78_186, 10, (64, 8, 8)),
    ("mobilenetv1-025", 216_322, 2, (256, 3, 3)),
])
def test_mlperf_tiny_models_have_the_reference_shapes(name, params, classes, feature_map):
    model = build(name, REFERENCE_SHAPES[name], classes).eval()
    assert sum(p.numel() for p in model.parameters()) == params
    body = model.features if hasattr(model, "features") else nn.Sequential(model.stem, model.stacks)
    assert body(torch.randn(1, *REFERENCE_SHAPES[name])).shape[1:] == feature_map
    assert model(torch.randn(2, *REFERENCE_SHAPES[name])).shape == (2, classes)


def test_the_autoencoder_reconstructs_through_an_8_wide_bottleneck():
    model = build("fc-autoencoder", (640,), 0 + 1)
    widths = [m.out_features for m in model if isinstance(m, nn.Linear)]
    assert widths == [128, 128, 128, 128, 8, 128, 128, 128, 128, 640]


@pytest.mark.parametrize("name", ["resnet-s", "mobilenetv2-s", "conv2", "lenet5"])
def test_conv_models_take_other_input_shapes(name):
    assert build(name, (3, 32, 32), 10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_widths_are_configurable():
    small = build("resnet-s", (1, 28, 28), 10, widths=(8, 16, 32))
    assert small.stem[0].out_channels == 8 and small.fc.in_features == 32


def test_user_model_by_import_path():
    model = ModelSpec(name="helpers.usermodels:tiny", input_shape=(1, 28, 28), num_classes=10,
                      kwargs={"width": 5}).build()
    assert model.net[1].out_features == 5


def test_a_module_in_the_current_folder_imports_as_python_m_would(tmp_path, monkeypatch):
    import sys

    (tmp_path / "herefactories.py").write_text("from torch import nn\ndef make(num_classes=10):\n"
                                               "    return nn.Linear(4, num_classes)\n")
    (tmp_path / "colorsys.py").write_text("raise RuntimeError('the folder must not hide an installed module')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert build("herefactories:make", (4,), 3).out_features == 3
    assert sys.path[-1] == str(tmp_path)  # searched last
    import importlib

    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert importlib.import_module("colorsys").rgb_to_hsv(0, 0, 0) == (0, 0, 0)
    with pytest.raises(KarukuError, match="run karuku from the folder that holds elsewhere.py"):
        build("elsewhere:make", (4,), 3)


@pytest.mark.parametrize("name, needle", [
    ("resnet", "unknown model 'resnet'.*known:"),
    ("helpers.nowhere:tiny", "cannot import 'helpers.nowhere'"),
    ("helpers.usermodels:missing", "has no callable 'missing'"),
    ("helpers.usermodels:not_a_model", "returned int, not a torch.nn.Module"),
])
def test_bad_model_names(name, needle):
    with pytest.raises(KarukuError, match=needle):
        build(name, (1, 28, 28), 10)


def test_spec_round_trips_through_json():
    spec = ModelSpec(name="resnet-s", input_shape=(1, 28, 28), num_classes=10, kwargs={"widths": [8, 16, 32]})
    again = ModelSpec.model_validate_json(spec.model_dump_json())
    assert again == spec and again.build().stem[0].out_channels == 8
