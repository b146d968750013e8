"""The report's content, once, as blocks that both the HTML and the Markdown writers render.

It reads like the chain: background (the baseline) → compression (every attempt) → effects
(baseline vs result, with ratios) → edge (budget limits and device profiles).
"""

from __future__ import annotations

from typing import Any

from karuku.report import plots

Block = tuple  # ("h1"|"h2"|"p", text) | ("table", headers, rows) | ("img", png, caption, filename)


def _kb(n: float) -> str:
    return f"{n / 1000:,.1f} KB"


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _settings(s: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (s or {}).items() if v not in (None, {}, [])) or "—"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "—"


def build(summary: dict[str, Any], t: dict[str, str]) -> list[Block]:
    """The report's blocks from a run's summary, in the language of `t`."""
    base, final = summary["baseline"]["measure"], summary["final"]["measure"]
    recipe = summary["recipe"]
    model_name = recipe["model"].get("name") or recipe["model"].get("checkpoint")
    blocks: list[Block] = [("h1", f"{t['title']}: {recipe['name']}")]
    failed = [c for c in summary["checks"] if not c["ok"]]
    blocks.append(("p", t["summary_ok"] if not failed else t["summary_fail"] + "; ".join(
        f"{c['limit']} ({c['value']} {c['unit']} > {c['allowed']})" for c in failed)))

    blocks.append(("h2", t["background"]))
    blocks.append(("table", [t["metric"], t["baseline"]], [
        [t["model"], str(model_name)], [t["data"], recipe["data"]["name"]],
        [t["accuracy"], f"{_pct(base['accuracy'])} ({base['errors']} / {base['total']})"],
        [t["params"], f"{base['params']:,}"], [t["size"], f"{_kb(base['deploy_bytes'])} ({base['deploy_kind']})"],
        [t["macs"], f"{base['macs']:,}"], [t["latency"], f"{base['latency_ms']:.3f} ms"],
        [t["energy"], f"{base['energy_uj']:.3f} µJ"]]))

    blocks.append(("h2", t["compression"]))
    rows = []
    for a in summary["attempts"][1:]:
        m = a["measure"]
        shown = _settings(a.get("settings_changed", a.get("settings")))
        rows.append([a["label"], str(a["round"]), shown, t["yes"] if a["recovered"] else t["no"],
                     _pct(m["accuracy"]), f"{a['accuracy_drop']:+.2f}", _kb(m["deploy_bytes"]),
                     f"{m['nonzeros']:,}", "★" if a["key"] == summary["final"]["key"] else ""])
    blocks.append(("table", [t["stage"], t["round"], t["settings"], t["recovered"], t["accuracy"], t["drop"],
                             t["size"], t["nonzeros"], t["chosen"]], rows))
    blocks.append(("img", plots.accuracy_vs_size(summary["attempts"], summary["final"]["key"]),
                   t["plot_pareto"], "pareto.png"))

    blocks.append(("h2", t["effects"]))
    sizes = sorted(set(base["sizes"]) | set(final["sizes"]))
    eff = [
        [t["accuracy"], _pct(base["accuracy"]), _pct(final["accuracy"]),
         f"{100 * (final['accuracy'] - base['accuracy']):+.2f} pt"],
        [t["params"], f"{base['params']:,}", f"{final['params']:,}", _ratio(base["params"], final["params"])],
        [t["nonzeros"], f"{base['nonzeros']:,}", f"{final['nonzeros']:,}", _ratio(base["nonzeros"], final["nonzeros"])],
        *[[f"{t['size']} ({k})", _kb(base["sizes"][k]) if k in base["sizes"] else "—",
           _kb(final["sizes"][k]) if k in final["sizes"] else "—",
           _ratio(base["sizes"]["fp32"], final["sizes"][k]) if k in final["sizes"] else "—"] for k in sizes],
        [t["macs"], f"{base['macs']:,}", f"{final['macs']:,}", _ratio(base["macs"], final["macs"])],
        [t["eff_macs"], f"{base['effective_macs']:,}", f"{final['effective_macs']:,}",
         _ratio(base["effective_macs"], final["effective_macs"])],
        [t["latency"], f"{base['latency_ms']:.3f} ms", f"{final['latency_ms']:.3f} ms",
         _ratio(base["latency_ms"], final["latency_ms"])],
        [t["throughput"], f"{base['throughput_b64']:,.0f}/s", f"{final['throughput_b64']:,.0f}/s",
         _ratio(final["throughput_b64"], base["throughput_b64"])],
        [t["peak"], _kb(base["peak_activation_bytes"]), _kb(final["peak_activation_bytes"]),
         _ratio(base["peak_activation_bytes"], final["peak_activation_bytes"])],
        [t["energy"], f"{base['energy_uj']:.3f} µJ", f"{final['energy_uj']:.3f} µJ",
         _ratio(base["energy_uj"], final["energy_uj"])],
    ]
    blocks.append(("table", [t["metric"], t["baseline"], t["result"], t["change"]], eff))
    if final["nonzeros"] < final["params"] and final["macs"] == base["macs"]:
        blocks.append(("p", t["no_speed"]))
    if summary.get("side_by_side"):
        blocks.append(("p", t["timing_note"]))
    blocks.append(("p", f"{t['energy_note']}: {final['energy']['assumptions']}"))
    blocks.append(("h2", t["layers"]))
    weighted = [x for x in final["layers"] if x["params"]]
    layers = [x for x in weighted if x["kind"] in ("Linear", "Conv2d", "Conv1d")] or weighted
    blocks.append(("table", [t["layer"], "kind", t["params"], t["nonzeros"], t["kept"]],
                   [[x["name"], x["kind"], f"{x['params']:,}", f"{x['nonzeros']:,}",
                     f"{100 * x['nonzeros'] / max(1, x['params']):.1f} %"] for x in layers]))
    blocks.append(("img", plots.layers_kept(layers), t["plot_layers"], "layers.png"))

    blocks.append(("h2", t["edge"]))
    blocks.append(("table", [t["limit"], t["allowed"], t["measured"], t["verdict"]],
                   [[c["limit"], f"{c['allowed']} {c['unit']}".strip(), f"{c['value']} {c['unit']}".strip(),
                     t["pass"] if c["ok"] else t["fail"]] for c in summary["checks"]]))
    if summary.get("cpu"):
        blocks.append(("p", f"{t['cpu']}: {summary['cpu']['summary']}"))
    for a in summary["attempts"]:
        onnx = (a.get("stage_meta") or {}).get("int8_onnx")
        if onnx:
            blocks.append(("p", f"{t['int8_onnx']}: {onnx['result']}"))
            if onnx.get("fallback"):
                blocks.append(("p", f"{t['fallback']}: {onnx['fallback']}"))
    blocks.append(("table", [t["profile"], t["verdict"], t["why"]],
                   [[f"{p['profile']}: {p['description']}", t["fits"] if p["fits"] else t["not_fits"],
                     "; ".join(p["reasons"])] for p in summary["profiles"]]))
    return blocks
