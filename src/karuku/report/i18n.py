"""Report text in English and Japanese: headings, labels, axes, stage and layer kinds, device descriptions.

Every Japanese character used here must be in the font the report embeds (`fonts/karuku-ja.woff`, made by
scripts/make_report_font.py); tests/test_report.py checks it, so a new string that needs a new glyph fails
there until the font is remade.
"""

from __future__ import annotations

TEXT = {
    "en": {
        "title": "karuku compression report",
        "background": "1. Background: the baseline",
        "compression": "2. Compression: every attempt",
        "effects": "3. Effects: baseline vs result",
        "edge": "4. Edge: budget and devices",
        "layers": "Per-layer view of the result",
        "plot_pareto": ("Accuracy vs deployable size of every attempt (Pareto front joined; numbers are the "
                        "attempts of the table above, 0 the baseline, ★ the chosen one)"),
        "plot_layers": "Per-layer weights kept, of the baseline's",
        "axis_size": "deployable size (KB, log scale)", "axis_accuracy": "test accuracy (%)",
        "axis_kept": "% of the baseline's weights kept",
        "metric": "metric", "baseline": "baseline", "result": "result", "change": "change",
        "stage": "stage", "round": "back-off", "settings": "settings", "recovered": "recovered",
        "accuracy": "test accuracy", "drop": "drop (pt)", "size": "deployable size", "nonzeros": "nonzeros",
        "params": "parameters", "macs": "MACs / sample", "eff_macs": "effective MACs", "latency": "latency b1 (ORT)",
        "inputs": "inputs",  # what a model of several or integer inputs was measured on
        "throughput": "throughput b64 (ORT)", "energy": "energy / inference", "peak": "peak activations",
        "limit": "limit", "allowed": "allowed", "measured": "measured", "verdict": "verdict",
        "pass": "pass", "fail": "FAIL", "fits": "fits", "not_fits": "does not fit", "profile": "device profile",
        "why": "why", "layer": "layer", "kind": "kind", "kept": "kept", "model": "model", "data": "data",
        "params_base": "baseline parameters", "params_now": "parameters now",
        "errors": "{errors} errors of {total}",
        "summary_ok": "The result meets every limit of the budget.",
        "summary_fail": "The budget could not be met; the best candidate was still written. Failed limits: ",
        "yes": "yes", "no": "no", "sizes": "sizes", "chosen": "chosen", "number": "#",
        "energy_note": "Energy model",
        "timing_note": ("Latency and throughput of the baseline and the result: ONNX Runtime, timed side by side "
                        "in interleaved rounds at the end of the run (medians); the attempts' own figures were "
                        "measured when each ran."),
        "no_speed": "Unstructured sparsity does not make dense kernels faster; its gain shows in the packed size.",
        "new_arch": "The result has another architecture than the baseline (a distilled student): its layers are "
                    "compared with themselves.",
        "cpu": "Measured on", "int8_onnx": "int8 ONNX", "tflite": ".tflite", "c": "C",
        "fallback": "Fallback (ONNX Runtime on this CPU missed the integer engine's answers)",
        "stage_label": "stage {n} {kind}", "backoff_label": " (back-off {round})",
        "memory": "flash {flash}, RAM {ram}",
        "reason_flash": "weights {need} {cmp} flash {have}",
        "reason_ram": "peak activations {need} {cmp} RAM {have}",
        "reason_ram_weights": "weights + peak activations {need} {cmp} RAM {have}",
        "energy_text": ("45 nm table (Horowitz): {arith} mult+add {mac_pj:.1f} pJ/MAC; weights {weights} {fit} "
                        "{on_chip} on-chip → {memory} pJ per 32-bit read; activations {acts} read+written in SRAM"),
        "int": "int", "float": "float", "fit": "fit", "exceed": "exceed",
    },
    "ja": {
        "title": "karuku 圧縮レポート",
        "background": "1. 背景：ベースライン",
        "compression": "2. 圧縮：すべての試行",
        "effects": "3. 効果：ベースラインと結果の比較",
        "edge": "4. エッジ：予算とデバイス",
        "layers": "結果の層ごとの内訳",
        "plot_pareto": ("全試行の精度と配備サイズ（パレート前線を結線。番号は上の表の試行、0 はベースライン、"
                        "★ は採用した試行）"),
        "plot_layers": "層ごとの残存重み（ベースラインに対する割合）",
        "axis_size": "配備サイズ（KB、対数目盛）", "axis_accuracy": "テスト精度（%）",
        "axis_kept": "ベースラインの重みの残存率（%）",
        "metric": "指標", "baseline": "ベースライン", "result": "結果", "change": "変化",
        "stage": "段階", "round": "後退", "settings": "設定", "recovered": "回復学習",
        "accuracy": "テスト精度", "drop": "低下（pt）", "size": "配備サイズ", "nonzeros": "非ゼロ数",
        "params": "パラメータ数", "macs": "MAC / サンプル", "eff_macs": "実効 MAC", "latency": "遅延 b1（ORT）",
        "inputs": "インプット",
        "throughput": "スループット b64（ORT）", "energy": "推論1回のエネルギー", "peak": "活性化メモリ最大値",
        "limit": "制約", "allowed": "許容値", "measured": "測定値", "verdict": "判定",
        "pass": "合格", "fail": "不合格", "fits": "収まる", "not_fits": "収まらない", "profile": "デバイス",
        "why": "理由", "layer": "層", "kind": "種類", "kept": "残存率", "model": "モデル", "data": "データ",
        "params_base": "ベースラインのパラメータ数", "params_now": "現在のパラメータ数",
        "errors": "誤り {errors} 件 / {total} 件",
        "summary_ok": "結果は予算のすべての制約を満たしています。",
        "summary_fail": "予算を満たせませんでしたが、最良の候補を書き出しました。満たせなかった制約：",
        "yes": "はい", "no": "いいえ", "sizes": "サイズ", "chosen": "採用", "number": "番号",
        "energy_note": "エネルギーモデル",
        "timing_note": ("ベースラインと結果のレイテンシとスループットは、実行の最後に ONNX Runtime で交互に並べて"
                        "計測した中央値です。各試行の数値はその試行の実行時に計測したものです。"),
        "no_speed": "非構造化スパース性は密なカーネルを速くしません。その効果は圧縮ファイルのサイズに現れます。",
        "new_arch": "結果はベースラインと異なる構造（蒸留した生徒モデル）のため、各層はそれ自身と比較しています。",
        "cpu": "計測した CPU", "int8_onnx": "int8 ONNX", "tflite": ".tflite", "c": "C",
        "fallback": "代替表現（この CPU の ONNX Runtime が整数エンジンと一致しなかったため）",
        "stage_label": "段階 {n} {kind}", "backoff_label": "（後退 {round}）",
        "memory": "フラッシュ {flash}、RAM {ram}",
        "reason_flash": "重み {need} {cmp} フラッシュ {have}",
        "reason_ram": "活性化メモリ最大値 {need} {cmp} RAM {have}",
        "reason_ram_weights": "重み＋活性化メモリ最大値 {need} {cmp} RAM {have}",
        "energy_text": ("45 nm の表（Horowitz）：{arith}の乗算＋加算 {mac_pj:.1f} pJ/MAC。重み {weights} はオンチップ "
                        "{on_chip} に{fit} → 32 ビットの読み出し 1 回 {memory} pJ。活性化 {acts} は SRAM で読み書き"),
        "int": "整数", "float": "浮動小数点", "fit": "収まる", "exceed": "収まらない",
    },
}

