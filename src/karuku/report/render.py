"""Render report blocks as one self-contained HTML page (plots inline as SVG) and as Markdown.

Fonts: the page names a stack that falls back cleanly. Japanese pages start it with "karuku ja", a subset of
Noto Sans CJK JP embedded in the page (fonts/README.md) for the CJK ranges only, so Japanese reads even on a
machine with no CJK font at all; Latin text takes the system's UI font, and characters the subset lacks (a
Japanese recipe name) the common Japanese fonts of each platform. The embedded font comes first on purpose:
Chromium does not redraw text that fell back past a web font still loading, so a web font placed last leaves
boxes. The plots' text is text, drawn with the same stack.
"""

from __future__ import annotations

import base64
import html
from functools import cache
from importlib import resources
from pathlib import Path

from karuku.io.atomic import write_text

EMBEDDED = "karuku ja"
CJK_RANGES = "U+3000-30FF, U+3400-4DBF, U+4E00-9FFF, U+FF00-FFEF"  # punctuation, kana, kanji, full-width forms
FONTS = (f'"{EMBEDDED}", system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Noto Sans CJK JP", '
         '"Noto Sans JP", "Hiragino Sans", "Hiragino Kaku Gothic ProN", "Yu Gothic", Meiryo, IPAexGothic, IPAGothic, '
         "sans-serif")
CSS = f"""
body{{font-family:{FONTS};
max-width:980px;margin:2em auto;padding:0 1em;color:#1d2433;line-height:1.45}}
h1{{font-size:1.5em;border-bottom:2px solid #3b6;padding-bottom:.3em}}h2{{font-size:1.15em;margin-top:1.6em;color:#264}}
table{{border-collapse:collapse;margin:.6em 0;font-size:.88em}}td,th{{border:1px solid #ccd;padding:.25em .6em;
text-align:left;vertical-align:top}}th{{background:#eef3ee}}tr:nth-child(even) td{{background:#fafbfa}}
figure{{margin:.5em 0}}figure svg{{max-width:100%;height:auto;border:1px solid #dde}}
svg text{{font-family:{FONTS} !important}}figcaption{{font-size:.8em;color:#556}}
p{{margin:.5em 0}}
"""


@cache
def font_face() -> str:
    """The @font-face rule of the embedded Japanese subset (a data: URL: the page stays one file); English pages
    name the family too, but without this rule it is skipped."""
    data = resources.files("karuku.report").joinpath("fonts/karuku-ja.woff").read_bytes()
    return (f'@font-face{{font-family:"{EMBEDDED}";font-style:normal;font-weight:400;'
            f"unicode-range:{CJK_RANGES};"
            f'src:url(data:font/woff;base64,{base64.b64encode(data).decode()}) format("woff")}}')


def to_html(blocks, lang: str) -> str:
    """One self-contained HTML page (plots inline)."""
    style = (font_face() if lang == "ja" else "") + CSS
    out = [f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">',
           f"<title>{html.escape(blocks[0][1])}</title><style>{style}</style></head><body>"]
    for b in blocks:
        if b[0] in ("h1", "h2", "p"):
            out.append(f"<{b[0]}>{html.escape(b[1])}</{b[0]}>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "svg":
            out.append(f'<figure id="{b[3].rsplit(".", 1)[0]}" role="img" aria-label="{html.escape(b[2])}">'
                       f"{b[1]}<figcaption>{html.escape(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _cell(c) -> str:
    return str(c).replace("|", "\\|")


def to_markdown(blocks, folder: Path, suffix: str) -> str:
    """Markdown, with the plots written beside it in `folder` (named with the language's suffix)."""
    out = []
    for b in blocks:
        if b[0] == "h1":
            out.append(f"# {b[1]}\n")
        elif b[0] == "h2":
            out.append(f"## {b[1]}\n")
        elif b[0] == "p":
            out.append(f"{b[1]}\n")
        elif b[0] == "table":
            out.append("| " + " | ".join(map(_cell, b[1])) + " |")
            out.append("|" + "---|" * len(b[1]))
            out += ["| " + " | ".join(map(_cell, r)) + " |" for r in b[2]]
            out.append("")
        elif b[0] == "svg":
            stem, ext = b[3].rsplit(".", 1)
            file = f"{stem}{suffix}.{ext}"
            write_text(folder / file, b[1])
            out.append(f"![{b[2]}]({file})\n")
    return "\n".join(out)


def write(blocks, folder: Path, lang: str) -> Path:
    """Write report[.<lang>].html and .md (and the plots) into `folder`; return the HTML path."""
    suffix = "" if lang == "en" else f".{lang}"
    write_text(folder / f"report{suffix}.md", to_markdown(blocks, folder, suffix))
    return write_text(folder / f"report{suffix}.html", to_html(blocks, lang))
