/* An AVX2-only view of an AVX-512 x86 CPU, for timing AVX2 kernels on real hardware (benchmarks only).

   Libraries choose their kernels from CPUID (ONNX Runtime's MLAS, NumPy, PyTorch, karuku.cpuid). Linux can make
   the CPUID instruction fault for one process (arch_prctl ARCH_SET_CPUID 0, on CPUs with "cpuid_fault" in
   /proc/cpuinfo: Intel since Ivy Bridge, and most VMs on them); this library, loaded with LD_PRELOAD, turns that
   on before the program starts and answers every CPUID itself: the real answer with the AVX-512, VNNI, AVX-VNNI,
   AMX and AVX-512 BF16/FP16 bits cleared. Every library then takes the code path of an AVX2-only CPU and runs it
   at full speed on the real silicon -- unlike an emulator (qemu-user: right numerics, meaningless time).

   What it does not hide: instructions the program executes without asking (none of the libraries above do),
   and the machine's other traits (caches, clocks, memory) stay the host's; say so next to any figure.

   Build: cc -O2 -shared -fPIC -o avx2_view.so avx2_view.c      Run: benchmarks/as_avx2 COMMAND...   */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <dlfcn.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012

static struct sigaction previous;
static int installed;

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* Clear what an AVX2-only CPU (Haswell to Zen 3) lacks. Bits from the Intel SDM vol. 2A, CPUID leaf 07H. */
static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        /* ECX: VBMI 1, VBMI2 6, GFNI-free, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX-BF16 22, AVX512-FP16 23, AMX-TILE 24, AMX-INT8 25 */
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AVX-VNNI 4, AVX512-BF16 5, AVX-IFMA 23; EDX: AVX-VNNI-INT8 4, AVX10 19 */
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 23));
        r[3] &= ~((1u << 4) | (1u << 19));
    } else if (leaf == 0x1e || leaf == 0x1d || leaf == 0x24) {
        r[0] = r[1] = r[2] = r[3] = 0; /* AMX tile and AVX10 information leaves */
    }
}

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    ucontext_t *uc = (ucontext_t *)ctx;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (ip[0] == 0x0f && ip[1] == 0xa2) { /* the faulting instruction is CPUID */
        uint32_t r[4];
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        real_cpuid((uint32_t)g[REG_RAX], (uint32_t)g[REG_RCX], r);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        mask((uint32_t)g[REG_RAX], (uint32_t)g[REG_RCX], r);
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        return;
    }
    /* A real fault: hand it to whoever had SIGSEGV before us (or the default action). */
    if (previous.sa_flags & SA_SIGINFO && previous.sa_sigaction) {
        previous.sa_sigaction(sig, info, ctx);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler) {
        previous.sa_handler(sig);
    } else {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        installed = 0; /* our sigaction() wrapper now passes through */
        sigaction(SIGSEGV, &dfl, NULL);
        raise(sig);
    }
}

/* Others may install a SIGSEGV handler later (Python's faulthandler, which pytest turns on; gcc's cc1, through
   signal()): keep ours in place and make theirs the one a real fault is handed to. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    static int (*next)(int, const struct sigaction *, struct sigaction *);
    if (!next) next = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV || !installed) return next(sig, act, old);
    if (old) *old = previous;
    if (act) previous = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    static sighandler_t (*next)(int, sighandler_t);
    if (!next) next = (sighandler_t (*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
    if (sig != SIGSEGV || !installed) return next(sig, handler);
    sighandler_t old = (previous.sa_flags & SA_SIGINFO) ? SIG_DFL : previous.sa_handler;
    memset(&previous, 0, sizeof previous);
    previous.sa_handler = handler;
    return old;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        /* benchmarks/as_avx2 checked the CPU before starting; this is a child the preload reached where CPUID
           cannot fault (a program run under qemu-user, which inherits LD_PRELOAD): let it run as it is. */
        fprintf(stderr, "avx2_view: CPUID cannot fault in this process (pid %d); it sees the real CPU\n", (int)getpid());
        return;
    }
    if (sigaction(SIGSEGV, &sa, &previous) != 0) {
        fprintf(stderr, "avx2_view: cannot install the SIGSEGV handler\n");
        _exit(3);
    }
    installed = 1;
}
