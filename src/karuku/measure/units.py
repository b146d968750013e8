"""Sizes in one convention wherever karuku shows them: decimal units, KB = 1,000 bytes, MB = 10⁶, GB = 10⁹.

The budget's `max_size_kb`, the console, `karuku evaluate`, the report and the device profiles all use it, so
a page never mixes KB with KiB; a device's binary capacity is shown in the same units (1 MiB of flash is
1.05 MB, 16 GiB of storage 17.2 GB).
"""

from __future__ import annotations


def size(n: float) -> str:
    """Bytes as KB below 1 MB (one decimal: '267.8 KB'), else MB or GB with three significant digits."""
    if n < 999_950:  # what rounds to 1,000.0 KB is 1.00 MB
        return f"{n / 1e3:,.1f} KB"
    value, unit = (n / 1e6, "MB") if n < 1e9 else (n / 1e9, "GB")
    return f"{value:,.{max(0, 2 - int(value >= 10) - int(value >= 100))}f} {unit}"
