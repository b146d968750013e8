"""The CPU karuku runs on, and the CPU targets int8 files are made for.

ONNX Runtime picks its int8 kernels by instruction set, and they do not all compute the same sums: without
VNNI, x86's u8 × s8 kernels multiply with `vpmaddubsw`, which adds each pair of uint8 · int8 products into a
*saturating* int16 (255 · 127 · 2 overflows it). So what an int8 file computes depends on the CPU that runs
it, and karuku must know both the CPU here (`detect()`) and the one a file is for (a `Target`).
`karuku.quant.representation` turns a target into the integer representation that is exact on it.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

from karuku.errors import KarukuError, closest


@dataclass(frozen=True)
class Target:
    """A CPU family as ONNX Runtime's int8 kernels see it."""

    name: str
    arch: str  # "x86_64" or "aarch64"
    u8s8_exact: bool  # do its uint8 × int8 kernels accumulate every product exactly (no int16 pair saturation)?
    description: str


# The ISA ladder, most capable first: a CPU is the first target whose features it has (see `_target_of`).
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("amx", "x86_64", True, "x86 with AMX-INT8 (tile multiply into int32; also has AVX-512 VNNI)"),
    Target("avx512-vnni", "x86_64", True, "x86 with AVX-512 VNNI (vpdpbusd: u8 × s8 summed into int32)"),
    Target("avx-vnni", "x86_64", True, "x86 with AVX-VNNI (256-bit vpdpbusd into int32)"),
    Target("avx512", "x86_64", False, "x86 with AVX-512BW but no VNNI (vpmaddubsw: saturating int16 pairs)"),
    Target("avx2", "x86_64", False, "x86 with AVX2 but no VNNI (vpmaddubsw: saturating int16 pairs)"),
    Target("x86-64", "x86_64", False, "x86 without AVX2 (SSE kernels; treated as saturating)"),
    Target("arm64-i8mm", "aarch64", True, "Arm with the int8 matrix multiply (usmmla: u8 × s8 into int32)"),
    Target("arm64-dotprod", "aarch64", True, "Arm with dot product (udot / sdot into int32)"),
    Target("arm64", "aarch64", True, "Arm NEON (products widened to int16 exactly, pairs added into int32)"),
)}
PORTABLE = "portable"  # not a CPU: "exact on every target"
AUTO = "auto"  # the CPU running karuku now


@dataclass(frozen=True)
class CPU:
    """What `detect()` found: architecture, model name, the int8-relevant features and the matching target."""

    arch: str
    model: str
    features: tuple[str, ...]

    @property
    def target(self) -> str:
        return _target_of(self.arch, set(self.features))

    def summary(self) -> str:
        """One line for tables, reports and benchmark records."""
        feats = " ".join(self.features) or "no SIMD int8 features found"
        return f"{self.model} ({self.arch}; {feats}; int8 target {self.target})"

    def as_dict(self) -> dict:
        return {"arch": self.arch, "model": self.model, "features": list(self.features), "target": self.target}


# Feature names as Linux spells them in /proc/cpuinfo (x86 "flags", Arm "Features").
X86_FEATURES = ("sse4_1", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FEATURES = ("asimd", "asimddp", "i8mm")


def _target_of(arch: str, feats: set[str]) -> str:
    if arch in ("x86_64", "amd64"):
        if "amx_int8" in feats:
            return "amx"
        if "avx512_vnni" in feats:
            return "avx512-vnni"
        if "avx_vnni" in feats:
            return "avx-vnni"
        if "avx512bw" in feats:
            return "avx512"
        return "avx2" if "avx2" in feats else "x86-64"
    if arch in ("aarch64", "arm64"):
        if "i8mm" in feats:
            return "arm64-i8mm"
        return "arm64-dotprod" if "asimddp" in feats else "arm64"
    return PORTABLE  # an architecture ONNX Runtime's int8 kernels are not known for: be exact everywhere


def parse_cpuinfo(text: str, arch: str) -> CPU:
    """A `CPU` from the text of /proc/cpuinfo (pure: tests feed it other machines' files)."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags |= set(value.split())
    known = X86_FEATURES if arch in ("x86_64", "amd64") else ARM_FEATURES
    return CPU(arch, model or platform.processor() or arch, tuple(f for f in known if f in flags))


@functools.cache
def detect() -> CPU:
    """The CPU running this process, detected once: on x86 from CPUID and XGETBV themselves (what ONNX Runtime
    reads to pick its kernels, right under an emulator too), else from /proc/cpuinfo.
    `KARUKU_CPU_FEATURES="avx2 ..."` overrides the features."""
    arch = platform.machine().lower()
    text = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        pass
    cpu = parse_cpuinfo(text, arch)
    if arch in ("x86_64", "amd64"):
        from karuku.cpuid import x86_features

        feats = x86_features()
        if feats is not None:
            cpu = CPU(arch, cpu.model, tuple(f for f in X86_FEATURES if f in feats))
    override = os.environ.get("KARUKU_CPU_FEATURES")
    if override is not None:
        cpu = CPU(arch, cpu.model, tuple(override.split()))
    return cpu


def get_target(name: str) -> str:
    """Check a target-ISA name: a `TARGETS` key, "portable", or "auto" (this CPU's target); returns the name."""
    if name == AUTO:
        return detect().target
    if name == PORTABLE or name in TARGETS:
        return name
    known = [AUTO, PORTABLE, *TARGETS]
    raise KarukuError(f"unknown target ISA '{name}'{closest(name, known)}", f"known: {', '.join(known)}")
