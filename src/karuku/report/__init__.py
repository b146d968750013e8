"""The compression report: one self-contained HTML page and a Markdown summary (English or Japanese)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(folder: str | Path, summary: dict[str, Any], lang: str = "en") -> Path:
    """Write report[.<lang>].html and .md into `folder`, and rewrite the folder's reports in other languages
    from the same summary, so every report of a run folder says what its summary.json says. Returns the
    HTML path of `lang`."""
    from karuku.report import content, i18n, render

    folder = Path(folder)
    i18n.text(lang)  # an unknown language fails before anything is written
    others = [x for x in i18n.TEXT if x != lang and (folder / f"report{'' if x == 'en' else '.' + x}.html").exists()]
    for other in others:
        render.write(content.build(summary, i18n.text(other)), folder, other)
    return render.write(content.build(summary, i18n.text(lang)), folder, lang)


__all__ = ["write_report"]
