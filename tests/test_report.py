"""The report as a person sees it (issue 19): checked in the written page and, rendered, in headless Chromium on a
machine with and without CJK fonts (tests/helpers/browser.py)."""

from __future__ import annotations

import html
import json
import random
import re

import pytest

from helpers.browser import Browser
from helpers.summaries import summary
from karuku.measure.units import size
from karuku.report import write_report
from karuku.report.content import layer_rows
from karuku.report.i18n import japanese_strings
from karuku.report.plots import accuracy_limits, place_labels, text_width


def test_sizes_have_one_convention():
    assert [size(n) for n in (650, 267_800, 196_608, 999_999, 1_048_576, 9_581_300, 4 * 1024**3, 16 * 1024**3)] == [
        "0.7 KB", "267.8 KB", "196.6 KB", "1.00 MB", "1.05 MB", "9.58 MB", "4.29 GB", "17.2 GB"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    s = summary()
    write_report(folder, s, "en")
    write_report(folder, s, "ja")
    return folder, s


def test_the_page_uses_one_size_unit_and_names_errors(reports):
    folder, _ = reports
    en, ja = (folder / "report.html").read_text(), (folder / "report.ja.html").read_text()
    for page in (en, ja):
        assert not re.search(r"\d (KiB|MiB|GiB)\b", page) and "16,384" not in page
        assert "flash 17.2 GB" in page or "フラッシュ 17.2 GB" in page  # rpi4's 16 GiB of storage
    assert "100.00 % (0 errors of 10,000)" in en and "100.00 % (誤り 0 件 / 10,000 件)" in ja


def test_the_layer_table_compares_with_the_baseline(reports):
    _, s = reports
    rows, matched = layer_rows(s["baseline"]["measure"], s["final"]["measure"])
    assert matched
    kept = {r["name"]: round(100 * r["kept"], 1) for r in rows}
    assert kept == {"conv1": 50.0, "conv2": 25.3, "fc1": 25.0, "fc2": 25.0, "fc3": 100.0}
    total = sum(r["nonzeros"] for r in rows) / sum(r["base_params"] for r in rows)
    assert round(total, 2) == 0.27  # 73 % of the parameters removed, as the effects table says
    # a distilled student has other layers: each is compared with itself, and the page says so
    student = dict(s["final"]["measure"], layers=[dict(x, name="s." + x["name"]) for x in
                                                  s["final"]["measure"]["layers"]])
    rows, matched = layer_rows(s["baseline"]["measure"], student)
    assert not matched and all(r["kept"] == 1.0 for r in rows)


def test_the_accuracy_axis_stays_within_0_and_100():
    assert accuracy_limits([100.0, 100.0, 100.0]) == (99.5, 100.0)
    assert accuracy_limits([0.0, 3.0]) == (0.0, 3.5)
    lo, hi = accuracy_limits([91.0, 99.0])
    assert lo < 91 and 99 < hi <= 100


def test_labels_are_placed_without_overlap():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(2, 9)
        points = [(rng.uniform(0, 300), rng.choice([200.0, rng.uniform(0, 200)])) for _ in range(n)]
        texts = [", ".join(str(rng.randint(0, 12)) for _ in range(rng.randint(1, 3))) for _ in range(n)]
        spots = place_labels(points, texts, 10, (0, 0, 300, 200))
        rects = [(x, y, x + text_width(t, 8), y + 10) for (x, y), t in zip(spots, texts)]
        for i, a in enumerate(rects):
            for b in rects[i + 1:]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (points, texts)


def test_the_embedded_font_covers_every_japanese_string():
    from importlib import resources

    from fontTools.ttLib import TTFont

    with resources.files("karuku.report").joinpath("fonts/karuku-ja.woff").open("rb") as fh:
        cmap = TTFont(fh).getBestCmap()
    missing = sorted({c for s in japanese_strings() for c in s if ord(c) >= 0x2E80 and ord(c) not in cmap})
    assert not missing, f"run scripts/make_report_font.py: the embedded font lacks {''.join(missing)}"


def test_every_report_of_a_run_folder_agrees_with_its_summary(tmp_path):
    write_report(tmp_path, summary(), "en")
    assert "meets every limit" in (tmp_path / "report.html").read_text()
    missed = summary(max_size_kb=10)  # the same run judged again: 11.9 KB > 10 KB
    (tmp_path / "summary.json").write_text(json.dumps(missed))
    write_report(tmp_path, missed, "ja")
    for name in ("report.html", "report.md"):
        text = html.unescape((tmp_path / name).read_text())
        assert "meets every limit" not in text and "could not be met" in text and "max_size_kb (11.94 KB > 10" in text
    assert "予算を満たせませんでした" in (tmp_path / "report.ja.html").read_text()


# -- rendered in a real browser ------------------------------------------------------------------------------

LEAVES = """(() => {
  const cjk = /[\\u3000-\\u30ff\\u3400-\\u4dbf\\u4e00-\\u9fff\\uff00-\\uffef]/g;
  const out = [];
  document.querySelectorAll('body *').forEach((el, i) => {
    if (el.children.length || !el.textContent) return;
    const n = (el.textContent.match(cjk) || []).length;
    if (n) { el.setAttribute('data-leaf', String(i)); out.push([String(i), n, el.textContent]); }
  });
  return out;
})()"""


def cjk_drawn_by(page, fonts: set[str]) -> list[str]:
    """The texts (of leaf elements with Japanese in them) whose CJK characters `fonts` did not all draw."""
    bad = []
    for leaf, n, text in page.evaluate(LEAVES):
        used = page.fonts(f'[data-leaf="{leaf}"]')
        if sum(used.get(f, 0) for f in fonts) < n:
            bad.append(f"{text!r}: {used}")
    return bad


def boxes(page, a: str = "背景", b: str = "効果") -> bool:
    """Whether two different Japanese words look the same (both drawn as missing-glyph boxes)."""
    shots = []
    for i, word in enumerate((a, b)):
        box = page.evaluate(f"""(() => {{ const d = document.createElement('div');
            d.style.cssText = 'position:absolute;left:0;top:{4000 + 80 * i}px;font-size:40px;background:#fff';
            d.textContent = '{word}'; document.body.appendChild(d);
            return document.fonts.ready.then(() => {{ const r = d.getBoundingClientRect();
                return [r.left + scrollX, r.top + scrollY, r.width, r.height]; }}); }})()""")
        shots.append(page.screenshot(*box))
    return shots[0] == shots[1]


@pytest.fixture(scope="module")
def latin_browser():
    with Browser(fonts="latin") as b:
        yield b


def test_japanese_reads_on_a_machine_without_cjk_fonts(reports, latin_browser, tmp_path):
    folder, _ = reports
    page = latin_browser.open(folder / "report.ja.html")
    assert page.evaluate("[...document.fonts].map(f => f.family + ' ' + f.status)") == ["karuku ja loaded"]
    assert cjk_drawn_by(page, {"karuku ja"}) == []  # every Japanese character, plots' text included
    assert not boxes(page)
    # the check can fail: without the embedded font this machine draws boxes, and both checks see them
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"@font-face\{[^}]*\}", "", (folder / "report.ja.html").read_text()))
    page = latin_browser.open(bare)
    assert len(cjk_drawn_by(page, {"karuku ja"})) > 20 and boxes(page)


