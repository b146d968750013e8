import pytest
import torch

from karuku.data import DataConfig, load_splits, make_loader, random_shift
from karuku.data.loaders import EpochBatchSampler
from karuku.errors import KarukuError


def test_idx_dataset_splits(idx_dir):
    s = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=100))
    assert (len(s.train), len(s.val), len(s.test)) == (500, 100, 200)
    assert s.input_shape == (1, 28, 28) and s.num_classes == 10
    x = s.train.tensors[0]
    assert abs(float(torch.cat([x, s.val.tensors[0]]).mean())) < 1e-4  # normalised by train statistics


def test_validation_split_is_fixed_by_its_seed(idx_dir):
    a = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=100, split_seed=3))
    b = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=100, split_seed=3))
    c = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=100, split_seed=4))
    assert torch.equal(a.val.tensors[0], b.val.tensors[0])
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])
    # validation and training examples never overlap and together are the whole train file
    assert len(a.train) + len(a.val) == 600


def test_digits_and_mnist1d():
    d = load_splits(DataConfig(name="digits", val_size=100))
    assert d.input_shape == (1, 8, 8) and len(d.test) == 360 and len(d.train) == 1337
    m = load_splits(DataConfig(name="mnist1d", val_size=500))
    assert m.input_shape == (1, 40) and (len(m.train), len(m.test)) == (3500, 1000)
    assert set(m.train.tensors[1].unique().tolist()) == set(range(10))


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(KarukuError,
                       match="unknown dataset 'mnsit'; did you mean 'mnist'.*known: .*digits, fashion-mnist, idx"):
        load_splits(DataConfig(name="mnsit"))


def test_val_size_too_large(idx_dir):
    with pytest.raises(KarukuError, match="leaves no training data"):
        load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=600))


def test_epoch_order_depends_only_on_seed_and_epoch():
    s = EpochBatchSampler(100, 10, seed=1)
    s.set_epoch(3)
    first = [b.tolist() for b in s]
    s.set_epoch(0)
    list(s)
    s.set_epoch(3)
    assert [b.tolist() for b in s] == first
    assert sorted(sum(first, [])) == list(range(100))


def test_ranks_split_each_global_batch():
    full = EpochBatchSampler(50, 10, seed=2)
    ranks = [EpochBatchSampler(50, 10, seed=2, rank=r, world=2) for r in range(2)]
    for batches in zip(full, *ranks):
        assert torch.equal(batches[0], torch.cat(batches[1:]))


def test_loader_yields_batches(idx_dir):
    s = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=0))
    loader = make_loader(s.train, 64, shuffle=True)
    loader.set_epoch(0)
    xs = [x for x, _ in loader]
    assert [len(x) for x in xs] == [64] * 9 + [24]


def test_random_shift_moves_content_by_at_most_the_limit():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(200, 1, 12, 12)
    x[:, 0, 5, 6] = 1.0
    out = random_shift(x, 2, g)
    pos = out[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 12, pos % 12
    assert out.sum() == 200  # nothing lost: the pixel stays inside
    assert rows.min() == 3 and rows.max() == 7 and cols.min() == 4 and cols.max() == 8
    assert torch.equal(random_shift(x, 0, g), x)


def test_random_shift_on_sequences():
    x = torch.zeros(50, 1, 20)
    x[:, 0, 10] = 1
    out = random_shift(x, 3, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    pos = out[:, 0].argmax(1)
    assert pos.min() >= 7 and pos.max() <= 13 and len(pos.unique()) > 3


def test_for_checkpoint_takes_the_stored_data_and_what_the_user_overrides(idx_dir):
    from karuku.data import for_checkpoint
    from karuku.io.checkpoint import Checkpoint
    from karuku.models import ModelSpec

    spec = ModelSpec(name="lenet300", input_shape=(1, 28, 28), num_classes=10)
    ckpt = Checkpoint(spec, {}, {"data": {"name": "idx", "path": str(idx_dir), "val_size": 100}})
    splits = for_checkpoint(ckpt)
    assert splits.config.path == str(idx_dir) and len(splits.val) == 100
    assert len(for_checkpoint(ckpt, {"test_limit": 7, "path": None}).test) == 7  # None: not given
    with pytest.raises(KarukuError, match=r"dataset 'digits' has inputs \(1, 8, 8\) but .* expects \(1, 28, 28\)"):
        # another dataset: the stored path and sizes are not carried over
        for_checkpoint(ckpt, {"name": "digits", "val_size": 100})
    assert for_checkpoint(ckpt, DataConfig(name="idx", path=str(idx_dir), val_size=0)).val is None
    bare = Checkpoint(spec, {}, {})
    with pytest.raises(KarukuError, match="does not say which data it was trained on"):
        for_checkpoint(bare)
    assert for_checkpoint(bare, required=False) is None
