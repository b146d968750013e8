"""The report's content, once, as blocks that both the HTML and the Markdown writers render.

It reads like the chain: background (the baseline) → compression (every attempt) → effects
(baseline vs result, with ratios) → edge (budget limits and device profiles). Every size is in one
convention (`karuku.measure.units`), every name the page shows is in the page's language.
"""

from __future__ import annotations

from typing import Any

from karuku.measure.units import size
from karuku.report import plots
from karuku.report.i18n import name

Block = tuple  # ("h1"|"h2"|"p", text) | ("table", headers, rows) | ("svg", svg, caption, filename)
WEIGHTED = ("Linear", "Conv2d", "Conv1d")


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _settings(s: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (s or {}).items() if v not in (None, {}, [])) or "—"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "—"


def _ms(v: float | None) -> str:
    """A latency, or a dash when the model was not timed (torch.onnx could not export it: the step says why)."""
    return f"{v:.3f} ms" if v is not None else "—"


def _per_s(v: float | None) -> str:
    return f"{v:,.0f}/s" if v is not None else "—"


def accuracy(m: dict[str, Any], t: dict[str, str]) -> str:
    """'98.05 % (195 errors of 10,000)', in the page's language."""
    errors, total = f"{m['errors']:,}", f"{m['total']:,}"
    return f"{_pct(m['accuracy'])} ({t['errors'].format(errors=errors, total=total)})"


CLASSIFICATION = {"task": "classification", "metric": "top1", "description": "top-1 accuracy",
                  "higher_is_better": True, "percent": True}


def quality_of(summary: dict[str, Any]) -> dict[str, Any]:
    """What the run judged quality by (summaries before tasks: top-1 accuracy)."""
    return summary.get("quality") or CLASSIFICATION


def is_accuracy(q: dict[str, Any]) -> bool:
    """The run judged top-1 accuracy (the page's own words for it then)."""
    return q["task"] == "classification" and q["metric"] == "top1"


def quality_label(q: dict[str, Any], t: dict[str, str]) -> str:
    """The quality column's name: the page's 'test accuracy', else 'test <metric>'."""
    return t["accuracy"] if is_accuracy(q) else f"test {q['metric']}"


def quality_value(m: dict[str, Any], q: dict[str, Any]) -> float | None:
    """The judged metric's value in a measurement (None when it was not measured)."""
    return m.get("metrics", {}).get(q["metric"], m.get("accuracy") if is_accuracy(q) else None)


def show_quality(m: dict[str, Any], q: dict[str, Any], t: dict[str, str], errors: bool = False) -> str:
    """A measurement's quality: '98.05 %' (with its errors when asked), or the metric's value."""
    if is_accuracy(q):
        return accuracy(m, t) if errors and m.get("errors") is not None else _pct(m["accuracy"])
    v = quality_value(m, q)
    return "—" if v is None else (_pct(v) if q["percent"] else f"{v:.6g}")


def drop_label(q: dict[str, Any], t: dict[str, str]) -> str:
    """The change column's name: points for a percentage, the metric's units otherwise."""
    return t["drop"] if q["percent"] else t["drop"].replace("pt", q["metric"])


def attempt_label(a: dict[str, Any], t: dict[str, str]) -> str:
    """'stage 2 prune (back-off 1)' in the page's language (the summary's English label for an unknown shape)."""
    if a.get("index") is None:
        return name(t["lang"], "stage", a["kind"], a.get("label") or a["kind"])
    kind = name(t["lang"], "stage", a["kind"])
    label = t["stage_label"].format(n=a["index"] + 1, kind=kind)
    return label + (t["backoff_label"].format(round=a["round"]) if a.get("round") else "")


def fit_reasons(fit: dict[str, Any], t: dict[str, str]) -> str:
    """Why a model fits a device or not, from the numbers (older summaries: their stored English reasons)."""
    if "flash_bytes" not in fit:
        return "; ".join(fit.get("reasons", []))

    def cmp(need: int, have: int) -> str:
        return "≤" if need <= have else ">"

    ram = t["reason_ram_weights" if fit["weights_in_ram"] else "reason_ram"]
    return "; ".join([
        t["reason_flash"].format(need=size(fit["weight_bytes"]), cmp=cmp(fit["weight_bytes"], fit["flash_bytes"]),
                                 have=size(fit["flash_bytes"])),
        ram.format(need=size(fit["ram_need_bytes"]), cmp=cmp(fit["ram_need_bytes"], fit["ram_bytes"]),
                   have=size(fit["ram_bytes"]))])


def energy_text(e: dict[str, Any], t: dict[str, str]) -> str:
    """The energy model's assumptions in the page's language (older summaries: their stored English text)."""
    if not e.get("weight_bytes"):
        return e["assumptions"]
    fits = e["weights_in"] == "SRAM"
    return t["energy_text"].format(
        arith=t["int" if e["integer"] else "float"], mac_pj=e["mac_pj"], weights=size(e["weight_bytes"]),
        fit=t["fit" if fits else "exceed"], on_chip=size(e["on_chip_bytes"]),
        memory="SRAM 5" if fits else "DRAM 640", acts=size(e["activation_bytes"]))


