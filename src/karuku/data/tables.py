"""Arrays (.npz, .npy) and tables (CSV with a named label column) as datasets.

- `arrays`: a `.npz` file holding `x_train`, `y_train`, `x_test`, `y_test` (or `x`, `y`: `test_fraction` is
  held out), or a folder of `.npy` files with those names. Labels are optional (unlabelled data: the fidelity
  task). `.npy` files are memory-mapped, and read as needed when they are large (`stream`). Never unpickled.
- `csv`: a `.csv` file with a header row (or a folder with `train.csv` and `test.csv`); `label` names the
  label column, every other column is a numeric feature. Labels that are words become classes (sorted).
Inputs of shape (N, H, W) get a channel; uint8 arrays are pixels, scaled to [0, 1]. Features are normalised
per column (dimension 1) by the training set's statistics unless mean / std are declared.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from karuku.data.config import DataConfig
from karuku.data.kinds import RawData, Sources
from karuku.data.registry import register_dataset
from karuku.data.transforms import Preprocess, channel_stats
from karuku.errors import KarukuError, closest

IN_MEMORY_LIMIT = 1_000_000_000
STATS_SAMPLE = 10_000


def _shaped(a: np.ndarray) -> np.ndarray:
    return a[:, None] if a.ndim in (1, 3) else a


def _scale(a: np.ndarray) -> float:
    return 255.0 if a.dtype == np.uint8 else 1.0


def _checked(a: Any, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf" or a.ndim == 0:
        raise KarukuError(f"{name} is not a numeric array with one example per row",
                          "store numbers, shaped (N, ...)")
    return a


def _labels(y: np.ndarray | None, x: np.ndarray, name: str) -> torch.Tensor | None:
    if y is None:
        return None
    y = _checked(y, name)
    if y.ndim != 1 or len(y) != len(x):
        raise KarukuError(f"{name} has shape {y.shape} for {len(x)} examples", "give one label per example")
    return torch.from_numpy(np.array(y))  # a copy: a memory-mapped file is read-only


def _npz(path: Path, cfg: DataConfig) -> dict[str, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise KarukuError(f"cannot read {path}: {str(exc).splitlines()[0]}",
                          "give a .npz of numeric arrays (np.savez)") from None
    return _pick(arrays, cfg, path)


def _npy_folder(folder: Path, cfg: DataConfig) -> dict[str, np.ndarray | None]:
    arrays = {}
    for p in folder.glob("*.npy"):
        try:
            arrays[p.stem] = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise KarukuError(f"cannot read {p}: {str(exc).splitlines()[0]}", "give numeric .npy arrays") from None
    return _pick(arrays, cfg, folder)


def _pick(arrays: dict[str, np.ndarray], cfg: DataConfig, source: Path) -> dict[str, np.ndarray | None]:
    train = "x_train" if "x_train" in arrays else "x"
    if train not in arrays:
        raise KarukuError(f"{source} holds {', '.join(sorted(arrays)) or 'no arrays'}, not x_train (or x)",
                          "name the inputs x_train / x_test (or x) and the labels y_train / y_test (or y)")
    label = cfg.label or ("y_train" if train == "x_train" else "y")
    if cfg.label and cfg.label not in arrays:
        raise KarukuError(f"{source} has no array '{cfg.label}'{closest(cfg.label, list(arrays))}",
                          f"arrays: {', '.join(sorted(arrays))}")
    return {"x_train": arrays[train], "y_train": arrays.get(label),
            "x_test": arrays.get("x_test") if train == "x_train" else None,
            "y_test": arrays.get("y_test") if train == "x_train" else None}


class ArrayDataset(Dataset):
    """Rows of a (memory-mapped) array, scaled and normalised when indexed."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None, pre: Preprocess):
        self.x, self.y, self.pre, self.scale = x, y, pre, _scale(x)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.asarray(self.x[i], dtype=np.float32) / self.scale)
        x = x[None] if x.dim() in (0, 2) else x
        x = self.pre.normalize(x[None])[0] if self.pre.mean is not None else x
        return (x, torch.as_tensor(self.y[i])) if self.y is not None else x