# Names of things the report shows, by language: stage kinds, layer kinds, the built-in device profiles.
# Anything not listed (a user's own stage, layer class or profile) is shown as it is named.
NAMES = {
    "ja": {
        "stage": {"baseline": "ベースライン", "finetune": "微調整", "prune": "枝刈り", "quantize": "量子化",
                  "distill": "蒸留", "cluster": "クラスタリング", "pack": "パック", "export": "エクスポート"},
        "layer": {"Linear": "全結合（Linear）", "Conv2d": "畳み込み 2D（Conv2d）", "Conv1d": "畳み込み 1D（Conv1d）",
                  "BatchNorm2d": "バッチ正規化（BatchNorm2d）", "BatchNorm1d": "バッチ正規化（BatchNorm1d）"},
        "profile": {"mcu-m4": "Cortex-M4F マイコン、STM32F407 クラス、168 MHz",
                    "mcu-m7": "Cortex-M7 マイコン、STM32H743 クラス、480 MHz",
                    "rpi4": "Raspberry Pi 4 クラスのボード、Cortex-A72 ×4（1.5 GHz）、SD カード",
                    "phone": "スマートフォン級 SoC、big/little 構成の Arm コア 8 基"},
    },
}


def text(lang: str) -> dict[str, str]:
    """The report's strings in `lang` (en or ja); an unknown language is one error."""
    if lang not in TEXT:
        from karuku.errors import KarukuError

        raise KarukuError(f"unknown report language '{lang}'", f"allowed: {', '.join(TEXT)}")
    return dict(TEXT[lang], lang=lang)


def name(lang: str, what: str, key: str, default: str | None = None) -> str:
    """A stage kind, layer kind or profile description in `lang`; `default` (or `key`) when none is known."""
    return NAMES.get(lang, {}).get(what, {}).get(key, default if default is not None else key)


def japanese_strings() -> list[str]:
    """Every Japanese string the report may show (what the embedded font must cover)."""
    return [*TEXT["ja"].values(), *(v for table in NAMES["ja"].values() for v in table.values())]