def _check_value(c: dict[str, Any], t: dict[str, str]) -> str:
    return fit_reasons(c["fit"], t) if "fit" in c else f"{c['value']} {c['unit']}".strip()


def build(summary: dict[str, Any], t: dict[str, str]) -> list[Block]:
    """The report's blocks from a run's summary, in the language of `t`."""
    recipe = summary["recipe"]
    blocks: list[Block] = [("h1", f"{t['title']}: {recipe['name']}")]
    failed = [c for c in summary["checks"] if not c["ok"]]
    blocks.append(("p", t["summary_ok"] if not failed else t["summary_fail"] + "; ".join(
        f"{c['limit']} ({_check_value(c, t)}" + ("" if "fit" in c else
                                                 f" {'<' if c['limit'].startswith('min') else '>'} {c['allowed']}")
        + ")" for c in failed)))
    return blocks + background(summary, t) + compression(summary, t) + effects(summary, t) + edge(summary, t)


def background(summary: dict[str, Any], t: dict[str, str]) -> list[Block]:
    """1. The baseline: what was compressed and how it measured."""
    base, recipe, q = summary["baseline"]["measure"], summary["recipe"], quality_of(summary)
    model_name = recipe["model"].get("name") or recipe["model"].get("checkpoint")
    return [("h2", t["background"]), ("table", [t["metric"], t["baseline"]], [
        [t["model"], str(model_name)], [t["data"], recipe["data"]["name"]],
        [quality_label(q, t), show_quality(base, q, t, errors=True)],
        *([[t["inputs"], base["inputs"]]] if base.get("inputs") else []),  # measured on these, not one float input
        [t["params"], f"{base['params']:,}"], [t["size"], f"{size(base['deploy_bytes'])} ({base['deploy_kind']})"],
        [t["macs"], f"{base['macs']:,}"], [t["latency"], _ms(base["latency_ms"])],
        [t["energy"], f"{base['energy_uj']:.3f} µJ"]])]


def compression(summary: dict[str, Any], t: dict[str, str]) -> list[Block]:
    """2. Every attempt, numbered as in the plot (0 is the baseline)."""
    rows, q = [], quality_of(summary)
    for i, a in enumerate(summary["attempts"][1:], start=1):
        m = a["measure"]
        shown = _settings(a.get("settings_changed", a.get("settings")))
        drop = a.get("drop", a.get("accuracy_drop", 0.0))
        rows.append([str(i), attempt_label(a, t), str(a["round"]), shown, t["yes"] if a["recovered"] else t["no"],
                     show_quality(m, q, t), f"{drop:+.2f}" if q["percent"] else f"{drop:+.4g}", size(m["deploy_bytes"]),
                     f"{m['nonzeros']:,}", "★" if a["key"] == summary["final"]["key"] else ""])
    return [("h2", t["compression"]),
            ("table", [t["number"], t["stage"], t["round"], t["settings"], t["recovered"], quality_label(q, t),
                       drop_label(q, t), t["size"], t["nonzeros"], t["chosen"]], rows),
            ("svg", plots.accuracy_vs_size(summary["attempts"], summary["final"]["key"], t, q), t["plot_pareto"],
             "pareto.svg")]


def effects(summary: dict[str, Any], t: dict[str, str]) -> list[Block]:
    """3. Baseline vs result with ratios, and the result's layers against the baseline's."""
    base, final, q = summary["baseline"]["measure"], summary["final"]["measure"], quality_of(summary)
    sizes = sorted(set(base["sizes"]) | set(final["sizes"]))
    eff = [
        [quality_label(q, t), show_quality(base, q, t), show_quality(final, q, t), _change(base, final, q)],
        [t["params"], f"{base['params']:,}", f"{final['params']:,}", _ratio(base["params"], final["params"])],
        [t["nonzeros"], f"{base['nonzeros']:,}", f"{final['nonzeros']:,}", _ratio(base["nonzeros"], final["nonzeros"])],
        *[[f"{t['size']} ({k})", size(base["sizes"][k]) if k in base["sizes"] else "—",
           size(final["sizes"][k]) if k in final["sizes"] else "—",
           _ratio(base["sizes"]["fp32"], final["sizes"][k]) if k in final["sizes"] else "—"] for k in sizes],
        [t["macs"], f"{base['macs']:,}", f"{final['macs']:,}", _ratio(base["macs"], final["macs"])],
        [t["eff_macs"], f"{base['effective_macs']:,}", f"{final['effective_macs']:,}",
         _ratio(base["effective_macs"], final["effective_macs"])],
        [t["latency"], _ms(base["latency_ms"]), _ms(final["latency_ms"]),
         _ratio(base["latency_ms"], final["latency_ms"])],
        [t["throughput"], _per_s(base["throughput_b64"]), _per_s(final["throughput_b64"]),
         _ratio(final["throughput_b64"], base["throughput_b64"])],
        [t["peak"], size(base["peak_activation_bytes"]), size(final["peak_activation_bytes"]),
         _ratio(base["peak_activation_bytes"], final["peak_activation_bytes"])],
        [t["energy"], f"{base['energy_uj']:.3f} µJ", f"{final['energy_uj']:.3f} µJ",
         _ratio(base["energy_uj"], final["energy_uj"])],
    ]
    blocks: list[Block] = [("h2", t["effects"]), ("table", [t["metric"], t["baseline"], t["result"], t["change"]], eff)]
    if final["nonzeros"] < final["params"] and final["macs"] == base["macs"]:
        blocks.append(("p", t["no_speed"]))
    if summary.get("side_by_side"):
        blocks.append(("p", t["timing_note"]))
    for label, m in ((t["baseline"], base), (t["result"], final)):  # a file torch.onnx could not write: why "—"
        if (m.get("extra") or {}).get("onnxruntime"):
            blocks.append(("p", f"{label}: {m['extra']['onnxruntime']}"))
    blocks.append(("p", f"{t['energy_note']}: {energy_text(final['energy'], t)}"))
    return blocks + layers(base, final, t)


