"""Report text in English and Japanese."""

from __future__ import annotations

TEXT = {
    "en": {
        "title": "karuku compression report",
        "background": "1. Background: the baseline",
        "compression": "2. Compression: every attempt",
        "effects": "3. Effects: baseline vs result",
        "edge": "4. Edge: budget and devices",
        "layers": "Per-layer view of the result",
        "plot_pareto": "Accuracy vs deployable size of every attempt (Pareto front joined)",
        "plot_layers": "Per-layer weights kept",
        "metric": "metric", "baseline": "baseline", "result": "result", "change": "change",
        "stage": "stage", "round": "back-off", "settings": "settings", "recovered": "recovered",
        "accuracy": "test accuracy", "drop": "drop (pt)", "size": "deployable size", "nonzeros": "nonzeros",
        "params": "parameters", "macs": "MACs / sample", "eff_macs": "effective MACs", "latency": "latency b1 (ORT)",
        "throughput": "throughput b64 (ORT)", "energy": "energy / inference", "peak": "peak activations",
        "limit": "limit", "allowed": "allowed", "measured": "measured", "verdict": "verdict",
        "pass": "pass", "fail": "FAIL", "fits": "fits", "not_fits": "does not fit", "profile": "device profile",
        "why": "why", "layer": "layer", "kept": "kept", "model": "model", "data": "data",
        "summary_ok": "The result meets every limit of the budget.",
        "summary_fail": "The budget could not be met; the best candidate was still written. Failed limits: ",
        "yes": "yes", "no": "no", "sizes": "sizes", "chosen": "chosen",
        "energy_note": "Energy model",
        "timing_note": ("Latency and throughput of the baseline and the result: ONNX Runtime, timed side by side "
                        "in interleaved rounds at the end of the run (medians); the attempts' own figures were "
                        "measured when each ran."),
        "no_speed": "Unstructured sparsity does not make dense kernels faster; its gain shows in the packed size.",
        "cpu": "Measured on", "int8_onnx": "int8 ONNX",
        "fallback": "Fallback (ONNX Runtime on this CPU missed the integer engine's answers)",
    },
    "ja": {
        "title": "karuku 圧縮レポート",
        "background": "1. 背景：ベースライン",
        "compression": "2. 圧縮：すべての試行",
        "effects": "3. 効果：ベースラインと結果の比較",
        "edge": "4. エッジ：予算とデバイス",
        "layers": "結果の層ごとの内訳",
        "plot_pareto": "全試行の精度と配備サイズ（パレート前線を結線）",
        "plot_layers": "層ごとの残存重み",
        "metric": "指標", "baseline": "ベースライン", "result": "結果", "change": "変化",
        "stage": "段階", "round": "後退", "settings": "設定", "recovered": "回復学習",
        "accuracy": "テスト精度", "drop": "低下（pt）", "size": "配備サイズ", "nonzeros": "非ゼロ数",
        "params": "パラメータ数", "macs": "MAC / サンプル", "eff_macs": "実効 MAC", "latency": "遅延 b1（ORT）",
        "throughput": "スループット b64（ORT）", "energy": "推論1回のエネルギー", "peak": "活性化メモリ最大値",
        "limit": "制約", "allowed": "許容値", "measured": "測定値", "verdict": "判定",
        "pass": "合格", "fail": "不合格", "fits": "収まる", "not_fits": "収まらない", "profile": "デバイス",
        "why": "理由", "layer": "層", "kept": "残存率", "model": "モデル", "data": "データ",
        "summary_ok": "結果は予算のすべての制約を満たしています。",
        "summary_fail": "予算を満たせませんでしたが、最良の候補を書き出しました。満たせなかった制約：",
        "yes": "はい", "no": "いいえ", "sizes": "サイズ", "chosen": "採用",
        "energy_note": "エネルギーモデル",
        "timing_note": ("ベースラインと結果のレイテンシとスループットは、実行の最後に ONNX Runtime で交互に並べて"
                        "計測した中央値です。各試行の数値はその試行の実行時に計測したものです。"),
        "no_speed": "非構造化スパース性は密なカーネルを速くしません。その効果は圧縮ファイルのサイズに現れます。",
        "cpu": "計測した CPU", "int8_onnx": "int8 ONNX",
        "fallback": "代替表現（この CPU の ONNX Runtime が整数エンジンと一致しなかったため）",
    },
}


def text(lang: str) -> dict[str, str]:
    """The report's strings in `lang` (en or ja); an unknown language is one error."""
    if lang not in TEXT:
        from karuku.errors import KarukuError

        raise KarukuError(f"unknown report language '{lang}'", f"allowed: {', '.join(TEXT)}")
    return TEXT[lang]
