"""x86 CPUID and XGETBV from Python: the feature bits ONNX Runtime itself reads to choose its int8 kernels.

/proc/cpuinfo can disagree with them (under an emulator it shows the host's CPU), so karuku asks the
instructions directly: twelve bytes of machine code in an executable page, called through ctypes (System V
calling convention: Linux, macOS, BSD). Anything unexpected — another OS, a page that cannot be executable —
returns None and the caller falls back to /proc/cpuinfo.
"""

from __future__ import annotations

import ctypes
import mmap
import platform

# cpuid(leaf=edi, subleaf=esi, out=rdx): push rbx; mov eax,edi; mov ecx,esi; mov r8,rdx; cpuid;
# mov [r8],eax; mov [r8+4],ebx; mov [r8+8],ecx; mov [r8+12],edx; pop rbx; ret
_CPUID = bytes.fromhex("53 89f8 89f1 4989d0 0fa2 418900 41895804 41894808 4189500c 5b c3")
# xgetbv(0) -> rax = edx:eax: xor ecx,ecx; xgetbv; shl rdx,32; or rax,rdx; ret
_XGETBV = bytes.fromhex("31c9 0f01d0 48c1e220 4809d0 c3")

# (leaf, subleaf, register index 0..3 = eax, ebx, ecx, edx, bit) of each feature
_BITS = {
    "sse4_1": (1, 0, 2, 19), "avx2": (7, 0, 1, 5), "avx512f": (7, 0, 1, 16), "avx512bw": (7, 0, 1, 30),
    "avx512_vnni": (7, 0, 2, 11), "amx_int8": (7, 0, 3, 25), "avx_vnni": (7, 1, 0, 4),
}
_OSXSAVE = (1, 0, 2, 27)
_XCR0_AVX = 0b110  # SSE and AVX state enabled by the OS
_XCR0_AVX512 = 0b11100110  # ... and opmask, ZMM_Hi256, Hi16_ZMM
_XCR0_AMX = 0b11 << 17  # XTILECFG and XTILEDATA


def x86_features() -> set[str] | None:
    """Feature names (as Linux spells them) this x86 CPU has and the OS enabled, or None if CPUID can't run."""
    if platform.system() not in ("Linux", "Darwin", "FreeBSD") or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError, AttributeError):
        return None
    try:
        page.write(_CPUID + _XGETBV)
        base = ctypes.addressof(ctypes.c_char.from_buffer(page))
        cpuid = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(base)
        xgetbv = ctypes.CFUNCTYPE(ctypes.c_uint64)(base + len(_CPUID))
        regs = (ctypes.c_uint32 * 4)()
        cache: dict[tuple[int, int], tuple[int, ...]] = {}

        def bit(leaf: int, sub: int, reg: int, b: int) -> bool:
            if (leaf, sub) not in cache:
                cpuid(leaf, sub, regs)
                cache[(leaf, sub)] = tuple(regs)
            return bool(cache[(leaf, sub)][reg] >> b & 1)

        cpuid(0, 0, regs)
        max_leaf = regs[0]
        xcr0 = int(xgetbv()) if bit(*_OSXSAVE) else 0
        found = set()
        for name, (leaf, sub, reg, b) in _BITS.items():
            if leaf <= max_leaf and bit(leaf, sub, reg, b):
                found.add(name)
        if xcr0 & _XCR0_AVX != _XCR0_AVX:
            found -= {"avx2", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni"}
        if xcr0 & _XCR0_AVX512 != _XCR0_AVX512:
            found -= {"avx512f", "avx512bw", "avx512_vnni"}
        if xcr0 & _XCR0_AMX != _XCR0_AMX:
            found.discard("amx_int8")
        return found
    except Exception:  # noqa: BLE001 — any failure means "ask /proc/cpuinfo instead"
        return None
    finally:
        try:
            page.close()
        except BufferError:  # still exported by a ctypes object: the page lives as long as the process
            pass
