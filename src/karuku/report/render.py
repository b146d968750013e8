"""Render report blocks as one self-contained HTML page (images inline) and as Markdown."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from karuku.io.atomic import write_bytes, write_text

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans JP","Noto Sans CJK JP",sans-serif;
max-width:980px;margin:2em auto;padding:0 1em;color:#1d2433;line-height:1.45}
h1{font-size:1.5em;border-bottom:2px solid #3b6;padding-bottom:.3em}h2{font-size:1.15em;margin-top:1.6em;color:#264}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}td,th{border:1px solid #ccd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#eef3ee}tr:nth-child(even) td{background:#fafbfa}
img{max-width:100%;border:1px solid #dde;margin:.5em 0}figcaption{font-size:.8em;color:#556}
p{margin:.5em 0}
"""


def to_html(blocks, lang: str) -> str:
    """One self-contained HTML page (plots inline)."""
    out = [f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">',
           f"<title>{html.escape(blocks[0][1])}</title><style>{CSS}</style></head><body>"]
    for b in blocks:
        if b[0] in ("h1", "h2", "p"):
            out.append(f"<{b[0]}>{html.escape(b[1])}</{b[0]}>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "img":
            data = base64.b64encode(b[1]).decode()
            out.append(f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _cell(c) -> str:
    return str(c).replace("|", "\\|")


def to_markdown(blocks, folder: Path) -> str:
    """Markdown, with the plots written beside it in `folder`."""
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
        elif b[0] == "img":
            write_bytes(folder / b[3], b[1])
            out.append(f"![{b[2]}]({b[3]})\n")
    return "\n".join(out)


def write(blocks, folder: Path, lang: str) -> Path:
    """Write report[.<lang>].html and .md (and the plots) into `folder`; return the HTML path."""
    suffix = "" if lang == "en" else f".{lang}"
    write_text(folder / f"report{suffix}.md", to_markdown(blocks, folder))
    return write_text(folder / f"report{suffix}.html", to_html(blocks, lang))
