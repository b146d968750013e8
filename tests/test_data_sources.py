"""Every data source on tiny data the test writes: image folders, .npz / .npy, CSV, IDX of any shape, a user's
factory; each bad input of the issue is one line naming the file or field and the fix."""

from __future__ import annotations

import textwrap
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from karuku.data import DataConfig, encode_idx, first_inputs, from_torch, iterate, load_splits
from karuku.data.batches import in_memory
from karuku.errors import KarukuError


def _png(path, value: int, size=(6, 6), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


@pytest.fixture
def image_dir(tmp_path):
    """train/ and test/ with three classes of 6×6 grayscale PNGs."""
    root = tmp_path / "photos"
    for split, n in (("train", 6), ("test", 2)):
        for c, name in enumerate(("cat", "dog", "emu")):
            for i in range(n):
                _png(root / split / name / f"{i}.png", 100 * c + 10 * i + (split == "test"))
    return root


def test_image_folder_in_memory_and_streamed_agree(image_dir):
    mem = load_splits(DataConfig(name="images", path=str(image_dir), val_size=3))
    assert mem.input_shape == (1, 6, 6) and mem.num_classes == 3 and mem.classes == ("cat", "dog", "emu")
    assert (len(mem.train), len(mem.val), len(mem.test)) == (15, 3, 6) and in_memory(mem.train)
    assert abs(float(torch.cat([mem.train.tensors[0], mem.val.tensors[0]]).mean())) < 1e-5  # train statistics
    streamed = load_splits(DataConfig(name="images", path=str(image_dir), val_size=3, stream=True,
                                      mean=mem.preprocess["mean"], std=mem.preprocess["std"]))
    assert not streamed.in_memory
    xs, ys = zip(*iterate(streamed.test, 4))
    assert torch.allclose(torch.cat(xs), mem.test.tensors[0], atol=1e-6)
    assert torch.equal(torch.cat(ys), mem.test.tensors[1])


def test_image_folder_resize_crop_and_fraction(tmp_path):
    root = tmp_path / "flat"
    for c in range(2):
        for i in range(5):
            _png(root / f"class{c}" / f"{i}.png", c * 10 + i, size=(9 + i % 2, 8), mode="RGB")  # mixed widths
    with pytest.raises(KarukuError, match=r"image .*1\.png is 8×10 but .*0\.png is 8×9.*--data-resize H,W"):
        load_splits(DataConfig(name="images", path=str(root), val_size=0))
    s = load_splits(DataConfig(name="images", path=str(root), val_size=0, resize=[8, 8], crop=[6],
                               test_fraction=0.2, mean=[0.5, 0.5, 0.5], std=[0.25]))
    assert s.input_shape == (3, 6, 6) and (len(s.train), len(s.test)) == (8, 2)
    assert s.preprocess == {"resize": [8, 8], "crop": [6, 6], "mean": [0.5, 0.5, 0.5], "std": [0.25]}
    assert float(s.train.tensors[0].min()) >= -2.0 and float(s.train.tensors[0].max()) <= 2.0  # (x - .5) / .25


def test_image_folder_bad_inputs(tmp_path, image_dir):
    flat = tmp_path / "flat"
    _png(flat / "0.png", 1)
    with pytest.raises(KarukuError, match=r"flat has no class sub-folders \(put each class's images"):
        load_splits(DataConfig(name="images", path=str(flat)))
    (image_dir / "train" / "dog" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(KarukuError, match=r"cannot read image .*broken\.png.*--data-unreadable skip"):
        load_splits(DataConfig(name="images", path=str(image_dir), val_size=0))
    with pytest.warns(UserWarning, match="skipping unreadable image .*broken.png"):
        s = load_splits(DataConfig(name="images", path=str(image_dir), val_size=0, unreadable="skip"))
    assert len(s.train) == 18
    (image_dir / "test" / "yak").mkdir()
    _png(image_dir / "test" / "yak" / "0.png", 3)
    with pytest.raises(KarukuError, match="class folder.* yak that the training folder lacks"):
        load_splits(DataConfig(name="images", path=str(image_dir), unreadable="skip"))


def test_npz_and_memory_mapped_npy(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (50, 4, 4), dtype=np.uint8), rng.integers(0, 5, 50)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    s = load_splits(DataConfig(name="arrays", path=str(tmp_path / "d.npz"), val_size=5, test_fraction=0.2))
    assert s.input_shape == (1, 4, 4) and s.num_classes == 5 and (len(s.train), len(s.val), len(s.test)) == (35, 5, 10)
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "x_train.npy", rng.normal(size=(40, 3)).astype(np.float32))
    np.save(folder / "x_test.npy", rng.normal(size=(10, 3)).astype(np.float32))
    np.save(folder / "y_train.npy", rng.normal(size=40).astype(np.float32))  # values: a regression
    np.save(folder / "y_test.npy", rng.normal(size=10).astype(np.float32))
    r = load_splits(DataConfig(name="arrays", path=str(folder), val_size=0, stream=True))
    assert r.targets == "values" and r.outputs == 1 and r.input_shape == (3,) and not r.in_memory
    assert first_inputs(r.test, 4).shape == (4, 3)
    np.savez(tmp_path / "neg.npz", x_train=x, y_train=y - 1, x_test=x[:5], y_test=y[:5])
    with pytest.raises(KarukuError, match="label -1 is out of range"):
        load_splits(DataConfig(name="arrays", path=str(tmp_path / "neg.npz")))
    np.savez(tmp_path / "nolabels.npz", x=x)
    u = load_splits(DataConfig(name="arrays", path=str(tmp_path / "nolabels.npz"), val_size=0))
    assert u.targets == "none" and not u.labelled and u.outputs is None


def test_csv_with_a_named_label_column(tmp_path):
    rows = ["height,weight,kind"] + [f"{1 + i % 7},{2.5 * i},{'ab'[i % 2]}" for i in range(30)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    s = load_splits(DataConfig(name="csv", path=str(tmp_path / "t.csv"), label="kind", val_size=0))
    assert s.input_shape == (2,) and s.num_classes == 2 and s.classes == ("a", "b") and len(s.test) == 6
    assert torch.allclose(s.train.tensors[0].mean(0), torch.zeros(2), atol=1e-5)  # standardised per column
    with pytest.raises(KarukuError, match=r"t\.csv has no column 'knd'; did you mean 'kind'.*--data-label"):
        load_splits(DataConfig(name="csv", path=str(tmp_path / "t.csv"), label="knd"))
    with pytest.raises(KarukuError, match=r"t\.csv line 2, column 'kind': 'a' is not a number"):
        load_splits(DataConfig(name="csv", path=str(tmp_path / "t.csv"), label="weight"))
    (tmp_path / "r.csv").write_text("\n".join(["a,b"] + [f"{i},{i / 4}" for i in range(20)]) + "\n")
    r = load_splits(DataConfig(name="csv", path=str(tmp_path / "r.csv"), label="b", val_size=0))
    assert r.targets == "values" and r.num_classes is None and r.outputs == 1


def test_idx_of_any_shape_and_class_count(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 40), ("test", 10)):
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(encode_idx(rng.integers(0, 256, (n, 5, 7), np.uint8)))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(encode_idx(rng.integers(0, 13, n).astype(np.uint8)))
    s = load_splits(DataConfig(name="idx", path=str(tmp_path), val_size=4))
    assert s.input_shape == (1, 5, 7) and s.num_classes == 13 and (len(s.train), len(s.test)) == (36, 10)


FACTORY = '''
import torch
from torch.utils.data import Dataset, IterableDataset


class Squares(Dataset):
    classes = ["small", "large"]

    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        v = float((i + self.offset) % 10)
        return torch.full((1, 3, 3), v / 10), int(v >= 5)


class Stream(IterableDataset):
    """Examples made on the fly; asking its length is a failure of the caller."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        raise AssertionError("the stream's length was asked")

    def __iter__(self):
        g = torch.Generator().manual_seed(self.n)
        for _ in range(self.n):
            x = torch.randn(4, generator=g)
            yield x, int(x.sum() > 0)


def make(cfg):
    return Squares(cfg.kwargs.get("n", 40)), Squares(10, offset=3)


def streams():
    return {"train": Stream(64), "test": Stream(16)}


def wrong():
    return 42
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = f"userdata_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_factory_by_import_path_and_its_trust(user_module, monkeypatch):
    import karuku.io.checkpoint as ck
    from karuku.data import for_checkpoint

    s = load_splits(DataConfig(name=f"{user_module}:make", kwargs={"n": 30}, val_size=5))
    assert s.input_shape == (1, 3, 3) and s.num_classes == 2 and (len(s.train), len(s.val), len(s.test)) == (25, 5, 10)
    with pytest.raises(KarukuError, match=rf"data factory '{user_module}:wrong' returned int, not a torch Dataset"):
        load_splits(DataConfig(name=f"{user_module}:wrong"))
    stored = type("Ckpt", (), {"meta": {"data": {"name": f"{user_module}:make", "val_size": 5}},
                               "path": "m.safetensors", "spec": type("S", (), {"input_shape": (1, 3, 3)})()})()
    monkeypatch.setattr(ck, "_TRUSTED", set())
    monkeypatch.delenv("KARUKU_TRUSTED_IMPORTS", raising=False)
    with pytest.raises(KarukuError, match=rf"m\.safetensors reads its data by importing '{user_module}:make'.*"
                                          rf"KARUKU_TRUSTED_IMPORTS={user_module}"):
        for_checkpoint(stored)
    monkeypatch.setenv("KARUKU_TRUSTED_IMPORTS", user_module)
    assert for_checkpoint(stored).num_classes == 2


def test_torch_datasets_from_python_and_a_stream_never_counted(user_module):
    import importlib

    from karuku.training.config import TrainConfig
    from karuku.training.loop import train

    mod = importlib.import_module(user_module)
    s = from_torch(mod.Squares(20), mod.Squares(8), val_size=0)
    assert s.num_classes == 2 and s.input_shape == (1, 3, 3)
    st = load_splits(DataConfig(name=f"{user_module}:streams", val_size=16))
    assert st.input_shape == (4,) and st.num_classes == 2 and st.calibration(5).shape == (5, 4)
    model = torch.nn.Linear(4, 2)
    res = train(model, st, TrainConfig(iterations=5, batch_size=8, lr=0.1), verbose=False)
    assert res.iterations == 5 and res.history  # validated on the stream's first 16 examples
    res = train(model, st, TrainConfig(epochs=1, batch_size=16, lr=0.1), verbose=False)
    assert res.iterations == 3  # (64 - 16) / 16: the stream counted by reading it, never by len()


PRETRAINED = '''

def pretrained():
    """A model given with its weights: it expects inputs normalised by mean 0.5, std 0.25."""
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 2))
'''


def test_pretrained_model_in_from_the_command_line_with_its_preprocessing(user_module, tmp_path, monkeypatch):
    """`--epochs 0` keeps the factory's weights; the declared mean / std travel with the checkpoint, so a later
    command that names neither the data nor the preprocessing measures exactly as the first did."""
    from typer.testing import CliRunner

    from karuku.cli import commands  # noqa: F401  (registers the commands)
    from karuku.cli.app import app
    from karuku.io.checkpoint import load_model

    (tmp_path / f"{user_module}.py").write_text((tmp_path / f"{user_module}.py").read_text() + PRETRAINED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KARUKU_TRUSTED_IMPORTS", user_module)
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--model", f"{user_module}:pretrained", "--epochs", "0", "--data",
                              f"{user_module}:make", "--data-val-size", "0", "--data-mean", "0.5", "--data-std",
                              "0.25", "--out", "m.safetensors"])
    assert res.exit_code == 0, res.output
    model, ckpt = load_model(tmp_path / "m.safetensors")
    assert ckpt.meta["result"]["iterations"] == 0 and ckpt.meta["preprocess"]["mean"] == [0.5]
    torch.manual_seed(3)
    assert torch.equal(model[1].weight, torch.nn.Linear(9, 2).weight)  # the given weights, untouched
    res = runner.invoke(app, ["evaluate", "m.safetensors", "--json", "e.json"])
    assert res.exit_code == 0, res.output
    import importlib
    import json

    mod = importlib.import_module(user_module)
    test = mod.Squares(10, offset=3)
    x = torch.stack([test[i][0] for i in range(10)])
    y = torch.tensor([test[i][1] for i in range(10)])
    expected = float((model((x - 0.5) / 0.25).argmax(1) == y).float().mean())
    got = json.loads((tmp_path / "e.json").read_text())
    assert got["accuracy"] == pytest.approx(expected) and got["peak_rss_bytes"] > 0


def test_channel_stats_in_chunks_match_the_whole_array(monkeypatch):
    from karuku.data import transforms

    a = np.random.default_rng(3).random((50, 3, 4, 5)).astype(np.float32) * [[[[1.0]], [[4.0]], [[0.5]]]]
    monkeypatch.setattr(transforms, "STATS_CHUNK", 7)  # one example per chunk
    mean, std = transforms.channel_stats(a.astype(np.float32))
    assert mean == pytest.approx(a.mean(axis=(0, 2, 3), dtype=np.float64).tolist(), rel=1e-12)
    assert std == pytest.approx(a.std(axis=(0, 2, 3), dtype=np.float64).tolist(), rel=1e-12)
