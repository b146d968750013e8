"""Real photographs available offline (no model hub, no web): Debian packages and Python wheels.

    .venv/bin/python benchmarks/offline_photos.py --fetch /tmp/photos   # apt-get download + dpkg -x, pip download

The set is every colour photograph (a camera image of a real scene; not drawings, paintings, renders, logos,
synthetic test patterns, maps, or text pages blurred on purpose) at least 224 px on its short side found in:
scikit-learn's `load_sample_images` (china, flower), matplotlib's sample data (grace_hopper), scikit-image's
bundled data directory (wheel), Debian `opencv-doc` (examples/data and sample folders) and Debian
`mate-backgrounds` (the photos among its wallpapers); one image per scene (of stereo pairs, two viewpoints
or two sizes of one photo, the first). The list below was chosen by looking at the images, before any model
ran on them; nothing is selected by a model's output.

Labelled ImageNet photos: the PyPI wheel foolbox 3.3.4 (MIT licence; the photos are 20 ImageNet validation
images, under ImageNet's terms of access: non-commercial research and education) holds
`foolbox/data/imagenet_NN_LABEL.jpg`, 512 × 512 (one 1024 × 683), the ImageNet class index in the name.
`imagenet_samples` reads them straight from the wheel as a zip, checked against its sha256; foolbox is never
installed or imported. Searched and found without ImageNet photos (2026-12-02): the wheels or sdists of
adversarial-robustness-toolbox, advertorch, captum, cleverhans, deeprobust, foolbox-native, grad-cam,
imagenet-w, innvestigate, keras-vis, lime, lucid, mmcls, mmpretrain, omnixai, paddleclas, pretrainedmodels,
quantus, tf-explain, tf-keras-vis, torchattacks, torchcam; Debian `tiny-dnn-doc`. Debian `darknet` has 6
unlabelled detection photos (dog, eagle, giraffe, horses, kite, person; and a painting), not used.

`standard(img)` is the ImageNet evaluation protocol: shorter side resized to 256 (PIL bilinear, antialiased),
centre crop 224 × 224, uint8 pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np

DEB = ["opencv-doc", "mate-backgrounds"]
FOOLBOX = "foolbox-3.3.4-py3-none-any.whl"  # pip download --no-deps foolbox==3.3.4
FOOLBOX_SHA256 = "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"
CV = "usr/share/doc/opencv-doc/examples/"
MATE = "usr/share/backgrounds/mate/nature/"
PHOTOS = (
    [MATE + f + ".jpg" for f in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
                                 "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")]
    + [CV + "alphamat/input_images/plant.jpg"]
    + [CV + "data/" + f for f in ("aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg",
                                  "butterfly.jpg", "chicky_512.png", "ela_original.jpg", "fruits.jpg", "graf1.png",
                                  "home.jpg", "left.jpg", "leuvenA.jpg", "messi5.jpg", "orange.jpg",
                                  "rubberwhale1.png", "squirrel_cls.jpg", "stuff.jpg", "sudoku.png")]
    + [CV + "dnn_superres/butterfly.png", CV + "hfs/data/000.jpg", CV + "hfs/data/001.jpg", CV + "hfs/data/002.jpg",
       CV + "reg/home.png"]
    + [CV + f"text/scenetext0{i}.jpg" for i in range(1, 7)]
    + ["skimage/data/" + f for f in ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
                                     "motorcycle_left.png", "retina.jpg", "rocket.jpg")]
)


def fetch(folder: Path) -> None:
    """Unpack the Debian packages and the scikit-image wheel into `folder` (needs apt-get and pip)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in DEB:
        subprocess.run(["apt-get", "download", p], cwd=folder, check=True)
    for deb in folder.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(folder)], check=True)
    subprocess.run(["pip", "download", "--no-deps", "scikit-image==0.26.0", "-d", str(folder)], check=True)
    subprocess.run(["pip", "download", "--no-deps", "foolbox==3.3.4", "-d", str(folder)], check=True)
    for whl in folder.glob("scikit_image-*.whl"):
        with zipfile.ZipFile(whl) as z:
            z.extractall(folder, [n for n in z.namelist() if n.startswith("skimage/data/")])


