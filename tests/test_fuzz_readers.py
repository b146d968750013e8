"""Fuzzing the readers of files users hand karuku — checkpoint documents (the model spec and everything karuku
reads beside it) and recipes: each input is a load or one KarukuError line, in bounded time and memory, never
another exception type."""

import resource
import string
import time

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karuku.errors import KarukuError
from karuku.io import safefile
from karuku.io.checkpoint import load_model, save_checkpoint
from karuku.models import ModelSpec
from karuku.pipeline.recipe import load_recipe

SECONDS = 15  # per input, on a loaded 2-core machine
RSS_GROWTH = 1 << 30  # bytes the whole run may add to the process's peak memory

words = st.text(string.ascii_letters + string.digits + "_-.:*", max_size=12)
numbers = st.one_of(st.integers(-2**70, 2**70), st.sampled_from([0, 1, -1, 8, 28, 2**31, 2**40, 2**63]),
                    st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(st.none(), st.booleans(), numbers, words)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(words, inner, max_size=5)), max_leaves=25)
shapes = st.lists(st.one_of(st.integers(-3, 5000), numbers), min_size=0, max_size=7)
zoo = st.sampled_from(["lenet300", "lenet5", "conv2", "resnet-s", "mobilenetv2-s", "mnist1d-mlp", "mlp-student",
                       "nope", "os:system", "karuku.models.mlp:lenet300", ""])
specs = st.one_of(values, st.fixed_dictionaries(
    {"name": st.one_of(zoo, values), "input_shape": st.one_of(shapes, values),
     "num_classes": st.one_of(numbers, values)},
    optional={"kwargs": st.one_of(st.dictionaries(st.sampled_from(["hidden", "widths", "width", "dropout",
                                                                   "input_dropout", "x"]), values, max_size=3),
                                  values)}))
transforms = st.lists(st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["prune_channels", "quantize", "share", "x"]), values)},
    optional={"module": st.one_of(st.sampled_from(["karuku.pruning.structured.rewrite", "karuku.quant.store",
                                                   "os", "karuku.nope"]), values),
              "params": st.one_of(values, st.fixed_dictionaries({"edits": values}), st.fixed_dictionaries(
                  {"config": values, "input_shape": shapes, "nodes": values}))}), max_size=3)
KEYS = ["format", "format_version", "model", "transforms", "data", "sizes", "stages", "quantization", "cluster",
        "stage_meta", "metrics", "karuku_version"]
edits = st.dictionaries(st.sampled_from(KEYS), values, max_size=4)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    spec = ModelSpec(name="lenet300", input_shape=(1, 8, 8), num_classes=10)
    path = save_checkpoint(tmp_path_factory.mktemp("base") / "m.safetensors", spec.build(), spec,
                           {"data": {"name": "digits", "val_size": 100}, "transforms": [], "stages": []})
    return safefile.read(path)


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _one_line_or_load(fn) -> None:
    start = time.perf_counter()
    try:
        fn()
    except KarukuError as exc:
        assert "\n" not in str(exc) and str(exc)
    assert time.perf_counter() - start < SECONDS


@pytest.fixture(scope="module")
def memory():
    before = _peak()
    yield
    assert _peak() - before < RSS_GROWTH


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(model=specs, trans=st.one_of(transforms, values), other=edits)
def test_checkpoint_documents(base, tmp_path_factory, memory, model, trans, other):
    tensors, doc = base
    doc = {k: v for k, v in doc.items() if k != "tensors_sha256"}
    doc.update(other)
    doc["model"], doc["transforms"] = model, trans
    path = tmp_path_factory.mktemp("fuzz") / "c.safetensors"
    safefile.write(path, tensors, doc)  # checksum valid: only the content is hostile
    torch.set_num_threads(1)
    _one_line_or_load(lambda: load_model(path))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(meta=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                      values.map(repr)))
def test_checkpoint_metadata_text(tmp_path_factory, memory, meta):
    from safetensors.torch import save

    path = tmp_path_factory.mktemp("meta") / "c.safetensors"
    path.write_bytes(save({"model.x": torch.zeros(2)}, metadata={"karuku": meta}))
    _one_line_or_load(lambda: load_model(path))


RECIPE = {"version": 1, "name": "fuzz", "data": {"name": "digits", "val_size": 100},
          "model": {"name": "lenet300", "train": {"epochs": 1}}, "budget": {"max_accuracy_drop": 1.0},
          "recovery": {"epochs": 1}, "stages": [{"prune": {"sparsity": 0.5}}, {"quantize": {}}]}
SECTIONS = ["version", "name", "seed", "data", "model", "budget", "recovery", "stages", "threads", "extra"]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(changes=st.dictionaries(st.sampled_from(SECTIONS), values, max_size=3),
       stage=st.one_of(st.none(), st.dictionaries(st.sampled_from(["prune", "quantize", "cluster", "pack", "export",
                                                                   "distill", "finetune", "nope"]), values,
                                                  min_size=1, max_size=1)))
def test_recipes(tmp_path_factory, memory, changes, stage):
    doc = dict(RECIPE, **changes)
    if stage is not None:
        doc["stages"] = [stage]
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _one_line_or_load(lambda: load_recipe(path))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                      st.text(alphabet="[]{}:-&*!|>'\"\n ab1", max_size=300)))
def test_recipe_text(tmp_path_factory, memory, text):
    path = tmp_path_factory.mktemp("text") / "r.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _one_line_or_load(lambda: load_recipe(path))
