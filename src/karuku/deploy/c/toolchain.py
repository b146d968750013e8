"""Build and run the generated C: on the host with gcc, and for Cortex-M4 under QEMU (mps2-an386).

The harness reads inputs from `input.bin` and writes outputs to `output.bin` (semihosting on the
microcontroller), timing each inference with the board's 25 MHz CMSDK timer. Under QEMU with
`-icount shift=0` one instruction takes 1 ns of virtual time, so one timer tick is 40 instructions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from karuku.deploy.c.codegen import CProject
from karuku.errors import KarukuError

HOST_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
TIMER_HZ, NS_PER_INSN = 25_000_000, 1  # -icount shift=0
INSNS_PER_TICK = 1_000_000_000 // TIMER_HZ // NS_PER_INSN

HARNESS = r"""/* karuku test harness: input.bin -> {run} -> output.bin, timing each inference */
#include <stdio.h>
#include <stdint.h>
#include "{name}.h"
#ifdef KARUKU_MCU
#define TIMER ((volatile uint32_t *)0x40000000u) /* CMSDK APB timer 0: CTRL, VALUE, RELOAD */
static uint32_t now(void) {{ return TIMER[1]; }}
#else
static uint32_t now(void) {{ return 0; }}
#endif
{inbufs}
static {otype} outbuf[{osize}];
#ifdef KARUKU_MCU
int main(void) {{ /* called by the start-up code without arguments; files by semihosting */
    const char *ip = "input.bin", *op = "output.bin";
#else
int main(int argc, char **argv) {{
    const char *ip = argc > 2 ? argv[1] : "input.bin", *op = argc > 2 ? argv[2] : "output.bin";
#endif
    FILE *fi = fopen(ip, "rb"), *fo = fopen(op, "wb");
    unsigned long n = 0;
    unsigned long long ticks = 0;
    if (!fi || !fo) {{ printf("karuku: cannot open %s or %s\n", ip, op); return 2; }}
#ifdef KARUKU_MCU
    TIMER[2] = 0xFFFFFFFFu; TIMER[1] = 0xFFFFFFFFu; TIMER[0] = 1u;
#endif
    while ({reads}) {{
        uint32_t t0 = now(), t1;
        if ({run}({args}, outbuf) != 0) {{ printf("karuku: the model refused input %lu\n", n); return 3; }}
        t1 = now();
        ticks += (uint32_t)(t0 - t1);
        fwrite(outbuf, sizeof outbuf[0], {osize}, fo);
        n++;
    }}
    fclose(fi); fclose(fo);
    printf("karuku: %lu inferences, %llu timer ticks\n", n, ticks);
    return 0;
}}
"""


@dataclass(frozen=True)
class Library:
    """A C library the project links (CMSIS-NN): its sources, include folders and defines; compiled with
    -O2 like the project, without -Werror (not karuku's code), into a static library in the build folder."""

    name: str
    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    defines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Build:
    """A compiled C project: the binary and where it was built."""

    binary: Path
    map_file: Path | None
    float_build: bool


def write_project(proj: CProject, folder: Path, float_build: bool = False) -> Path:
    """Write the project's sources (and, with `float_build`, the float reference build's) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for fname, text in proj.files.items():
        (folder / fname).write_text(text)
    # one record an inference: each input's elements in turn (token ids as int32, the rest int8 / float)
    inputs = [(n, ("float" if float_build else "int8_t") if t == "int8_t" else t, k) for n, t, k in proj.inputs] or \
        [("in", "float" if float_build else "int8_t", proj.input_size)]
    harness = HARNESS.format(name=proj.name, osize=proj.output_size, otype="float" if float_build else "int8_t",
                             inbufs="\n".join(f"static {t} {n}[{k}];" for n, t, k in inputs),
                             reads=" && ".join(f"fread({n}, sizeof {n}[0], {k}, fi) == {k}" for n, _, k in inputs),
                             args=", ".join(n for n, _, _ in inputs),
                             run=f"karuku_{proj.name}_run_float" if float_build else f"karuku_{proj.name}_run")
    (folder / ("main_float.c" if float_build else "main.c")).write_text(harness)
    return folder


def _sources(proj: CProject, float_build: bool) -> list[str]:
    if float_build:
        return ["main_float.c", f"{proj.name}_float.c", "karuku_float_kernels.c"]
    return ["main.c", f"{proj.name}.c", *proj.kernel_sources]


def _library(proj: CProject, folder: Path, float_build: bool, compiler: str, flags: list[str]) -> list[str]:
    """Compile and archive the project's library (if any); the flags to compile against it and to link it."""
    lib = proj.library
    if lib is None or float_build:
        return []
    includes = [f"-I{d}" for d in lib.include_dirs] + [f"-D{d}" for d in lib.defines]
    archive = folder / f"lib{lib.name}.a"
    key = (compiler, tuple(flags), lib)
    if key in _ARCHIVES and _ARCHIVES[key].is_file():  # built before in this process: the same bytes
        shutil.copyfile(_ARCHIVES[key], archive)
        return includes
    objdir = folder / f"lib{lib.name}"
    objdir.mkdir(exist_ok=True)
    objects = []
    for src in lib.sources:
        obj = objdir / f"{src.stem}.o"
        _run([compiler, "-O2", *flags, *includes, "-c", str(src), "-o", str(obj)], folder, f"{lib.name} build")
        objects.append(str(obj))
    archive.unlink(missing_ok=True)
    _run([compiler.replace("gcc", "ar"), "rcs", archive.name, *objects], folder, f"{lib.name} archive")
    cached = Path(tempfile.mkdtemp(prefix="karuku-lib-")) / archive.name
    shutil.copyfile(archive, cached)
    _ARCHIVES[key] = cached
    return includes


_ARCHIVES: dict[tuple, Path] = {}  # compiled libraries, by compiler, flags and library


def _run(cmd: list[str], cwd: Path, what: str, timeout: float = 600) -> subprocess.CompletedProcess:
    if not cmd[0].startswith("./") and shutil.which(cmd[0]) is None:
        raise KarukuError(f"{cmd[0]} is not installed", f"install it to {what} (see README: Debian packages)")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        first = next((ln for ln in lines if "error" in ln), lines[-1] if lines else "no output")
        raise KarukuError(f"{what} failed: {first.strip()[:300]}")
    return proc


def build_host(proj: CProject, folder: Path, float_build: bool = False) -> Build:
    """gcc -std=c99 -Wall -Wextra -Werror: warnings are errors."""
    write_project(proj, folder, float_build)
    out = folder / ("host_float" if float_build else "host_int8")
    lib = _library(proj, folder, float_build, "gcc", [])
    link = [f"-L{folder}", f"-l{proj.library.name}"] if lib else []
    _run(["gcc", *HOST_FLAGS, *lib, "-o", out.name, *_sources(proj, float_build), *link, "-lm"], folder,
         "host C build")
    return Build(out, None, float_build)


GC_FLAGS = ("-ffunction-sections", "-fdata-sections")  # with --gc-sections: only the functions a model calls


def build_mcu(proj: CProject, folder: Path, float_build: bool = False, extra_flags: tuple[str, ...] = (),
              gc_sections: bool = False) -> Build:
    """arm-none-eabi-gcc for Cortex-M4F with newlib semihosting; the linker map is kept. `extra_flags` go to
    every compile (e.g. "-ffp-contract=fast": fused multiply-add in the float build, which -std=c99 turns off).
    `gc_sections` links only the functions and data that are used (what a firmware build does; a library's
    unused kernels then cost no flash)."""
    if gc_sections:
        extra_flags = (*extra_flags, *GC_FLAGS)
    write_project(proj, folder, float_build)
    for f in ("mcu_startup.c", "mcu.ld"):
        (folder / f).write_text(resources.files("karuku.deploy.c").joinpath("runtime").joinpath(f).read_text())
    out = folder / ("m4_float.elf" if float_build else "m4_int8.elf")
    map_file = out.with_suffix(".map")
    lib = _library(proj, folder, float_build, "arm-none-eabi-gcc", [*M4_FLAGS, *extra_flags])
    objects = []
    for src in ["mcu_startup.c", *_sources(proj, float_build)]:  # named objects, so the map attributes sizes
        obj = f"m4_{Path(src).stem}.o"
        _run(["arm-none-eabi-gcc", *HOST_FLAGS, *M4_FLAGS, *extra_flags, *lib, "-DKARUKU_MCU", "-c", src, "-o", obj],
             folder, "Cortex-M4 cross build")
        objects.append(obj)
    link = [f"-L{folder}", f"-l{proj.library.name}"] if lib else []
    _run(["arm-none-eabi-gcc", *M4_FLAGS, "--specs=rdimon.specs", "-nostartfiles", "-T", "mcu.ld",
          f"-Wl,-Map={map_file.name}", *(["-Wl,--gc-sections"] if gc_sections else []), "-o", out.name, *objects,
          *link, "-lm"], folder, "Cortex-M4 link")
    return Build(out, map_file, float_build)


def pack(arrays: list[np.ndarray]) -> np.ndarray:
    """The harness's records: each example's inputs one after the other, as their bytes (N × record bytes)."""
    return np.concatenate([np.ascontiguousarray(a.reshape(len(a), -1)).view(np.uint8) for a in arrays], axis=1)


def run(build: Build, inputs: np.ndarray, timeout: float = 600) -> tuple[np.ndarray, int]:
    """Run the build on `inputs` (N × input bytes, or floats); return (outputs, timer ticks)."""
    folder = build.binary.parent
    (folder / "input.bin").write_bytes(np.ascontiguousarray(inputs).tobytes())
    out = folder / "output.bin"
    out.unlink(missing_ok=True)
    if build.map_file is None:
        proc = _run([f"./{build.binary.name}", "input.bin", "output.bin"], folder, "host run", timeout)
    else:
        proc = _run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                     "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
                     "-kernel", build.binary.name], folder, "QEMU run", timeout)
    m = re.search(r"karuku: (\d+) inferences, (\d+) timer ticks", proc.stdout)
    if not m or int(m.group(1)) != len(inputs):
        raise KarukuError(f"the harness did not run every input: {proc.stdout.strip()[-200:]}")
    dtype = np.float32 if build.float_build else np.uint8
    return np.frombuffer(out.read_bytes(), dtype=dtype).reshape(len(inputs), -1), int(m.group(2))


def memory_from_map(map_file: Path, objects: tuple[str, ...]) -> dict[str, int]:
    """Flash (text + rodata + data image) and RAM (data + bss) of the named object files, from the linker map
    (a library's members match by name, "libcmsisnn.a(" matches them all)."""
    text = map_file.read_text().split("Linker script and memory map", 1)[-1]  # not the discarded sections
    flash = ram = 0
    pattern = re.compile(r"^\s*(\.\w[\w.]*)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+\.o\)?)\s*$", re.MULTILINE)
    section = None
    for line in text.splitlines():
        head = re.match(r"^\s(\.[\w.]+)", line)
        if head:
            section = head.group(1)
        m = pattern.match(line)
        if not m or not any(m.group(3).endswith(o) or m.group(3).endswith(f"({o})") or o in m.group(3)
                            for o in objects):
            continue
        sec = m.group(1) or section or ""
        size = int(m.group(2), 16)
        if sec.startswith((".text", ".rodata")):
            flash += size
        elif sec.startswith(".data"):
            flash += size
            ram += size
        elif sec.startswith((".bss", "COMMON")):
            ram += size
    return {"flash_bytes": flash, "ram_bytes": ram}