def load(folder: Path):
    """name → PIL RGB image, the three of sklearn/matplotlib first, then `PHOTOS` from `folder`."""
    import matplotlib.cbook as cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = {k: Image.fromarray(v) for k, v in zip(["china", "flower"], load_sample_images().images)}
    out["grace_hopper"] = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    missing = [p for p in PHOTOS if not (folder / p).exists()]
    if missing:
        raise SystemExit(f"{len(missing)} photos missing under {folder} (e.g. {missing[0]}): run "
                         f"benchmarks/offline_photos.py --fetch {folder}")
    for p in PHOTOS:
        parent, name = p.split("/")[-2:]
        out[f"{parent}/{name.rsplit('.', 1)[0]}"] = Image.open(folder / p).convert("RGB")
    return out


def imagenet_samples(folder: Path) -> dict[str, tuple[object, int]]:
    """name → (PIL RGB image, ImageNet class index) of the 20 ImageNet validation photos in the foolbox wheel
    under `folder`, read from the wheel itself (a zip) after checking its sha256."""
    from PIL import Image

    whl = folder / FOOLBOX
    if not whl.exists():
        raise SystemExit(f"{whl} missing: run benchmarks/offline_photos.py --fetch {folder}")
    raw = whl.read_bytes()
    if hashlib.sha256(raw).hexdigest() != FOOLBOX_SHA256:
        raise SystemExit(f"{whl}: sha256 is not {FOOLBOX_SHA256} (another file under that name); download it again")
    out = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for n in sorted(z.namelist()):
            m = re.fullmatch(r"foolbox/data/imagenet_(\d\d)_(\d+)\.jpg", n)
            if m:
                out[f"imagenet_{m[1]}"] = (Image.open(io.BytesIO(z.read(n))).convert("RGB"), int(m[2]))
    if len(out) != 20:
        raise SystemExit(f"{whl}: {len(out)} ImageNet photos, expected 20")
    return out


def calibration_pool(folder: Path) -> list[Path]:
    """Calibration images, none of them an evaluation photo: every other colour image ≥ 224 px on its short side in
    the fetched Debian packages (mostly opencv-doc's tutorial figures: photos, photos processed, a few charts),
    minus the grey and the flat ones (mean saturation < 8, or < 300 distinct colours at 64 × 64 and 32 levels a
    channel). A rule on pixels, not on any model's output; 142 images from opencv-doc 4.6.0 + mate-backgrounds
    1.26.0, sorted by path."""
    from PIL import Image

    taken = {folder / p for p in PHOTOS}
    out = []
    for f in sorted(p for p in (folder / "usr").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        if f in taken:
            continue
        with Image.open(f) as im:
            if min(im.size) < 224 or im.mode not in ("RGB", "RGBA", "P"):
                continue
            a = np.asarray(im.convert("RGB").resize((64, 64))).astype(float)
        if np.abs(a - a.mean(2, keepdims=True)).mean() >= 8 and len(np.unique(a.reshape(-1, 3) // 8, axis=0)) >= 300:
            out.append(f)
    return out


def standard(img, resize: int = 256, crop: int = 224) -> np.ndarray:
    """ImageNet evaluation protocol: shorter side → `resize` (bilinear), centre `crop`; uint8 (crop, crop, 3)."""
    from PIL import Image

    w, h = img.size
    s = resize / min(w, h)
    img = img.resize((max(crop, round(w * s)), max(crop, round(h * s))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    return np.asarray(img.crop((left, top, left + crop, top + crop)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--fetch", type=Path, required=True, help="folder to unpack the photos' packages into")
    folder = ap.parse_args().fetch
    fetch(folder)
    print(f"{len(load(folder))} photos and {len(imagenet_samples(folder))} labelled ImageNet photos under {folder}")
