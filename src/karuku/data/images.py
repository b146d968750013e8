"""Folders of images: one sub-folder per class, decoded with Pillow, prepared by the declared transforms.

Layouts: `ROOT/train/<class>/*.png` with `ROOT/test/<class>/...` (and optionally `ROOT/val/<class>/...`), or
`ROOT/<class>/*.png`, from which `test_fraction` is held out. Classes are the training sub-folders in sorted
order. Images are resized (Pillow, bilinear) and centre-cropped as declared, scaled to [0, 1] and normalised;
every image must then have the first one's size. A folder whose decoded images would take over 1 GB is read
as needed (`stream`), one batch at a time, so a million small files never sit in memory together.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from karuku.data.config import DataConfig
from karuku.data.kinds import Sources
from karuku.data.registry import register_dataset
from karuku.data.transforms import Preprocess, center_crop, channel_stats
from karuku.errors import KarukuError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
IN_MEMORY_LIMIT = 1_000_000_000  # bytes of decoded float32 images kept in memory without `stream`
STATS_SAMPLE = 1000  # images the per-channel statistics of a streamed folder are taken from


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of `root`, sorted; none is an error naming the folder."""
    if not root.is_dir():
        raise KarukuError(f"{root} is not a folder", "--data-path must name a folder of class sub-folders")
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise KarukuError(f"{root} has no class sub-folders",
                          "put each class's images in its own sub-folder: ROOT/cat/1.png, ROOT/dog/2.png, ...")
    return found


def list_images(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """(classes, image paths relative to `root`, labels); `classes`: those of the training folder."""
    folders = class_folders(root)
    names = [f.name for f in folders]
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise KarukuError(f"{root} has class folder(s) {', '.join(unknown)} that the training folder lacks",
                              "use the same class sub-folders in train/ and test/")
    classes = classes or names
    files, labels = [], []
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.suffix.lower() in EXTENSIONS and p.is_file():
                files.append(str(p.relative_to(root)))
                labels.append(classes.index(folder.name))
    if not files:
        raise KarukuError(f"{root}: no images in its class folders",
                          f"the class folders must hold image files ({', '.join(sorted(EXTENSIONS))})")
    return classes, files, np.asarray(labels, dtype=np.int64)


class ImageFolder(Dataset):
    """Images decoded when indexed: `(x, label)`, x float (C, H, W) prepared by `pre`; None for an unreadable
    file when `skip` (batches drop it)."""

    def __init__(self, root: Path, files: list[str], labels: np.ndarray, classes: list[str], mode: str,
                 pre: Preprocess, skip: bool = False, size: tuple[int, int] | None = None):
        self.root, self.files, self.labels, self.classes = root, files, labels, classes
        self.mode, self.pre, self.skip, self.size = mode, pre, skip, size

    def __len__(self) -> int:
        return len(self.files)

    def decode(self, i: int) -> torch.Tensor | None:
        """Image `i` resized, cropped and scaled to [0, 1], not normalised; None when unreadable and skipped."""
        from PIL import Image, UnidentifiedImageError

        path = self.root / self.files[i]
        try:
            with Image.open(path) as img:
                img = img.convert(self.mode)
                if self.pre.resize is not None:
                    img = img.resize((self.pre.resize[1], self.pre.resize[0]), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if self.skip:
                warnings.warn(f"skipping unreadable image {path}: {reason}", stacklevel=2)
                return None
            raise KarukuError(f"cannot read image {path}: {reason}",
                              "fix or remove the file, or skip unreadable images with --data-unreadable skip") from None
        x = torch.from_numpy(arr.copy()).float().div_(255)
        x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
        if self.pre.crop is not None:
            x = center_crop(x, self.pre.crop)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            raise KarukuError(f"image {path} is {x.shape[-2]}×{x.shape[-1]} but {self.files[0]} is "
                              f"{self.size[0]}×{self.size[1]}", "give one size to all: --data-resize H,W")
        return x

    def __getitem__(self, i: int):
        x = self.decode(i)
        if x is None:
            return None
        return self.pre.normalize(x[None])[0] if self.pre.mean is not None else x, int(self.labels[i])


def _mode(cfg: DataConfig, first: Path) -> str:
    if cfg.color != "auto":
        return "L" if cfg.color == "gray" else "RGB"
    from PIL import Image

    try:
        with Image.open(first) as img:
            return "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
    except OSError:
        return "RGB"  # the first file is unreadable: say so when it is decoded, with its name


def _decode_all(ds: ImageFolder, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image decoded into one preallocated tensor (a list of images then a stack would hold them twice)."""
    out = torch.empty(len(ds), *shape)
    keep = []
    for i in range(len(ds)):
        x = ds.decode(i)
        if x is not None:
            out[len(keep)] = x
            keep.append(i)
    if not keep:
        raise KarukuError(f"{ds.root}: no readable images", "check the files")
    return out[: len(keep)], torch.from_numpy(ds.labels[keep])


@register_dataset("images", "your own folder of images, one sub-folder per class (--data-path)")
def load_images(cfg: DataConfig) -> Sources:
    """A folder of images (see the module's docstring): in memory when small, else read as needed."""
    if not cfg.path:
        raise KarukuError("dataset 'images' needs a folder", "pass --data-path DIR (one sub-folder per class)")
    root = Path(cfg.path)
    split_layout = (root / "train").is_dir()
    train_root = root / "train" if split_layout else root
    classes, files, labels = list_images(train_root)
    parts = {"train": (train_root, files, labels)}
    for split in ("val", "test"):
        if split_layout and (root / split).is_dir():
            _, f, lab = list_images(root / split, classes)
            parts[split] = (root / split, f, lab)
    pre = Preprocess.declared(cfg)
    mode = _mode(cfg, train_root / files[0])
    skip = cfg.unreadable == "skip"
    probe = ImageFolder(train_root, files, labels, classes, mode, pre, skip)
    first = next((x for x in (probe.decode(i) for i in range(min(len(files), 16))) if x is not None), None)
    if first is None:
        raise KarukuError(f"{train_root}: the first images cannot be read", "check the files")
    size = tuple(first.shape[-2:])
    sets = {k: ImageFolder(r, f, lab, classes, mode, pre, skip, size) for k, (r, f, lab) in parts.items()}
    total = sum(len(d) for d in sets.values())
    stream = cfg.stream if cfg.stream is not None else total * first.numel() * 4 > IN_MEMORY_LIMIT
    decoded = {k: _decode_all(d, tuple(first.shape)) for k, d in sets.items()} if not stream else {}
    if pre.mean is None and cfg.normalize:
        if stream:
            step = max(1, math.ceil(len(files) / STATS_SAMPLE))
            sample = torch.stack([x for x in (sets["train"].decode(i) for i in range(0, len(files), step))
                                  if x is not None])
        else:
            sample = decoded["train"][0]
        pre = pre.with_stats(*channel_stats(sample))
    if not stream:
        out = {k: TensorDataset(pre.normalize(x, inplace=True), y) for k, (x, y) in decoded.items()}
    else:
        out = sets
        for d in sets.values():
            d.pre = pre
    return Sources(out["train"], out.get("test"), out.get("val"), len(classes), tuple(classes), pre.as_dict())
