"""CPU detection: /proc/cpuinfo texts of the machines we have met, CPUID on this one, target names."""

import platform

import pytest

from karuku.cpu import TARGETS, detect, get_target, parse_cpuinfo
from karuku.errors import KarukuError

AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c avx2 bmi2 sha_ni
"""
XEON_AMX = """model name\t: Intel(R) Xeon(R) Processor
flags\t\t: sse4_1 avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
SKYLAKE_SP = "model name : Intel(R) Xeon(R) Gold 6148\nflags : sse4_1 avx2 avx512f avx512bw avx512cd\n"
ALDER_LAKE = "model name : 12th Gen Intel(R) Core(TM) i7-12700\nflags : sse4_1 avx2 avx_vnni\n"
GRAVITON2 = "processor : 0\nBogoMIPS : 243.75\nFeatures : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp\n"
GRAVITON3 = "Features : fp asimd asimddp sve i8mm bf16\n"
CORTEX_A53 = "Features : fp asimd evtstrm crc32\n"


@pytest.mark.parametrize("text, arch, target", [
    (AVX2_ONLY, "x86_64", "avx2"), (XEON_AMX, "x86_64", "amx"), (SKYLAKE_SP, "x86_64", "avx512"),
    (ALDER_LAKE, "x86_64", "avx-vnni"), (GRAVITON2, "aarch64", "arm64-dotprod"), (GRAVITON3, "aarch64", "arm64-i8mm"),
    (CORTEX_A53, "aarch64", "arm64"), ("", "riscv64", "portable"),
])
def test_targets_of_known_machines(text, arch, target):
    cpu = parse_cpuinfo(text, arch)
    assert cpu.target == target
    assert target in cpu.summary()
    # only the saturating x86 families are marked inexact for u8 x s8
    if target in TARGETS:
        assert TARGETS[target].u8s8_exact == (target not in ("avx2", "avx512", "x86-64"))


def test_model_name_and_features_are_read():
    cpu = parse_cpuinfo(AVX2_ONLY, "x86_64")
    assert cpu.model == "AMD EPYC" and cpu.features == ("sse4_1", "avx2")
    assert cpu.as_dict()["target"] == "avx2"


def test_unknown_target_is_one_line_with_suggestion():
    with pytest.raises(KarukuError, match=r"unknown target ISA 'avx3'; did you mean 'avx2'\?.*known: auto, portable"):
        get_target("avx3")
    assert get_target("auto") == detect().target
    assert get_target("portable") == "portable" and get_target("arm64") == "arm64"


def test_override_for_emulators(monkeypatch):
    monkeypatch.setenv("KARUKU_CPU_FEATURES", "sse4_1 avx2")
    detect.cache_clear()
    try:
        assert detect().target == "avx2"
    finally:
        monkeypatch.delenv("KARUKU_CPU_FEATURES")
        detect.cache_clear()


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="CPUID is an x86 instruction")
def test_cpuid_agrees_with_the_kernel_on_this_machine():
    from karuku.cpuid import x86_features

    feats = x86_features()
    assert feats is not None and "sse4_1" in feats
    with open("/proc/cpuinfo") as f:
        kernel = parse_cpuinfo(f.read(), "x86_64")
    # the kernel reports what CPUID and XCR0 allow; the int8-relevant ones must match
    for name in ("avx2", "avx512_vnni", "avx_vnni"):
        assert (name in feats) == (name in kernel.features), name