def test_japanese_with_cjk_fonts_falls_back_to_them(tmp_path):
    s = summary(name="軽くテスト")  # 軽 is not in the embedded subset: the system's CJK font draws it
    write_report(tmp_path, s, "ja")
    with Browser(fonts="system") as b:
        page = b.open(tmp_path / "report.ja.html")
        assert cjk_drawn_by(page, {"karuku ja", "Noto Sans CJK JP"}) == []
        assert page.fonts("h1").get("Noto Sans CJK JP") == 1 and not boxes(page, "軽", "験")


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_pareto_plot_as_rendered(reports, latin_browser, lang):
    folder, _ = reports
    page = latin_browser.open(folder / ("report.html" if lang == "en" else "report.ja.html"))
    labels = page.evaluate("""[...document.querySelectorAll('#pareto g[id^="attempt-label"] text')].map(t => {
        const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; })""")
    assert sorted(t for t, *_ in labels) == ["0", "1", "2", "3, 4"]  # quantize and export share one point
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert not (a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]), (a, b)
    ticks = page.evaluate("[...document.querySelectorAll('#pareto g[id^=\"ytick\"] text')].map(t => t.textContent)")
    assert ticks and max(float(t.replace("−", "-")) for t in ticks) <= 100  # never 104 %
    axes = page.evaluate("[...document.querySelectorAll('#pareto text')].map(t => t.textContent).join('|')")
    assert ("テスト精度" in axes and "配備サイズ" in axes) if lang == "ja" else "test accuracy" in axes