def _change(base: dict[str, Any], final: dict[str, Any], q: dict[str, Any]) -> str:
    b, f = quality_value(base, q), quality_value(final, q)
    if b is None or f is None:
        return "—"
    return f"{100 * (f - b):+.2f} pt" if q["percent"] else f"{f - b:+.4g}"


def layer_rows(base: dict[str, Any], final: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The result's weighted layers, each with `base_params` (its parameters in the baseline) and `kept`
    (nonzeros / base_params): structured pruning shrinks a layer, so comparing it with itself would say 100 %.
    Second: whether every layer was found in the baseline (False for a new architecture, e.g. distilled)."""
    def weighted(rows):
        rows = [x for x in rows if x["params"]]
        return [x for x in rows if x["kind"] in WEIGHTED] or rows

    before = {x["name"]: x for x in weighted(base.get("layers", []))}
    out, matched = [], True
    for x in weighted(final["layers"]):
        b = before.get(x["name"])
        same = b is not None and b["kind"] == x["kind"] and b["params"] >= x["params"]
        matched &= same
        base_params = b["params"] if same else x["params"]
        out.append(dict(x, base_params=base_params, kept=x["nonzeros"] / max(1, base_params)))
    return out, matched


def layers(base: dict[str, Any], final: dict[str, Any], t: dict[str, str]) -> list[Block]:
    """Per layer: parameters in the baseline and now, nonzeros, and the share of the baseline's weights kept."""
    rows, matched = layer_rows(base, final)
    blocks: list[Block] = [("h2", t["layers"])]
    if not matched:
        blocks.append(("p", t["new_arch"]))
    blocks.append(("table", [t["layer"], t["kind"], t["params_base"], t["params_now"], t["nonzeros"], t["kept"]],
                   [[x["name"], name(t["lang"], "layer", x["kind"]), f"{x['base_params']:,}", f"{x['params']:,}",
                     f"{x['nonzeros']:,}", f"{100 * x['kept']:.1f} %"] for x in rows]))
    blocks.append(("svg", plots.layers_kept([(x["name"], 100 * x["kept"]) for x in rows], t), t["plot_layers"],
                   "layers.svg"))
    return blocks


def edge(summary: dict[str, Any], t: dict[str, str]) -> list[Block]:
    """4. The budget's limits with verdicts, the CPU, int8 ONNX notes, and which device profiles fit."""
    lang = t["lang"]
    blocks: list[Block] = [("h2", t["edge"])]
    blocks.append(("table", [t["limit"], t["allowed"], t["measured"], t["verdict"]],
                   [[c["limit"], f"{c['allowed']} {c['unit']}".strip(), _check_value(c, t),
                     t["pass"] if c["ok"] else t["fail"]] for c in summary["checks"]]))
    if summary.get("cpu"):
        blocks.append(("p", f"{t['cpu']}: {summary['cpu']['summary']}"))
    for a in summary["attempts"]:
        onnx = (a.get("stage_meta") or {}).get("int8_onnx")
        if onnx:
            blocks.append(("p", f"{t['int8_onnx']}: {onnx['result']}"))
            if onnx.get("fallback"):
                blocks.append(("p", f"{t['fallback']}: {onnx['fallback']}"))
        for kind in ("tflite", "c"):  # what the export stage wrote and how it was checked
            if (a.get("stage_meta") or {}).get(kind):
                blocks.append(("p", f"{t[kind]}: {a['stage_meta'][kind]}"))
    rows = []
    for p in summary["profiles"]:
        what = f"{p['profile']}: {name(lang, 'profile', p['profile'], p['description'])}"
        if "flash_bytes" in p:
            what += f" ({t['memory'].format(flash=size(p['flash_bytes']), ram=size(p['ram_bytes']))})"
        rows.append([what, t["fits"] if p["fits"] else t["not_fits"], fit_reasons(p, t)])
    blocks.append(("table", [t["profile"], t["verdict"], t["why"]], rows))
    return blocks
