"""The compression report: one self-contained HTML page and a Markdown summary (English or Japanese)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(folder: str | Path, summary: dict[str, Any], lang: str = "en") -> Path:
    """Write report[.<lang>].html and .md into `folder`; return the HTML path."""
    from karuku.report import content, i18n, render

    return render.write(content.build(summary, i18n.text(lang)), Path(folder), lang)


__all__ = ["write_report"]
