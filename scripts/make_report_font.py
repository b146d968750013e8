"""Make the font the Japanese report embeds: src/karuku/report/fonts/karuku-ja.woff.

A subset of Noto Sans CJK JP Regular (SIL Open Font License 1.1, © Adobe; Debian's fonts-noto-cjk) holding
every character of the report's Japanese strings (karuku.report.i18n) and nothing else, so a report opened on
a machine without CJK fonts shows Japanese, not boxes. Renamed "karuku ja" (the OFL asks a modified version not
to carry the original's reserved names). Run it after adding Japanese strings that need
new characters (tests/test_report.py says so):

    apt-get install fonts-noto-cjk && .venv/bin/python scripts/make_report_font.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
OUT = Path(__file__).resolve().parents[1] / "src/karuku/report/fonts/karuku-ja.woff"
NAME = "karuku ja"


def characters() -> set[str]:
    """The characters of the report's Japanese strings that Latin fonts lack (kana, kanji, CJK punctuation)."""
    sys.path.insert(0, str(OUT.parents[3]))  # src
    from karuku.report.i18n import japanese_strings

    return {c for s in japanese_strings() for c in s if ord(c) >= 0x2E80}


def main() -> None:
    if not SOURCE.is_file():
        raise SystemExit(f"{SOURCE} not found: apt-get install fonts-noto-cjk")
    font = TTCollection(str(SOURCE)).fonts[0]  # index 0: Noto Sans CJK JP
    options = subset.Options()
    options.flavor = "woff"  # zlib: no brotli needed to write it, every browser reads it
    options.layout_features = []  # horizontal text only: no vertical forms or other substitutions
    options.drop_tables += ["vhea", "vmtx", "VORG", "BASE"]
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
    sub = subset.Subsetter(options)
    sub.populate(unicodes=[ord(c) for c in characters()])
    sub.subset(font)
    names = font["name"]
    for rec in names.names:
        if rec.nameID in (1, 4):
            rec.string = NAME
        elif rec.nameID == 3:
            rec.string = f"{NAME}; subset of Noto Sans CJK JP Regular 2.004"
        elif rec.nameID == 6:
            rec.string = NAME.replace(" ", "-")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    font.flavor = "woff"
    font.save(str(OUT))
    print(f"{OUT}: {OUT.stat().st_size:,} bytes, {len(characters())} characters")


if __name__ == "__main__":
    main()
