"""Rebuild docs/BENCHMARKS.md from the per-issue sources in docs/bench/*.md.

    python3 scripts/merge_benchmarks.py

Each issue's figures live in their own file (edited by whoever measured them); this joins them in
issue order under one header. A source whose first heading is "# " is demoted one level, and image
paths are made relative to docs/.
"""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
ORDER = ["foundation", "pruning", "quant", "deep_compression", "distill", "lottery", "pipeline", "edge", "isa",
         "data", "text", "threads"]
HEAD = """# Benchmarks

Figures measured by the scripts in `benchmarks/` (run by hand), each section with its commands, machine and
date. The development VM of 2026-11-28 had 2 vCPUs (`lscpu`: "Intel(R) Xeon(R) Processor", KVM, with AVX-512
VNNI and AMX; the team's reference machine in ../shared/docs/MACHINE.md is a 2-core AMD EPYC Zen 4) and was
shared by several engineers' jobs at once (load average 1–22), so wall-clock and throughput figures are
pessimistic and only ratios measured side by side in one run should be compared. Later sessions ran on other
CPUs (a 2-vCPU AMD EPYC Zen 5 with AVX-512 VNNI on 2026-12-02; an AVX2-only AMD EPYC on 2026-12-01): each
section names its machine and ISA flags.

Sections, in issue order: foundation (2), pruning (3), quantization (4), Deep Compression (5), distillation (6),
lottery tickets (7), the compression loop (8), edge deployment (9), int8 on every CPU (14), users' own data (16),
sentence encoders (17), threads on a busy machine (19). Sources: docs/bench/*.md, joined by
`scripts/merge_benchmarks.py`.
"""


def section(name: str) -> str:
    lines = (DOCS / "bench" / f"{name}.md").read_text().strip().splitlines()
    if lines and lines[0].startswith("# "):  # written one level up: demote every heading
        lines = ["#" + ln if ln.startswith("#") else ln for ln in lines]
    text = "\n".join(lines)
    return re.sub(r"\]\((?!https?:|bench/)([^)]+\.png)\)", r"](bench/\1)", text)


def main() -> None:
    out = DOCS / "BENCHMARKS.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n\n".join([HEAD.strip()] + [section(n) for n in ORDER]) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