@register_dataset("arrays", "your own arrays: a .npz file or a folder of .npy files (--data-path)")
def load_arrays(cfg: DataConfig) -> RawData | Sources:
    """Arrays (see the module's docstring); large memory-mapped .npy files are read as needed."""
    if not cfg.path:
        raise KarukuError("dataset 'arrays' needs a file or folder", "pass --data-path DATA.npz (or a folder of .npy)")
    path = Path(cfg.path)
    if path.is_dir():
        a = _npy_folder(path, cfg)
    elif path.suffix == ".npz" and path.is_file():
        a = _npz(path, cfg)
    else:
        raise KarukuError(f"{path} is not a .npz file or a folder of .npy files", "check --data-path")
    x_train = _checked(a["x_train"], "x_train")
    x_test = _checked(a["x_test"], "x_test") if a["x_test"] is not None else None
    y_train, y_test = _labels(a["y_train"], x_train, "the train labels"), None
    if x_test is not None:
        y_test = _labels(a["y_test"], x_test, "y_test")
        if (y_test is None) != (y_train is None):
            raise KarukuError(f"{path}: labels for one split only", "give y_train and y_test, or neither")
    nbytes = (x_train.size + (x_test.size if x_test is not None else 0)) * 4
    stream = cfg.stream if cfg.stream is not None else nbytes > IN_MEMORY_LIMIT
    if not stream:
        def load(x):
            return torch.from_numpy(_shaped(np.asarray(x)) / _scale(x)) if x is not None else None

        return RawData(load(x_train), y_train, load(x_test), y_test, normalized=False)
    pre = Preprocess.declared(cfg)
    if pre.resize or pre.crop:
        raise KarukuError("resize / crop apply to arrays held in memory", "drop --data-stream, or resize the arrays")
    if pre.mean is None and cfg.normalize:
        step = max(1, math.ceil(len(x_train) / STATS_SAMPLE))
        pre = pre.with_stats(*channel_stats(_shaped(np.asarray(x_train[::step], dtype=np.float64)) / _scale(x_train)))
    ys = (y_train.numpy() if y_train is not None else None, y_test.numpy() if y_test is not None else None)
    test = ArrayDataset(x_test, ys[1], pre) if x_test is not None else None
    return Sources(ArrayDataset(x_train, ys[0], pre), test, preprocess=pre.as_dict())


def read_csv(path: Path, label: str, targets: str) -> tuple[np.ndarray, np.ndarray, list[str] | None, list[str]]:
    """(features, labels, class names or None, feature columns) of a CSV file with a header row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise KarukuError(f"cannot read {path}: {exc}", "give a UTF-8 CSV file with a header row") from None
    if len(rows) < 2:
        raise KarukuError(f"{path} has no data rows", "give a header row and one row per example")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise KarukuError(f"{path} has no column '{label}'{closest(label, header)}",
                          f"--data-label names the label column; columns: {', '.join(header)}")
    li = header.index(label)
    columns = [h for i, h in enumerate(header) if i != li]
    feats = np.empty((len(rows) - 1, len(columns)), dtype=np.float32)
    raw_labels = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise KarukuError(f"{path} line {r}: {len(row)} values for {len(header)} columns", "fix the row")
        raw_labels.append(row[li].strip())
        for j, (i, cell) in enumerate((i, c) for i, c in enumerate(row) if i != li):
            try:
                feats[r - 2, j] = float(cell)
            except ValueError:
                raise KarukuError(f"{path} line {r}, column '{header[i]}': '{cell}' is not a number",
                                  "features must be numbers (drop or encode text columns)") from None
    try:
        values = np.array([float(v) for v in raw_labels], dtype=np.float64)
    except ValueError:
        if targets == "values":
            bad = next(v for v in raw_labels if not _number(v))
            raise KarukuError(f"{path}, column '{label}': '{bad}' is not a number",
                              "regression needs numeric labels") from None
        names = sorted(set(raw_labels))
        return feats, np.array([names.index(v) for v in raw_labels], dtype=np.int64), names, columns
    if targets != "values" and np.all(values == np.round(values)):
        return feats, values.astype(np.int64), None, columns
    return feats, values.astype(np.float32), None, columns


def _number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


@register_dataset("csv", "your own table: a CSV file (--data-path) with a label column (--data-label)")
def load_csv(cfg: DataConfig) -> RawData:
    """A CSV table (see the module's docstring), held in memory."""
    if not cfg.path:
        raise KarukuError("dataset 'csv' needs a file", "pass --data-path TABLE.csv (or a folder of train/test.csv)")
    if not cfg.label:
        raise KarukuError("dataset 'csv' needs the label column's name", "pass --data-label COLUMN")
    path = Path(cfg.path)
    files = [path / "train.csv", path / "test.csv"] if path.is_dir() else [path]
    for f in files:
        if not f.is_file():
            raise KarukuError(f"{f} not found", "give a .csv file, or a folder holding train.csv and test.csv")
    xtr, ytr, names, cols = read_csv(files[0], cfg.label, cfg.targets)
    xte = yte = None
    if len(files) == 2:
        xte, yte, test_names, test_cols = read_csv(files[1], cfg.label, cfg.targets)
        if test_cols != cols:
            raise KarukuError(f"{files[1]} has columns {test_cols}, {files[0]} has {cols}", "use the same columns")
        if names is not None or test_names is not None:  # class words: one index for both files
            words = sorted(set(names or []) | set(test_names or []))
            if names:
                ytr = np.array([words.index(names[i]) for i in ytr], dtype=np.int64)
            if test_names:
                yte = np.array([words.index(test_names[i]) for i in yte], dtype=np.int64)
            names = words
    t = torch.from_numpy
    return RawData(t(xtr), t(ytr), t(xte) if xte is not None else None, t(yte) if yte is not None else None,
                   normalized=False, classes=tuple(names) if names else None)
