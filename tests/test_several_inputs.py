"""Models of several inputs and integer token ids through the training loop, evaluation, distillation, QAT and
the fp32 ONNX export: examples ((input_ids, features), y) or ({"input_ids": ..., ...}, y), fed by
karuku.data.batches.feed; a batch that does not match the model's inputs is one line naming the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from helpers.textmodels import TEXTS, tiny_encoder, tiny_tokenizer
from helpers.usermodels import Masked
from karuku.data import from_torch
from karuku.errors import KarukuError
from karuku.training import TrainConfig, score, train


class TokenBag(nn.Module):
    """Token ids (integer, 4 of them) and float features: embeddings and a feature branch, then a head (every op
    with an integer form, for QAT)."""

    def __init__(self, vocab=20, dim=8, features=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.tokens = nn.Linear(4 * dim, dim)
        self.feat = nn.Linear(features, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, input_ids, features):
        return self.head(torch.relu(self.tokens(self.embed(input_ids).flatten(1)) + self.feat(features)))


class Pairs(Dataset):
    """Examples ((ids, features), y), or ({"input_ids": ids, "features": features}, y): the class needs both
    inputs (token 3 present, and the sign of the first feature)."""

    def __init__(self, n: int, seed: int = 0, named: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.ids, self.f = torch.randint(0, 20, (n, 4), generator=g), torch.randn(n, 5, generator=g)
        self.y = (self.ids == 3).any(1).long() + (self.f[:, 0] > 0).long()
        self.named = named

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = {"features": self.f[i], "input_ids": self.ids[i]} if self.named else (self.ids[i], self.f[i])
        return x, self.y[i]


def _splits(named=False, loader=False):
    train_set = Pairs(512, 0, named)
    return from_torch(DataLoader(train_set, batch_size=50) if loader else train_set, Pairs(128, 1, named),
                      val_size=64)


FAST = TrainConfig(epochs=6, batch_size=32, lr=0.02, optimizer="adam")


@pytest.mark.parametrize("named,loader", [(False, False), (True, False), (False, True)])
def test_the_loop_trains_a_model_of_two_inputs_and_its_loss_falls(named, loader):
    splits = _splits(named, loader)
    assert splits.input_shape == ((5,) if named else (4,))  # the first input's
    torch.manual_seed(0)
    m = TokenBag()
    before = score(m, splits.test)
    res = train(m, splits, FAST, verbose=False)
    after = score(m, splits.test)
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    assert after.loss < 0.7 * before.loss and after.accuracy > 0.65 and after.total == 128  # majority class: 0.5
    if not loader:  # karuku's measurement takes the data's inputs as they come (a tuple, or by name)
        from karuku.measure import evaluate

        ev = evaluate(m, splits, engines=())
        assert ev.accuracy == pytest.approx(after.accuracy) and ev.macs == 4 * 8 * 8 + 5 * 8 + 8 * 3
        assert ev.inputs.startswith("features (5,) float32" if named else "input_ids (4,) int64")


class BertClassifier(nn.Module):
    """A tiny BERT-style encoder (karuku.text) with a class head: token ids and attention mask in."""

    def __init__(self, layers=2, seed=0):
        super().__init__()
        self.encoder = tiny_encoder(seed=seed, layers=layers)
        self.head = nn.Linear(32, 3)

    def forward(self, input_ids, attention_mask):
        return self.head(self.encoder(input_ids, attention_mask))


class Texts(Dataset):
    def __init__(self, ids, mask):
        self.ids, self.mask = ids, mask

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return (self.ids[i], self.mask[i]), i % 3


def _kl(teacher, student, ids, mask) -> float:
    with torch.no_grad():
        t, s = teacher(ids, mask), student(ids, mask)
    return float(F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True, reduction="batchmean"))


def test_a_bert_student_distils_from_a_teacher_of_two_inputs(tmp_path):
    from karuku.distillation import DistillConfig, distill

    ids, mask = tiny_tokenizer(tmp_path)(TEXTS).inputs()
    assert not mask.all()  # padded: the mask matters
    splits = from_torch(Texts(ids, mask), Texts(ids, mask), val_size=0)
    teacher, student = BertClassifier(2, seed=0).eval(), BertClassifier(1, seed=1)
    with torch.no_grad():
        teacher.head.weight.mul_(20)  # confident teacher: a target the student visibly moves to
    gap = _kl(teacher, student, ids, mask)
    res = distill(teacher, student, splits, DistillConfig(alpha=1.0, temperature=1.0,
                                                          train=TrainConfig(iterations=40, batch_size=8, lr=3e-3,
                                                                            optimizer="adam")), verbose=False)
    assert res.iterations == 40
    assert _kl(teacher, student, ids, mask) < 0.5 * gap  # 0.81 -> 0.31 when written


def test_qat_trains_a_model_of_two_inputs():
    from karuku.quant import QuantConfig, QuantModel, quantize

    for named in (False, True):
        splits = _splits(named)
        torch.manual_seed(0)
        m = TokenBag()
        train(m, splits, FAST, verbose=False)
        float_acc = score(m, splits.test).accuracy
        qm = quantize(m, QuantConfig(mode="qat", calibration=128,
                                     finetune=TrainConfig(epochs=1, batch_size=32, lr=1e-3, optimizer="adam")),
                      splits=splits)
        assert isinstance(qm, QuantModel) and any(bool(a.enabled) for a in qm.acts.values())
        assert score(qm, splits.test).accuracy >= float_acc - 0.05  # a dict batch reaches it by name too
    with pytest.raises(KarukuError, match="the quantized model takes input_ids, features; given ids, features"):
        qm(ids=torch.zeros(1, 4).long(), features=torch.zeros(1, 5))


def test_mixed_precision_auto_mode_scores_layers_on_the_models_own_inputs():
    from karuku.quant import QuantConfig, quantize
    from karuku.quant.mixed import sensitivity

    splits = _splits()
    torch.manual_seed(0)
    m = TokenBag()
    train(m, splits, FAST, verbose=False)
    float_acc = score(m, splits.val).accuracy
    qm = quantize(m, QuantConfig(max_drop=0.05, low_bits=2), splits=splits)
    bits = {name: layer.bits for name, layer in qm.layers.items() if layer.bits is not None}
    assert set(bits) == {"tokens", "feat", "head"} and set(bits.values()) == {2, 8}  # a mix: some layers at 2 bits
    assert score(qm, splits.val).accuracy >= float_acc - 0.05  # the budget, on the validation split it chose by
    ranking = sensitivity(qm, splits.val, low_bits=2)  # each layer scored on (ids, features) examples
    assert bits[ranking[0].layer] == 8  # the most sensitive layer kept its 8 bits


def test_export_fp32_of_a_token_id_model_passes_parity_and_runs_in_onnx_runtime(tmp_path):
    from karuku.deploy.onnx_fp32 import export_fp32
    from karuku.measure.onnx_runtime import session

    m = tiny_encoder()
    ids, mask = tiny_tokenizer(tmp_path)(TEXTS).inputs()
    # a shape: the encoder's registered inputs (token ids within the vocabulary, a mask); parity on drawn ones
    res = export_fp32(m, (12,), tmp_path / "enc.onnx")
    assert res.max_abs_diff <= 1e-4 and res.checked == 64 + 16
    # its own texts, by name in another order: the file takes int64 inputs under forward's names
    res = export_fp32(m, (ids, mask), tmp_path / "enc2.onnx", inputs={"attention_mask": mask, "input_ids": ids})
    sess = session(res.path)
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("input_ids", "tensor(int64)"),
                                                             ("attention_mask", "tensor(int64)")]
    got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - m(ids, mask).numpy()).max() < 1e-4
    # a model of an int and a float input
    bag = TokenBag().eval()
    res = export_fp32(bag, (torch.randint(0, 20, (8, 4)), torch.randn(8, 5)), tmp_path / "bag.onnx")
    assert res.max_abs_diff <= 1e-4
    with pytest.raises(KarukuError, match="1 parity inputs for a model of 2"):
        export_fp32(bag, (torch.randint(0, 20, (8, 4)), torch.randn(8, 5)), tmp_path / "x.onnx",
                    inputs=torch.randn(8, 5))


def test_batches_that_do_not_match_the_model_are_one_line_naming_the_fix():
    from karuku.distillation import DistillConfig, distill

    one = from_torch(TensorDataset(torch.randint(0, 20, (8, 4)).float(), torch.randint(0, 3, (8,))), val_size=0)
    with pytest.raises(KarukuError, match=r"TokenBag\) takes 2 inputs \(input_ids, features\); the data's examples "
                                          r"carry one tensor \(give examples \(\(input_ids, features\), y\)"):
        train(TokenBag(), one, FAST, verbose=False)
    with pytest.raises(KarukuError, match=r"takes 1 inputs \(input\); the data's examples carry 2 inputs"):
        train(nn.Linear(4, 3), _splits(), FAST, verbose=False)

    class Misnamed(Pairs):
        def __getitem__(self, i):
            return {"ids": self.ids[i], "features": self.f[i]}, self.y[i]

    with pytest.raises(KarukuError, match=r"carry ids, features: no input_ids; ids it has no parameter for "
                                          r"\(name the inputs as forward does \(input_ids, features\)\)"):
        train(TokenBag(), from_torch(Misnamed(16), val_size=0), FAST, verbose=False)
    with pytest.raises(KarukuError, match=r"TensorDataset of 3 tensors.*examples \(\(input_ids, attention_mask\), y"):
        score(TokenBag(), TensorDataset(torch.zeros(4, 4).long(), torch.zeros(4, 5), torch.zeros(4).long()))
    with pytest.raises(KarukuError, match="augment_shift shifts images.*--data-augment-shift 0"):
        train(TokenBag(), from_torch(Pairs(16), val_size=0, augment_shift=1), FAST, verbose=False)

    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x.float())

    with pytest.raises(KarukuError, match=r"the teacher \(Dense\) takes 1 inputs \(x\); the data's examples carry 2"):
        distill(Dense(), TokenBag(), _splits(), DistillConfig(train=FAST), verbose=False)


def test_the_training_data_calibrates_ptq_as_it_trains():
    from karuku.quant import QuantConfig, quantize

    torch.manual_seed(0)
    m = TokenBag().eval()
    for named in (False, True):
        data = Pairs(64, named=named)
        # a user's DataLoader of training examples ({...} or (ids, features), y): the same inputs either way
        qm = quantize(m, QuantConfig(calibration=64), DataLoader(data, batch_size=16))
        ref = quantize(m, QuantConfig(calibration=64), (data.ids, data.f))
        with torch.no_grad():
            assert torch.equal(qm(data.ids, data.f), ref(data.ids, data.f))


def test_the_input_part_of_an_example():
    from karuku.data.batches import collate, count, describe, split_example

    ids, f = torch.arange(4), torch.ones(5)
    x, y = split_example(((ids, f), 1))
    assert isinstance(x, tuple) and len(x) == 2 and y == 1
    assert split_example(([ids, f],))[1] is None  # a DataLoader's list of inputs, unlabelled
    assert isinstance(split_example(((0.5, 1.5), 1))[0], torch.Tensor)  # a tuple of numbers: one array, as ever
    x, y = collate([({"input_ids": ids, "features": f}, 0), ({"input_ids": ids + 1, "features": f}, 2)])
    assert x["input_ids"].dtype == torch.int64 and x["features"].shape == (2, 5) and y.tolist() == [0, 2]
    assert count(x) == 2 and describe(x) == "(input_ids (4,) int64, features (5,) float32)"
    assert collate([ids, ids])[0].dtype == torch.float32  # a lone integer tensor: pixel values, as ever
    with pytest.raises(KarukuError, match="examples of one dataset carry different inputs"):
        collate([((ids, f), 0), (ids, 1)])
    with pytest.raises(KarukuError, match="examples of different shapes.*token ids: padded to one length"):
        collate([((ids, f), 0), ((torch.arange(3), f), 1)])


def _compress_tokens(tmp_path, stages):
    from karuku.pipeline import compress
    from karuku.pipeline.recipe import parse_recipe

    recipe, problems = parse_recipe({
        "version": 1, "name": "tokens", "model": {"name": "helpers.usermodels:token_flat", "train": {
            "epochs": 6, "lr": 0.01, "optimizer": "adam", "batch_size": 32}},
        "budget": {"max_drop": 5}, "recovery": {"epochs": 0, "max_rounds": 0}, "stages": stages})
    assert not problems, problems
    splits = from_torch(Masked(600, 0), Masked(200, 1), val_size=100)
    return compress(recipe, tmp_path / "run", verbose=False, threads=1, data=splits)


TOKENS = "input_ids (12,) int64 in [0, 32), attention_mask (12,) int64 in [0, 2)"


def test_the_compression_loop_measures_a_model_of_token_ids_and_a_mask_on_its_inputs(tmp_path):
    from karuku.data.batches import feed
    from karuku.io.checkpoint import load_model

    out = _compress_tokens(tmp_path, [{"prune": {"sparsity": 0.5}}, {"quantize": {"mode": "ptq"}}])
    summary = json.loads((out.run_dir / "summary.json").read_text())
    base, final = summary["baseline"]["measure"], summary["final"]["measure"]
    assert base["inputs"] == final["inputs"] == TOKENS  # the data's inputs, their dtypes and value ranges
    assert base["macs"] == final["macs"] == 12 * 8 * 32 + 12 * 32 + 32 * 2  # counted on them (embedding: no MAC)
    assert base["accuracy"] > 0.75 and final["deploy_kind"] == "int8"  # majority class: 0.59
    assert final["sizes"]["int8"] < base["sizes"]["fp32"] / 2
    for m in (base, final):  # both deployed files timed side by side in ONNX Runtime on the data's inputs
        assert m["latency"]["onnxruntime"]["b1_median_ms"] > 0
    assert TOKENS in (out.run_dir / "report.md").read_text()
    model, _ = load_model(out.run_dir / "final.safetensors")  # the quantize transform traces the token inputs again
    test = Masked(200, 1)
    with torch.no_grad():
        pred = feed(model.eval(), (test.ids, test.mask)).argmax(1)
    assert float((pred == test.y).float().mean()) == pytest.approx(final["accuracy"])


def test_the_loop_removes_a_token_models_neurons_structurally(tmp_path):
    from karuku.data.batches import feed
    from karuku.io.checkpoint import load_model

    out = _compress_tokens(tmp_path, [{"prune": {"sparsity": 0.5, "structured": True}}])
    summary = json.loads((out.run_dir / "summary.json").read_text())
    base, final = summary["baseline"]["measure"], summary["final"]["measure"]
    assert base["macs"] == 12 * 8 * 32 + 12 * 32 + 32 * 2  # counted on the data's token ids and mask
    assert final["macs"] == 12 * 8 * 16 + 12 * 16 + 16 * 2  # the hidden layer halved; embeddings and mask stay
    assert final["params"] < base["params"] and final["inputs"] == TOKENS
    model, _ = load_model(out.run_dir / "final.safetensors")  # the channel edits replay on the token model
    assert model.tokens.out_features == model.mask.out_features == model.head.in_features == 16
    test = Masked(200, 1)
    with torch.no_grad():
        pred = feed(model.eval(), (test.ids, test.mask)).argmax(1)
    assert float((pred == test.y).float().mean()) == pytest.approx(final["accuracy"])


def test_karuku_prune_on_a_token_checkpoint_measures_it_on_the_datas_inputs(tmp_path):
    from karuku.data import DataConfig
    from karuku.io.checkpoint import load_model
    from karuku.pruning import PruneConfig
    from karuku.pruning.job import prune_checkpoint

    out = _compress_tokens(tmp_path, [{"prune": {"sparsity": 0.25}}])
    data = DataConfig(name="helpers.usermodels:masked_data", val_size=100)
    fig = prune_checkpoint(out.run_dir / "final.safetensors", PruneConfig(sparsity=0.5, structured=True),
                           tmp_path / "p.safetensors", data, verbose=False)
    assert fig["before"]["macs"] == 12 * 8 * 32 + 12 * 32 + 32 * 2
    assert fig["after"]["macs"] == 12 * 8 * 16 + 12 * 16 + 16 * 2
    macs = {r["layer"]: (r["macs_before"], r["macs"]) for r in fig["layers"]}  # counted on (ids, mask)
    assert macs == {"embed": (0, 0), "tokens": (96 * 32, 96 * 16), "mask": (12 * 32, 12 * 16), "head": (64, 32)}
    model, _ = load_model(tmp_path / "p.safetensors")
    assert model.tokens.out_features == 16 and model.embed.embedding_dim == 8
    with pytest.raises(KarukuError, match=r"TokenFlat does not run on one input of the shape its checkpoint records "
                                          r"\(input \(12,\) float32\).*pass --data naming the dataset") as err:
        prune_checkpoint(out.run_dir / "final.safetensors", PruneConfig(sparsity=0.5, structured=True),
                         tmp_path / "q.safetensors", verbose=False)
    assert "\n" not in str(err.value)


def test_an_unlabelled_models_output_size_is_probed_on_its_own_inputs():
    from karuku.models.spec import spec_for

    data = Masked(4, 0)
    spec = spec_for("helpers.usermodels:token_flat3", (12,), None, {}, (data.ids, data.mask))
    assert spec.num_classes == 3
