/* karuku integer kernels (see karuku_kernels.h). */
#include "karuku_kernels.h"

#define KK_INT32_MIN (-2147483647 - 1)
#define KK_INT32_MAX 2147483647

/* the general requantization is the rare path of every kernel's inner loop: kept out of line so that
 * inlining it into each call site does not grow the code (by 5.7 KB on Cortex-M4) */
#if defined(__GNUC__)
#define KK_NOINLINE __attribute__((noinline))
#else
#define KK_NOINLINE
#endif

/* Requantization: acc * M0 * 2^-(31 + shift). By default rounded once, half up (the integer
 * engine's "single" rule); a project generated from a model with rounding "double" defines
 * KK_DOUBLE_ROUNDING at the top of this file and gets Jacob et al.'s / gemmlowp's two roundings. */
#ifdef KK_DOUBLE_ROUNDING
/* gemmlowp SaturatingRoundingDoublingHighMul: (a*b + nudge) / 2^31, the division truncating toward zero.
 * Written with shifts of the magnitude: a 64-bit division is a slow library call on 32-bit cores. */
static int32_t kk_srdhm(int32_t a, int32_t b) {
    int64_t ab, num;
    if (a == KK_INT32_MIN && b == KK_INT32_MIN) return KK_INT32_MAX;
    ab = (int64_t)a * (int64_t)b;
    num = ab + (ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)));
    return (int32_t)(num >= 0 ? (num >> 31) : -((-num) >> 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^e rounded half away from zero, e in 0..31, in 32-bit arithmetic */
static int32_t kk_rdivpot(int32_t x, int32_t e) {
    uint32_t mask = (1u << e) - 1u;
    int32_t remainder = (int32_t)((uint32_t)x & mask);
    int32_t threshold = (int32_t)(mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

KK_NOINLINE int32_t kk_mbqm(int32_t acc, int32_t m0, int32_t shift) {
    int64_t x;
    if (shift >= 0) return kk_rdivpot(kk_srdhm(acc, m0), shift); /* the usual case: M < 1 */
    x = (int64_t)acc * ((int64_t)1 << -shift);
    if (x > KK_INT32_MAX) x = KK_INT32_MAX;
    if (x < KK_INT32_MIN) x = KK_INT32_MIN;
    return kk_srdhm((int32_t)x, m0);
}
#else
/* floor((p + 2^(k-1)) / 2^k) with p = acc * M0 (|p| < 2^62) and k = 31 + shift in 0..62 */
KK_NOINLINE int32_t kk_mbqm(int32_t acc, int32_t m0, int32_t shift) {
    int64_t p = (int64_t)acc * (int64_t)m0;
    int32_t k = 31 + shift;
    if (k > 0) p = (p + ((int64_t)1 << (k - 1))) >> k;
    if (p > KK_INT32_MAX) p = KK_INT32_MAX;
    if (p < KK_INT32_MIN) p = KK_INT32_MIN;
    return (int32_t)p;
}
#endif

KK_NOINLINE int32_t kk_requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zp, int32_t lo, int32_t hi) {
    int32_t y = kk_mbqm(acc, m0, shift);
    /* |mbqm| < 2^31 and |zp| < 2^8: the sum cannot overflow for M < 1; saturate anyway for M >= 1 */
    if (y > KK_INT32_MAX - 256) y = KK_INT32_MAX - 256;
    if (y < KK_INT32_MIN + 256) y = KK_INT32_MIN + 256;
    y += zp;
    return y < lo ? lo : (y > hi ? hi : y);
}

#define KK_STORE(p, v) (*(p) = (uint8_t)((uint32_t)(v) & 0xFFu))

/* One output channel's requantization, set up once per channel. For shift 1..31 and M0 >= 0 (every
 * multiplier below 1/2 that quantize_multiplier makes) the requantization is one 64-bit multiply-add
 * whose high word, shifted right by e - 1 (e = shift), is the result:
 *   single: floor((a*M0 + 2^(30+e)) / 2^(31+e))  (half up: one SMLAL, then the shift)
 *   double: SRDHM(a, M0) = floor((a*M0 + 2^30) / 2^31) and RoundingDivideByPOT(x, e) =
 *     floor((x + 2^(e-1) - [x < 0]) / 2^e) fold into floor((a*M0 + 2^30 + 2^(30+e) - [a < 0] 2^31) / 2^(31+e))
 *     ([x < 0] may be read as [a < 0]: they differ only where x = 0, which rounds to 0 either way).
 * Other multipliers take kk_requantize. */
typedef struct {
    uint32_t c_lo;
    int32_t c_hi, m0, shift, e1; /* e1 = shift - 1, or -1: the general path */
} kk_chan;

#ifdef KK_DOUBLE_ROUNDING
#define KK_NEG_NUDGE(a) ((a) < 0 ? ((int64_t)1 << 31) : 0)
#else
#define KK_NEG_NUDGE(a) 0
#endif

static inline void kk_chan_init(kk_chan *q, int32_t m0, int32_t shift) {
    q->m0 = m0;
    q->shift = shift;
    q->e1 = (shift >= 1 && shift <= 31 && m0 >= 0) ? shift - 1 : -1;
    /* the constant c as its two words, without a 64-bit shift */
    q->c_hi = shift >= 2 && q->e1 >= 0 ? (int32_t)1 << (shift - 2) : 0;
#ifdef KK_DOUBLE_ROUNDING
    q->c_lo = shift == 1 ? 0xC0000000u : 0x40000000u; /* c = 2^30 + 2^(30+e) */
#else
    q->c_lo = shift == 1 ? 0x80000000u : 0u; /* c = 2^(30+e) */
#endif
}

static inline int32_t kk_rq(int32_t acc, const kk_chan *q, int32_t zy, int32_t lo, int32_t hi) {
    if (q->e1 >= 0) {
        int64_t t = (int64_t)acc * q->m0 + (int64_t)(((uint64_t)(uint32_t)q->c_hi << 32) | q->c_lo)
                    - KK_NEG_NUDGE(acc);
        int32_t y = ((int32_t)(t >> 32) >> q->e1) + zy; /* |y - zy| < 2^30: no overflow */
        return y < lo ? lo : (y > hi ? hi : y);
    }
    return kk_requantize(acc, q->m0, q->shift, zy, lo, hi);
}

/* kk_rq's usual path without the clamp (q->e1 >= 0 only) */
static inline int32_t kk_rq_raw(int32_t acc, const kk_chan *q, int32_t zy) {
    int64_t t = (int64_t)acc * q->m0 + (int64_t)(((uint64_t)(uint32_t)q->c_hi << 32) | q->c_lo)
                - KK_NEG_NUDGE(acc);
    return ((int32_t)(t >> 32) >> q->e1) + zy;
}

#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <arm_acle.h>
#define KK_SIMD 1
/* (w0, w2) and (w1, w3) of four packed int8 values, sign-extended to int16 pairs */
#define KK_SX02(v) ((int32_t)__sxtb16(v))
static __inline__ int32_t kk_sx13(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return (int32_t)r;
}
#endif
#include <string.h>

/* kk_rq when the clamp is the whole uint8 / int8 range and the channel takes the usual path (q->e1 >= 0) */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#define KK_SAT_U8(v, q) (int32_t)__usat(kk_rq_raw(v, &q, zy), 8)
#define KK_SAT_S8(v, q) __ssat(kk_rq_raw(v, &q, zy), 8)
#else
#define KK_SAT_U8(v, q) kk_rq(v, &q, zy, 0, 255)
#define KK_SAT_S8(v, q) kk_rq(v, &q, zy, -128, 127)
#endif

/* the portable paths' four MACs of int16 values c[k..k+3] with a group of four weights stored as
 * w0, w2, w1, w3 (the SIMD paths' order, see kk_dot) */
#define KK_MAC4(c, w, k) \
    ((c)[k] * (w)[k] + (c)[(k) + 1] * (w)[(k) + 2] + (c)[(k) + 2] * (w)[(k) + 1] + (c)[(k) + 3] * (w)[(k) + 3])

/* acc + the dot product of K int16 values `col` with a weight row stored in groups of four as
 * w0, w2, w1, w3 (the tail in natural order): SXTB16 then yields the pairs (w0, w1) and (w2, w3),
 * which SMLAD multiplies with the pairs (c0, c1) and (c2, c3) read straight from the column. */
static int32_t kk_dot(const int16_t *col, const int8_t *w, int K, int32_t acc) {
    int k = 0;
#ifdef KK_SIMD
    for (; k + 4 <= K; k += 4) {
        uint32_t w4;
        int32_t c01, c23;
        memcpy(&w4, w + k, 4);
        memcpy(&c01, col + k, 4);
        memcpy(&c23, col + k + 2, 4);
        acc = __smlad(c01, KK_SX02(w4), acc);
        acc = __smlad(c23, kk_sx13(w4), acc);
    }
#else
    for (; k + 4 <= K; k += 4)
        acc += KK_MAC4(col, w, k);
#endif
    for (; k < K; k++) acc += col[k] * w[k];
    return acc;
}

/* two weight rows against one column (a[0] row w0, a[1] row w1), or one row against two columns
 * (a[0] column c0, a[1] column c1): each load feeds two SMLADs */
static void kk_dot2(const int16_t *col, const int8_t *w0, const int8_t *w1, int K, int32_t *a) {
    int32_t a0 = a[0], a1 = a[1];
    int k = 0;
#ifdef KK_SIMD
    for (; k + 4 <= K; k += 4) {
        uint32_t x4, y4;
        int32_t c01, c23;
        memcpy(&x4, w0 + k, 4);
        memcpy(&y4, w1 + k, 4);
        memcpy(&c01, col + k, 4);
        memcpy(&c23, col + k + 2, 4);
        a0 = __smlad(c01, KK_SX02(x4), a0);
        a0 = __smlad(c23, kk_sx13(x4), a0);
        a1 = __smlad(c01, KK_SX02(y4), a1);
        a1 = __smlad(c23, kk_sx13(y4), a1);
    }
#else
    for (; k + 4 <= K; k += 4) {
        a0 += KK_MAC4(col, w0, k);
        a1 += KK_MAC4(col, w1, k);
    }
#endif
    for (; k < K; k++) {
        a0 += col[k] * w0[k];
        a1 += col[k] * w1[k];
    }
    a[0] = a0;
    a[1] = a1;
}

static void kk_dot2c(const int16_t *c0, const int16_t *c1, const int8_t *w, int K, int32_t *a) {
    int32_t a0 = a[0], a1 = a[1];
    int k = 0;
#ifdef KK_SIMD
    for (; k + 4 <= K; k += 4) {
        uint32_t w4;
        int32_t p01, p23, q01, q23, wa, wb;
        memcpy(&w4, w + k, 4);
        memcpy(&p01, c0 + k, 4);
        memcpy(&p23, c0 + k + 2, 4);
        memcpy(&q01, c1 + k, 4);
        memcpy(&q23, c1 + k + 2, 4);
        wa = KK_SX02(w4);
        wb = kk_sx13(w4);
        a0 = __smlad(p01, wa, a0);
        a0 = __smlad(p23, wb, a0);
        a1 = __smlad(q01, wa, a1);
        a1 = __smlad(q23, wb, a1);
    }
#else
    for (; k + 4 <= K; k += 4) {
        a0 += KK_MAC4(c0, w, k);
        a1 += KK_MAC4(c1, w, k);
    }
#endif
    for (; k < K; k++) {
        a0 += c0[k] * w[k];
        a1 += c1[k] * w[k];
    }
    a[0] = a0;
    a[1] = a1;
}

/* four weight rows (w0, w0 + K, w0 + 2K, w0 + 3K) against one column: a[r] += col · row r */
static void kk_dot4(const int16_t *col, const int8_t *w0, int K, int32_t *a) {
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    const int8_t *w1 = w0 + K, *w2 = w0 + 2 * K, *w3 = w0 + 3 * K;
    int k = 0;
#ifdef KK_SIMD
    if (K >= 4) { /* written out: each pair of column words feeds eight SMLADs; two such steps per iteration */
        const int16_t *c = col;
        const int8_t *wp = w0, *wq = w2;
        int n = K >> 3;
        uint32_t c01, c23, t, u;
#define KK_DOT4_STEP                                                                                         \
    "ldr %[c01], [%[c]], #4\n\t"                                                                             \
    "ldr %[c23], [%[c]], #4\n\t"                                                                             \
    "ldr %[t], [%[wp], %[kw]]\n\t"                                                                           \
    "sxtb16 %[u], %[t]\n\t"                                                                                  \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                          \
    "smlad %[a1], %[c01], %[u], %[a1]\n\t"                                                                   \
    "smlad %[a1], %[c23], %[t], %[a1]\n\t"                                                                   \
    "ldr %[t], [%[wp]], #4\n\t"                                                                              \
    "sxtb16 %[u], %[t]\n\t"                                                                                  \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                          \
    "smlad %[a0], %[c01], %[u], %[a0]\n\t"                                                                   \
    "smlad %[a0], %[c23], %[t], %[a0]\n\t"                                                                   \
    "ldr %[t], [%[wq], %[kw]]\n\t"                                                                           \
    "sxtb16 %[u], %[t]\n\t"                                                                                  \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                          \
    "smlad %[a3], %[c01], %[u], %[a3]\n\t"                                                                   \
    "smlad %[a3], %[c23], %[t], %[a3]\n\t"                                                                   \
    "ldr %[t], [%[wq]], #4\n\t"                                                                              \
    "sxtb16 %[u], %[t]\n\t"                                                                                  \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                          \
    "smlad %[a2], %[c01], %[u], %[a2]\n\t"                                                                   \
    "smlad %[a2], %[c23], %[t], %[a2]\n\t"
#define KK_DOT4_OPS                                                                                          \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [wp] "+r"(wp), [wq] "+r"(wq), [c] "+r"(c), \
      [n] "+r"(n), [c01] "=&r"(c01), [c23] "=&r"(c23), [t] "=&r"(t), [u] "=&r"(u)                            \
    : [kw] "r"(K)                                                                                            \
    : "cc", "memory"
        if (n > 0)
            __asm__ volatile("1:\n\t" KK_DOT4_STEP KK_DOT4_STEP "subs %[n], %[n], #1\n\t"
                                                                "bne 1b" KK_DOT4_OPS);
        if (K & 4) __asm__ volatile(KK_DOT4_STEP KK_DOT4_OPS);
        k = K & ~3;
    }
#else
    for (; k + 4 <= K; k += 4) {
        a0 += KK_MAC4(col, w0, k);
        a1 += KK_MAC4(col, w1, k);
        a2 += KK_MAC4(col, w2, k);
        a3 += KK_MAC4(col, w3, k);
    }
#endif
    for (; k < K; k++) {
        a0 += col[k] * w0[k];
        a1 += col[k] * w1[k];
        a2 += col[k] * w2[k];
        a3 += col[k] * w3[k];
    }
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
}

/* two columns (pixels, c1 = c0 + K) against two weight rows (channels, w1 = w0 + K):
 * a = {c0·w0, c0·w1, c1·w0, c1·w1}; per four MACs of each pair, two weight loads unpacked by SXTB16 and four column loads feed eight SMLADs */
static inline void kk_dot22(const int16_t *c0, const int8_t *w0, int K, int32_t *a) {
    int32_t a00 = a[0], a01 = a[1], a10 = a[2], a11 = a[3];
    const int16_t *c1 = c0 + K;
    const int8_t *w1 = w0 + K;
    int k = 0;
#ifdef KK_SIMD
    if (K >= 4) { /* written out: the compiler's version spills (it keeps four pointers) */
        const int16_t *c = c0;
        const int8_t *w = w0;
        int n = K >> 2, kc = 2 * K;
        uint32_t t0, t1, t2, t3, t4;
        __asm__ volatile("1:\n\t"
                         "ldr %[t0], [%[w], %[kw]]\n\t"
                         "ldr %[t1], [%[w]], #4\n\t"
                         "sxtb16 %[t2], %[t1]\n\t"
                         "sxtb16 %[t1], %[t1], ror #8\n\t"
                         "sxtb16 %[t3], %[t0]\n\t"
                         "sxtb16 %[t0], %[t0], ror #8\n\t"
                         "ldr %[t4], [%[c], %[kc]]\n\t"
                         "smlad %[a10], %[t4], %[t2], %[a10]\n\t"
                         "smlad %[a11], %[t4], %[t3], %[a11]\n\t"
                         "ldr %[t4], [%[c]], #4\n\t"
                         "smlad %[a00], %[t4], %[t2], %[a00]\n\t"
                         "smlad %[a01], %[t4], %[t3], %[a01]\n\t"
                         "ldr %[t4], [%[c], %[kc]]\n\t"
                         "smlad %[a10], %[t4], %[t1], %[a10]\n\t"
                         "smlad %[a11], %[t4], %[t0], %[a11]\n\t"
                         "ldr %[t4], [%[c]], #4\n\t"
                         "smlad %[a00], %[t4], %[t1], %[a00]\n\t"
                         "smlad %[a01], %[t4], %[t0], %[a01]\n\t"
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b"
                         : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [w] "+r"(w),
                           [c] "+r"(c), [n] "+r"(n), [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2),
                           [t3] "=&r"(t3), [t4] "=&r"(t4)
                         : [kw] "r"(K), [kc] "r"(kc)
                         : "cc", "memory");
        k = K & ~3;
    }
#else
    for (; k + 4 <= K; k += 4) {
        a00 += KK_MAC4(c0, w0, k);
        a01 += KK_MAC4(c0, w1, k);
        a10 += KK_MAC4(c1, w0, k);
        a11 += KK_MAC4(c1, w1, k);
    }
#endif
    for (; k < K; k++) {
        a00 += c0[k] * w0[k];
        a01 += c0[k] * w1[k];
        a10 += c1[k] * w0[k];
        a11 += c1[k] * w1[k];
    }
    a[0] = a00;
    a[1] = a01;
    a[2] = a10;
    a[3] = a11;
}

/* the window of output pixel p of group g as int16 (x - zx); padding holds the zero point: x - zx = 0 */
#define KK_DEFINE_GATHER(NAME, T)                                                                            \
    static void NAME(const T *xs, int32_t zx, int H, int W, int CG, int g, int p, int OW, int KH, int KW,     \
                     int SH, int SW, int PH, int PW, int16_t *col) {                                         \
        int oh = p / OW, ow = p - oh * OW, ic, kh, kw;                                                       \
        int ih0 = oh * SH - PH, iw0 = ow * SW - PW;                                                          \
        if (KH == 1 && KW == 1 && PH == 0 && PW == 0) { /* 1×1: one value per channel, H·W apart */          \
            const T *xp = xs + (long)g * CG * H * W + ih0 * W + iw0;                                          \
            long hw = (long)H * W;                                                                           \
            for (ic = 0; ic < CG; ic++, xp += hw) *col++ = (int16_t)((int32_t)*xp - zx);                     \
            return;                                                                                          \
        }                                                                                                    \
        int inside = ih0 >= 0 && iw0 >= 0 && ih0 + KH <= H && iw0 + KW <= W;                                 \
        for (ic = 0; ic < CG; ic++) {                                                                        \
            const T *xc = xs + (long)(g * CG + ic) * H * W;                                                  \
            for (kh = 0; kh < KH; kh++) {                                                                    \
                int ih = ih0 + kh;                                                                           \
                if (inside) {                                                                                \
                    const T *row = xc + ih * W + iw0;                                                        \
                    for (kw = 0; kw < KW; kw++) *col++ = (int16_t)((int32_t)row[kw] - zx);                         \
                } else if (ih < 0 || ih >= H) {                                                              \
                    for (kw = 0; kw < KW; kw++) *col++ = 0;                                                  \
                } else {                                                                                     \
                    for (kw = 0; kw < KW; kw++) {                                                            \
                        int iw = iw0 + kw;                                                                   \
                        *col++ = (iw < 0 || iw >= W) ? 0 : (int16_t)((int32_t)xc[ih * W + iw] - zx);         \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }
KK_DEFINE_GATHER(kk_gather_s8, int8_t)
KK_DEFINE_GATHER(kk_gather_u8, uint8_t)

/* Pixels in tiles of KK_TILE: their windows are gathered once, then each pair of channels (requantization
 * set up once per tile) takes the tile's pixels two at a time, four dot products in one pass (CMSIS-NN's
 * 2×2 kernel); an odd last pixel or channel takes the 2×1 / 1×2 kernels. */
#define KK_TILE 4
/* the tile's pixels two at a time against the channel pair, each output stored by STORE */
#define KK_C_PAIRS(STORE)                                                                                    \
    for (t = 0; t + 1 < n; t += 2) {                                                                         \
        const int16_t *c0 = scratch + t * K;                                                                 \
        int32_t a[4];                                                                                        \
        a[0] = a[2] = bias[oc];                                                                              \
        a[1] = a[3] = bias[ob];                                                                              \
        if (two) {                                                                                           \
            kk_dot22(c0, w0, K, a);                                                                          \
            KK_STORE(y1 + t, STORE(a[1], q1));                                                               \
            KK_STORE(y1 + t + 1, STORE(a[3], q1));                                                           \
        } else {                                                                                             \
            kk_dot2c(c0, c0 + K, w0, K, a + 1); /* a[1]: pixel t, a[2]: pixel t + 1 */                        \
            a[0] = a[1];                                                                                     \
        }                                                                                                    \
        KK_STORE(y0 + t, STORE(a[0], q0));                                                                   \
        KK_STORE(y0 + t + 1, STORE(a[2], q0));                                                               \
    }
#define KK_C_U8(v, q) KK_SAT_U8(v, q)
#define KK_C_S8(v, q) KK_SAT_S8(v, q)
#define KK_C_RQ(v, q) kk_rq(v, &q, zy, lo, hi)
#define KK_DEFINE_CONV(NAME, T, GATHER)                                                                      \
    void NAME(KK_CONV_ARGS) {                                                                                \
        const T *xs = (const T *)(const void *)x;                                                            \
        int CG = C / G, OCG = OC / G, K = CG * KH * KW, P = OH * OW, g, oc, p, t, n, sat;                    \
        for (g = 0; g < G; g++) {                                                                            \
            int oc1 = (g + 1) * OCG;                                                                         \
            for (p = 0; p < P; p += KK_TILE) {                                                               \
                n = P - p < KK_TILE ? P - p : KK_TILE;                                                       \
                for (t = 0; t < n; t++) GATHER(xs, zx, H, W, CG, g, p + t, OW, KH, KW, SH, SW, PH, PW, scratch + t * K); \
                for (oc = g * OCG; oc < oc1; oc += 2) {                                                      \
                    int two = oc + 1 < oc1, ob = two ? oc + 1 : oc;                                          \
                    const int8_t *w0 = w + (long)oc * K;                                                     \
                    uint8_t *y0 = y + (long)oc * P + p, *y1 = y + (long)ob * P + p;                          \
                    kk_chan q0, q1;                                                                          \
                    kk_chan_init(&q0, m0[oc], shift[oc]);                                                    \
                    kk_chan_init(&q1, m0[ob], shift[ob]);                                                    \
                    sat = q0.e1 < 0 || q1.e1 < 0 ? 0 : lo == 0 && hi == 255 ? 1 : lo == -128 && hi == 127 ? 2 : 0; \
                    if (sat == 1) {                                                                          \
                        KK_C_PAIRS(KK_C_U8)                                                                  \
                    } else if (sat == 2) {                                                                   \
                        KK_C_PAIRS(KK_C_S8)                                                                  \
                    } else {                                                                                 \
                        KK_C_PAIRS(KK_C_RQ)                                                                  \
                    }                                                                                        \
                    if (t < n) {                                                                             \
                        const int16_t *c0 = scratch + t * K;                                                 \
                        int32_t a[2];                                                                        \
                        a[0] = bias[oc];                                                                     \
                        if (two) {                                                                           \
                            a[1] = bias[ob];                                                                 \
                            kk_dot2(c0, w0, w0 + K, K, a);                                                   \
                            KK_STORE(y1 + t, kk_rq(a[1], &q1, zy, lo, hi));                                  \
                        } else {                                                                             \
                            a[0] = kk_dot(c0, w0, K, a[0]);                                                  \
                        }                                                                                    \
                        KK_STORE(y0 + t, kk_rq(a[0], &q0, zy, lo, hi));                                      \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }
KK_DEFINE_CONV(kk_conv2d_s8, int8_t, kk_gather_s8)
KK_DEFINE_CONV(kk_conv2d_u8, uint8_t, kk_gather_u8)

/* Direct convolution (no im2col): the input group is copied once, as int16 x - zx with its zero padding
 * and one spare column, into `scratch` (CG × (H + 2 PH) × (W + 2 PW + 1)); each output reads its window
 * straight from those rows. Each kernel row is padded to an even width KWp with a zero weight (it meets
 * the spare column) and stored as KWp / 2 words of two int16 weights (w[2j] low, w[2j + 1] high), the
 * words of two output channels interleaved (channel pair, input channel, kernel row, word, channel; an
 * odd last channel has its words alone), so one SMLAD multiplies a weight word with the two input
 * values at the same offset. Four neighbouring output pixels × two channels per pass. */
#define KK_W_LO(v) ((int32_t)(int16_t)(uint16_t)((uint32_t)(v) & 0xFFFFu))
#define KK_W_HI(v) ((int32_t)(v) >> 16)

/* a[0..7] += pixels 0..3 (at xr, xr + SW, ...) × the channel pair (a[2p] first channel, a[2p + 1] second);
 * the window's NR = KH × CG rows (kernel row, then input channel) lie Wp values apart */
#if defined(__GNUC__)
#define KK_INLINE static __inline__ __attribute__((always_inline))
#else
#define KK_INLINE static
#endif
KK_INLINE void kk_block4(const int16_t *xr, int Wp, const int32_t *wp, int NR, int KWp, int SW, int32_t *a) {
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6], a7 = a[7];
    int row, j;
#ifdef KK_SIMD
    if ((SW == 1 || SW == 2) && (KWp == 6 || KWp == 4)) {
        /* one row per iteration: per weight word pair (LDRD), four input words (an unaligned LDR at odd
         * pixels) feed eight SMLADs; the row stride and the end come from memory (no register is left) */
        const int16_t *r = xr;
        const int32_t *w = wp, *wend = wp + NR * KWp;
        int32_t stride = 2 * Wp; /* bytes */
        uint32_t wa, wb, x;
/* the weight word pair at byte offset O of the row, pixels S bytes apart (2 SW) */
#define KK_D_STEP(O, S)                                                                                      \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"                                                                      \
    "ldr %[x], [%[r], #" #O "]\n\t"                                                                          \
    "smlad %[a0], %[x], %[wa], %[a0]\n\t"                                                                    \
    "smlad %[a1], %[x], %[wb], %[a1]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+" #S "]\n\t"                                                                   \
    "smlad %[a2], %[x], %[wa], %[a2]\n\t"                                                                    \
    "smlad %[a3], %[x], %[wb], %[a3]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+2*" #S "]\n\t"                                                                 \
    "smlad %[a4], %[x], %[wa], %[a4]\n\t"                                                                    \
    "smlad %[a5], %[x], %[wb], %[a5]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+3*" #S "]\n\t"                                                                 \
    "smlad %[a6], %[x], %[wa], %[a6]\n\t"                                                                    \
    "smlad %[a7], %[x], %[wb], %[a7]\n\t"
#define KK_D_TAIL                                                                                            \
    "ldr %[x], %[st]\n\t"                                                                                    \
    "add %[r], %[r], %[x]\n\t"                                                                               \
    "ldr %[x], %[we]\n\t"                                                                                    \
    "cmp %[w], %[x]\n\t"                                                                                     \
    "bne 1b"
#define KK_D_OPS                                                                                             \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [a5] "+r"(a5),              \
      [a6] "+r"(a6), [a7] "+r"(a7), [r] "+r"(r), [w] "+r"(w), [wa] "=&r"(wa), [wb] "=&r"(wb), [x] "=&r"(x)   \
    : [st] "m"(stride), [we] "m"(wend)                                                                       \
    : "cc", "memory"
        if (SW == 1 && KWp == 6)
            __asm__ volatile("1:\n\t" KK_D_STEP(0, 2) KK_D_STEP(4, 2) KK_D_STEP(8, 2) KK_D_TAIL KK_D_OPS);
        else if (SW == 1)
            __asm__ volatile("1:\n\t" KK_D_STEP(0, 2) KK_D_STEP(4, 2) KK_D_TAIL KK_D_OPS);
        else if (KWp == 6)
            __asm__ volatile("1:\n\t" KK_D_STEP(0, 4) KK_D_STEP(4, 4) KK_D_STEP(8, 4) KK_D_TAIL KK_D_OPS);
        else
            __asm__ volatile("1:\n\t" KK_D_STEP(0, 4) KK_D_STEP(4, 4) KK_D_TAIL KK_D_OPS);
        NR = 0;
    }
#endif
    for (row = 0; row < NR; row++, xr += Wp) {
        const int16_t *s1 = xr + SW, *s2 = xr + 2 * SW, *s3 = xr + 3 * SW;
        for (j = 0; j < KWp; j += 2, wp += 2) {
            int32_t wa0 = KK_W_LO(wp[0]), wa1 = KK_W_HI(wp[0]), wb0 = KK_W_LO(wp[1]), wb1 = KK_W_HI(wp[1]);
            a0 += xr[j] * wa0 + xr[j + 1] * wa1;
            a1 += xr[j] * wb0 + xr[j + 1] * wb1;
            a2 += s1[j] * wa0 + s1[j + 1] * wa1;
            a3 += s1[j] * wb0 + s1[j + 1] * wb1;
            a4 += s2[j] * wa0 + s2[j + 1] * wa1;
            a5 += s2[j] * wb0 + s2[j + 1] * wb1;
            a6 += s3[j] * wa0 + s3[j + 1] * wa1;
            a7 += s3[j] * wb0 + s3[j + 1] * wb1;
        }
    }
    a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3; a[4] = a4; a[5] = a5; a[6] = a6; a[7] = a7;
}

/* four pixels × one channel (a group's odd last channel, or a depthwise channel), whose words are stored
 * alone: a[0], a[2], a[4], a[6] */
KK_INLINE void kk_block4_1(const int16_t *xr, int Wp, const int32_t *wp, int NR, int KWp, int SW, int32_t *a) {
    int32_t a0 = a[0], a2 = a[2], a4 = a[4], a6 = a[6];
    int row, j;
#ifdef KK_SIMD
    if ((SW == 1 || SW == 2) && (KWp == 6 || KWp == 4)) {
        const int16_t *r = xr;
        const int32_t *w = wp, *wend = wp + NR * KWp / 2;
        int32_t stride = 2 * Wp; /* bytes */
        uint32_t wa, x;
#define KK_D1_STEP(O, S)                                                                                     \
    "ldr %[wa], [%[w]], #4\n\t"                                                                              \
    "ldr %[x], [%[r], #" #O "]\n\t"                                                                          \
    "smlad %[a0], %[x], %[wa], %[a0]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+" #S "]\n\t"                                                                   \
    "smlad %[a2], %[x], %[wa], %[a2]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+2*" #S "]\n\t"                                                                 \
    "smlad %[a4], %[x], %[wa], %[a4]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+3*" #S "]\n\t"                                                                 \
    "smlad %[a6], %[x], %[wa], %[a6]\n\t"
#define KK_D1_OPS                                                                                            \
    : [a0] "+r"(a0), [a2] "+r"(a2), [a4] "+r"(a4), [a6] "+r"(a6), [r] "+r"(r), [w] "+r"(w), [wa] "=&r"(wa),  \
      [x] "=&r"(x)                                                                                           \
    : [st] "m"(stride), [we] "m"(wend)                                                                       \
    : "cc", "memory"
        if (SW == 1 && KWp == 6)
            __asm__ volatile("1:\n\t" KK_D1_STEP(0, 2) KK_D1_STEP(4, 2) KK_D1_STEP(8, 2) KK_D_TAIL KK_D1_OPS);
        else if (SW == 1)
            __asm__ volatile("1:\n\t" KK_D1_STEP(0, 2) KK_D1_STEP(4, 2) KK_D_TAIL KK_D1_OPS);
        else if (KWp == 6)
            __asm__ volatile("1:\n\t" KK_D1_STEP(0, 4) KK_D1_STEP(4, 4) KK_D1_STEP(8, 4) KK_D_TAIL KK_D1_OPS);
        else
            __asm__ volatile("1:\n\t" KK_D1_STEP(0, 4) KK_D1_STEP(4, 4) KK_D_TAIL KK_D1_OPS);
        NR = 0;
    }
#endif
    for (row = 0; row < NR; row++, xr += Wp) {
        const int16_t *s1 = xr + SW, *s2 = xr + 2 * SW, *s3 = xr + 3 * SW;
        for (j = 0; j < KWp; j += 2, wp++) {
            int32_t w0 = KK_W_LO(wp[0]), w1 = KK_W_HI(wp[0]);
            a0 += xr[j] * w0 + xr[j + 1] * w1;
            a2 += s1[j] * w0 + s1[j + 1] * w1;
            a4 += s2[j] * w0 + s2[j + 1] * w1;
            a6 += s3[j] * w0 + s3[j + 1] * w1;
        }
    }
    a[0] = a0; a[2] = a2; a[4] = a4; a[6] = a6;
}

/* five pixels × one channel (a[0..4]): a row's last five outputs in one pass, where the overlapping block of
 * four would compute eight (a depthwise 3×3 over a 5-wide map: DS-CNN's 25×5×64 layers) */
KK_INLINE void kk_block5_1(const int16_t *xr, int Wp, const int32_t *wp, int NR, int KWp, int SW, int32_t *a) {
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4];
    int row, j;
#ifdef KK_SIMD
    if ((SW == 1 || SW == 2) && (KWp == 6 || KWp == 4)) {
        const int16_t *r = xr;
        const int32_t *w = wp, *wend = wp + NR * KWp / 2;
        int32_t stride = 2 * Wp; /* bytes */
        uint32_t wa, x;
#define KK_D5_STEP(O, S)                                                                                     \
    "ldr %[wa], [%[w]], #4\n\t"                                                                              \
    "ldr %[x], [%[r], #" #O "]\n\t"                                                                          \
    "smlad %[a0], %[x], %[wa], %[a0]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+" #S "]\n\t"                                                                   \
    "smlad %[a1], %[x], %[wa], %[a1]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+2*" #S "]\n\t"                                                                 \
    "smlad %[a2], %[x], %[wa], %[a2]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+3*" #S "]\n\t"                                                                 \
    "smlad %[a3], %[x], %[wa], %[a3]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+4*" #S "]\n\t"                                                                 \
    "smlad %[a4], %[x], %[wa], %[a4]\n\t"
#define KK_D5_OPS                                                                                            \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [r] "+r"(r), [w] "+r"(w),   \
      [wa] "=&r"(wa), [x] "=&r"(x)                                                                           \
    : [st] "m"(stride), [we] "m"(wend)                                                                       \
    : "cc", "memory"
        if (SW == 1 && KWp == 6)
            __asm__ volatile("1:\n\t" KK_D5_STEP(0, 2) KK_D5_STEP(4, 2) KK_D5_STEP(8, 2) KK_D_TAIL KK_D5_OPS);
        else if (SW == 1)
            __asm__ volatile("1:\n\t" KK_D5_STEP(0, 2) KK_D5_STEP(4, 2) KK_D_TAIL KK_D5_OPS);
        else if (KWp == 6)
            __asm__ volatile("1:\n\t" KK_D5_STEP(0, 4) KK_D5_STEP(4, 4) KK_D5_STEP(8, 4) KK_D_TAIL KK_D5_OPS);
        else
            __asm__ volatile("1:\n\t" KK_D5_STEP(0, 4) KK_D5_STEP(4, 4) KK_D_TAIL KK_D5_OPS);
        NR = 0;
    }
#endif
    for (row = 0; row < NR; row++, xr += Wp) {
        for (j = 0; j < KWp; j += 2, wp++) {
            int32_t w0 = KK_W_LO(wp[0]), w1 = KK_W_HI(wp[0]);
            a0 += xr[j] * w0 + xr[j + 1] * w1;
            a1 += xr[SW + j] * w0 + xr[SW + j + 1] * w1;
            a2 += xr[2 * SW + j] * w0 + xr[2 * SW + j + 1] * w1;
            a3 += xr[3 * SW + j] * w0 + xr[3 * SW + j + 1] * w1;
            a4 += xr[4 * SW + j] * w0 + xr[4 * SW + j + 1] * w1;
        }
    }
    a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3; a[4] = a4;
}

/* three pixels × one channel (a[0..2]): a 3-wide row (or a 6-wide one in two passes) without the one-pixel path
 * (MobileNet's last depthwise layers, 6×6 and 3×3 maps) */
KK_INLINE void kk_block3_1(const int16_t *xr, int Wp, const int32_t *wp, int NR, int KWp, int SW, int32_t *a) {
    int32_t a0 = a[0], a1 = a[1], a2 = a[2];
    int row, j;
#ifdef KK_SIMD
    if ((SW == 1 || SW == 2) && (KWp == 6 || KWp == 4)) {
        const int16_t *r = xr;
        const int32_t *w = wp, *wend = wp + NR * KWp / 2;
        int32_t stride = 2 * Wp; /* bytes */
        uint32_t wa, x;
#define KK_D3_STEP(O, S)                                                                                     \
    "ldr %[wa], [%[w]], #4\n\t"                                                                              \
    "ldr %[x], [%[r], #" #O "]\n\t"                                                                          \
    "smlad %[a0], %[x], %[wa], %[a0]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+" #S "]\n\t"                                                                   \
    "smlad %[a1], %[x], %[wa], %[a1]\n\t"                                                                    \
    "ldr %[x], [%[r], #" #O "+2*" #S "]\n\t"                                                                 \
    "smlad %[a2], %[x], %[wa], %[a2]\n\t"
#define KK_D3_OPS                                                                                            \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [r] "+r"(r), [w] "+r"(w), [wa] "=&r"(wa), [x] "=&r"(x)    \
    : [st] "m"(stride), [we] "m"(wend)                                                                       \
    : "cc", "memory"
        if (SW == 1 && KWp == 6)
            __asm__ volatile("1:\n\t" KK_D3_STEP(0, 2) KK_D3_STEP(4, 2) KK_D3_STEP(8, 2) KK_D_TAIL KK_D3_OPS);
        else if (SW == 1)
            __asm__ volatile("1:\n\t" KK_D3_STEP(0, 2) KK_D3_STEP(4, 2) KK_D_TAIL KK_D3_OPS);
        else if (KWp == 6)
            __asm__ volatile("1:\n\t" KK_D3_STEP(0, 4) KK_D3_STEP(4, 4) KK_D3_STEP(8, 4) KK_D_TAIL KK_D3_OPS);
        else
            __asm__ volatile("1:\n\t" KK_D3_STEP(0, 4) KK_D3_STEP(4, 4) KK_D_TAIL KK_D3_OPS);
        NR = 0;
    }
#endif
    for (row = 0; row < NR; row++, xr += Wp) {
        for (j = 0; j < KWp; j += 2, wp++) {
            int32_t w0 = KK_W_LO(wp[0]), w1 = KK_W_HI(wp[0]);
            a0 += xr[j] * w0 + xr[j + 1] * w1;
            a1 += xr[SW + j] * w0 + xr[SW + j + 1] * w1;
            a2 += xr[2 * SW + j] * w0 + xr[2 * SW + j + 1] * w1;
        }
    }
    a[0] = a0; a[1] = a1; a[2] = a2;
}

/* one pixel × the channel pair (a[0], a[1]); with `one`, a lone channel (a[0]) whose words are stored alone */
static void kk_block1(const int16_t *xr, int Wp, const int32_t *wp, int NR, int KWp, int one, int32_t *a) {
    int32_t a0 = a[0], a1 = a[1];
    int row, j;
    int step = one ? 1 : 2; /* a lone channel's words are stored alone */
    for (row = 0; row < NR; row++, xr += Wp)
        for (j = 0; j < KWp; j += 2, wp += step) {
#ifdef KK_SIMD
            int32_t x01;
            memcpy(&x01, xr + j, 4);
            a0 = __smlad(x01, wp[0], a0);
            if (!one) a1 = __smlad(x01, wp[1], a1);
#else
            int32_t x0 = xr[j], x1 = xr[j + 1];
            a0 += x0 * KK_W_LO(wp[0]) + x1 * KK_W_HI(wp[0]);
            if (!one) a1 += x0 * KK_W_LO(wp[1]) + x1 * KK_W_HI(wp[1]);
#endif
        }
    a[0] = a0;
    a[1] = a1;
}

/* the four pixels' requantization; on Armv7E-M the clamp to the full uint8 / int8 range is USAT / SSAT */
#define KK_D_STORE_LOOP(EXPR) /* written out: no loop counter */                                           \
    KK_STORE(y0 + ow, EXPR(a[0], q0));                                                                       \
    KK_STORE(y1 + ow, EXPR(a[1], q1));                                                                       \
    KK_STORE(y0 + ow + 1, EXPR(a[2], q0));                                                                   \
    KK_STORE(y1 + ow + 1, EXPR(a[3], q1));                                                                   \
    KK_STORE(y0 + ow + 2, EXPR(a[4], q0));                                                                   \
    KK_STORE(y1 + ow + 2, EXPR(a[5], q1));                                                                   \
    KK_STORE(y0 + ow + 3, EXPR(a[6], q0));                                                                   \
    KK_STORE(y1 + ow + 3, EXPR(a[7], q1));
#define KK_D_STORE1_LOOP(EXPR) /* one channel's four pixels (a[0], a[2], a[4], a[6]) */                      \
    KK_STORE(y0 + ow, EXPR(a[0], q0));                                                                       \
    KK_STORE(y0 + ow + 1, EXPR(a[2], q0));                                                                   \
    KK_STORE(y0 + ow + 2, EXPR(a[4], q0));                                                                   \
    KK_STORE(y0 + ow + 3, EXPR(a[6], q0));
#define KK_D_STORE5_LOOP(EXPR) /* one channel's five pixels (a[0..4]) */                                   \
    KK_STORE(y0 + ow, EXPR(a[0], q0));                                                                       \
    KK_STORE(y0 + ow + 1, EXPR(a[1], q0));                                                                   \
    KK_STORE(y0 + ow + 2, EXPR(a[2], q0));                                                                   \
    KK_STORE(y0 + ow + 3, EXPR(a[3], q0));                                                                   \
    KK_STORE(y0 + ow + 4, EXPR(a[4], q0));
#define KK_D_STORE3_LOOP(EXPR) /* one channel's three pixels (a[0..2]) */                                 \
    KK_STORE(y0 + ow, EXPR(a[0], q0));                                                                       \
    KK_STORE(y0 + ow + 1, EXPR(a[1], q0));                                                                   \
    KK_STORE(y0 + ow + 2, EXPR(a[2], q0));
#define KK_D_CLAMPED(v, q) kk_rq(v, &q, zy, lo, hi)
#ifdef KK_SIMD
#define KK_D_USAT(v, q) __usat(kk_rq_raw(v, &q, zy), 8)
#define KK_D_SSAT(v, q) __ssat(kk_rq_raw(v, &q, zy), 8)
#define KK_D_STORE4                                                                                          \
    if (sat == 1) {                                                                                          \
        KK_D_STORE_LOOP(KK_D_USAT)                                                                           \
    } else if (sat == 2) {                                                                                   \
        KK_D_STORE_LOOP(KK_D_SSAT)                                                                           \
    } else {                                                                                                 \
        KK_D_STORE_LOOP(KK_D_CLAMPED)                                                                        \
    }
#define KK_D_STORE4_1                                                                                        \
    if (sat == 1) {                                                                                          \
        KK_D_STORE1_LOOP(KK_D_USAT)                                                                          \
    } else if (sat == 2) {                                                                                   \
        KK_D_STORE1_LOOP(KK_D_SSAT)                                                                          \
    } else {                                                                                                 \
        KK_D_STORE1_LOOP(KK_D_CLAMPED)                                                                       \
    }
#define KK_D_STORE5_1                                                                                        \
    if (sat == 1) {                                                                                          \
        KK_D_STORE5_LOOP(KK_D_USAT)                                                                          \
    } else if (sat == 2) {                                                                                   \
        KK_D_STORE5_LOOP(KK_D_SSAT)                                                                          \
    } else {                                                                                                 \
        KK_D_STORE5_LOOP(KK_D_CLAMPED)                                                                       \
    }
#define KK_D_STORE3_1                                                                                        \
    if (sat == 1) {                                                                                          \
        KK_D_STORE3_LOOP(KK_D_USAT)                                                                          \
    } else if (sat == 2) {                                                                                   \
        KK_D_STORE3_LOOP(KK_D_SSAT)                                                                          \
    } else {                                                                                                 \
        KK_D_STORE3_LOOP(KK_D_CLAMPED)                                                                       \
    }
#else
#define KK_D_STORE3_1 (void)sat; KK_D_STORE3_LOOP(KK_D_CLAMPED)
#define KK_D_STORE4 (void)sat; KK_D_STORE_LOOP(KK_D_CLAMPED)
#define KK_D_STORE4_1 (void)sat; KK_D_STORE1_LOOP(KK_D_CLAMPED)
#define KK_D_STORE5_1 (void)sat; KK_D_STORE5_LOOP(KK_D_CLAMPED)
#endif

/* the next block of four pixels; a last partial block overlaps the one before it (same values written twice) */
#define KK_NEXT4(ow, OW) ((ow) + 8 <= (OW) || (ow) + 4 == (OW) ? (ow) + 4 : (OW) - 4)
/* the padding loops stay loops: gcc would call memset for each row's one or two zeros */
#if defined(__GNUC__) && !defined(__clang__)
#define KK_NO_MEMSET __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define KK_NO_MEMSET
#endif
#define KK_DEFINE_CONVD(NAME, T)                                                                             \
    KK_NO_MEMSET void NAME(KK_CONVD_ARGS) {                                                                  \
        const T *xs = (const T *)(const void *)x;                                                            \
        int CG = C / G, OCG = OC / G, KWp = KW + (KW & 1), Hp = H + 2 * PH, Wp = W + 2 * PW + 1;             \
        int KC = CG * KH * KWp, P = OH * OW, g, oc, oh, ow, i, r, sat; /* KC: words per channel pair */  \
        for (g = 0; g < G; g++) {                                                                            \
            int oc1 = (g + 1) * OCG;                                                                         \
            for (r = 0; r < Hp; r++) /* padded row r of channel i at (r CG + i) Wp: a window's rows Wp apart */ \
                for (i = 0; i < CG; i++) {                                                                   \
                    const T *xc;                                                                             \
                    int16_t *d = scratch + ((long)r * CG + i) * Wp;                                          \
                    int c = 0;                                                                               \
                    if (r < PH || r >= PH + H) { /* zeros: written for the first group, kept by the others */ \
                        if (g == 0)                                                                          \
                            for (; c < Wp; c++) d[c] = 0;                                                    \
                        continue;                                                                            \
                    }                                                                                        \
                    xc = xs + ((long)(g * CG + i) * H + r - PH) * W - PW;                                    \
                    if (g == 0) {                                                                            \
                        for (; c < PW; c++) d[c] = 0;                                                        \
                        for (c = PW + W; c < Wp; c++) d[c] = 0;                                              \
                    }                                                                                        \
                    for (c = PW; c < PW + W; c++) d[c] = (int16_t)((int32_t)xc[c] - zx);                     \
                }                                                                                            \
            for (oc = g * OCG; oc < oc1; oc += 2) {                                                          \
                int ob = oc + 1 < oc1 ? oc + 1 : oc; /* an odd last channel: computed twice, same bytes */   \
                /* a group: OCG / 2 pairs of KC words, then a lone channel's KC / 2 words if OCG is odd */     \
                const int32_t *wp = w + (long)(oc - g * OCG) / 2 * KC + (long)g * ((OCG / 2) * KC + (OCG & 1) * KC / 2); \
                kk_chan q0, q1;                                                                              \
                kk_chan_init(&q0, m0[oc], shift[oc]);                                                        \
                kk_chan_init(&q1, m0[ob], shift[ob]);                                                        \
                sat = q0.e1 < 0 || q1.e1 < 0 ? 0 : lo == 0 && hi == 255 ? 1 : lo == -128 && hi == 127 ? 2 : 0;  \
                for (oh = 0; oh < OH; oh++) {                                                                \
                    const int16_t *xr = scratch + (long)oh * SH * CG * Wp;                                    \
                    uint8_t *y0 = y + (long)oc * P + oh * OW, *y1 = y + (long)ob * P + oh * OW;              \
                    if (ob == oc) { /* one channel (depthwise, or a group's odd last): blocks of 4, 5 or 3 */ \
                        for (ow = 0; ow + 3 <= OW;) { /* left 5: one block of 5; 6: 3 + 3; 7: 4 + 3 */        \
                            int32_t a[8];                                                                    \
                            int rest = OW - ow;                                                              \
                            a[0] = a[1] = a[2] = a[3] = a[4] = a[6] = bias[oc];                              \
                            if (rest == 5) {                                                                 \
                                kk_block5_1(xr + ow * SW, Wp, wp, CG * KH, KWp, SW, a);                      \
                                KK_D_STORE5_1                                                                \
                                ow += 5;                                                                     \
                            } else if (rest == 3 || rest == 6) {                                             \
                                kk_block3_1(xr + ow * SW, Wp, wp, CG * KH, KWp, SW, a);                      \
                                KK_D_STORE3_1                                                                \
                                ow += 3;                                                                     \
                            } else {                                                                         \
                                kk_block4_1(xr + ow * SW, Wp, wp, CG * KH, KWp, SW, a);                      \
                                KK_D_STORE4_1                                                                \
                                ow += 4;                                                                     \
                            }                                                                                \
                        }                                                                                    \
                    } else                                                                                   \
                        for (ow = 0; ow + 4 <= OW; ow = KK_NEXT4(ow, OW)) {                                  \
                            int32_t a[8];                                                                    \
                            a[0] = a[2] = a[4] = a[6] = bias[oc];                                            \
                            a[1] = a[3] = a[5] = a[7] = bias[ob];                                            \
                            kk_block4(xr + ow * SW, Wp, wp, CG * KH, KWp, SW, a);                            \
                            KK_D_STORE4                                                                      \
                        }                                                                                    \
                    for (; ow < OW; ow++) {                                                                  \
                        int32_t a[2];                                                                        \
                        a[0] = bias[oc];                                                                     \
                        a[1] = bias[ob];                                                                     \
                        kk_block1(xr + ow * SW, Wp, wp, CG * KH, KWp, ob == oc, a);                          \
                        KK_STORE(y0 + ow, kk_rq(a[0], &q0, zy, lo, hi));                                     \
                        if (ob != oc) KK_STORE(y1 + ow, kk_rq(a[1], &q1, zy, lo, hi));                       \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }
KK_DEFINE_CONVD(kk_conv2d_direct_s8, int8_t)
KK_DEFINE_CONVD(kk_conv2d_direct_u8, uint8_t)

#define KK_DEFINE_LINEAR(NAME, T)                                                                            \
    void NAME(KK_LINEAR_ARGS) {                                                                              \
        const T *xs = (const T *)(const void *)x;                                                            \
        int o, i;                                                                                            \
        for (i = 0; i < IN; i++) scratch[i] = (int16_t)((int32_t)xs[i] - zx);                                \
        for (o = 0; o + 4 <= OUT; o += 4) { /* four outputs per pass, then pairs */                          \
            int32_t a[4];                                                                                    \
            for (i = 0; i < 4; i++) a[i] = bias[o + i];                                                      \
            kk_dot4(scratch, w + (long)o * IN, IN, a);                                                       \
            for (i = 0; i < 4; i++) {                                                                        \
                kk_chan q;                                                                                   \
                kk_chan_init(&q, m0[o + i], shift[o + i]);                                                   \
                KK_STORE(y + o + i, kk_rq(a[i], &q, zy, lo, hi));                                            \
            }                                                                                                \
        }                                                                                                    \
        for (; o < OUT; o += 2) {                                                                            \
            int32_t a[2];                                                                                    \
            kk_chan q0, q1;                                                                                  \
            kk_chan_init(&q0, m0[o], shift[o]);                                                              \
            a[0] = bias[o];                                                                                  \
            if (o + 1 < OUT) {                                                                               \
                kk_chan_init(&q1, m0[o + 1], shift[o + 1]);                                                  \
                a[1] = bias[o + 1];                                                                          \
                kk_dot2(scratch, w + (long)o * IN, w + (long)(o + 1) * IN, IN, a);                           \
                KK_STORE(y + o + 1, kk_rq(a[1], &q1, zy, lo, hi));                                           \
            } else {                                                                                         \
                a[0] = kk_dot(scratch, w + (long)o * IN, IN, a[0]);                                          \
            }                                                                                                \
            KK_STORE(y + o, kk_rq(a[0], &q0, zy, lo, hi));                                                   \
        }                                                                                                    \
    }
KK_DEFINE_LINEAR(kk_linear_s8, int8_t)
KK_DEFINE_LINEAR(kk_linear_u8, uint8_t)

/* The common 2×2, stride 2, unpadded window has its own loop; on Armv7E-M it takes the maximum of four
 * bytes at once: USUB8 / SSUB8 set the per-byte GE flags that SEL then uses to pick the larger bytes. */
#ifdef KK_SIMD
#define KK_MAX4_u8(a, b) (__usub8((a), (b)), __sel((a), (b)))
#define KK_MAX4_s8(a, b) (__ssub8((a), (b)), __sel((a), (b)))
#endif
#define KK_DEFINE_MAXPOOL(NAME, T, SFX)                                                                      \
    void NAME(KK_MAXPOOL_ARGS) {                                                                             \
        const T *xs = (const T *)(const void *)x;                                                            \
        int c, oh, ow, kh, kw;                                                                               \
        if (KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0 && 2 * OH <= H && 2 * OW <= W) {  \
            for (c = 0; c < C; c++)                                                                          \
                for (oh = 0; oh < OH; oh++) {                                                                \
                    const T *r0 = xs + ((long)c * H + 2 * oh) * W, *r1 = r0 + W;                             \
                    uint8_t *yr = y + ((long)c * OH + oh) * OW;                                              \
                    ow = 0;                                                                                  \
                    KK_MAXPOOL_PAIRS_##SFX                                                                   \
                    for (; ow < OW; ow++) {                                                                  \
                        int32_t a = r0[2 * ow], b = r0[2 * ow + 1], d = r1[2 * ow], e = r1[2 * ow + 1];      \
                        a = a > b ? a : b;                                                                   \
                        d = d > e ? d : e;                                                                   \
                        KK_STORE(yr + ow, a > d ? a : d);                                                    \
                    }                                                                                        \
                }                                                                                            \
            return;                                                                                          \
        }                                                                                                    \
        for (c = 0; c < C; c++)                                                                              \
            for (oh = 0; oh < OH; oh++)                                                                      \
                for (ow = 0; ow < OW; ow++) {                                                                \
                    int32_t m = qmin; /* padding holds the type's minimum: it never wins */                   \
                    for (kh = 0; kh < KH; kh++) {                                                            \
                        int ih = oh * SH - PH + kh;                                                          \
                        if (ih < 0 || ih >= H) continue;                                                     \
                        for (kw = 0; kw < KW; kw++) {                                                        \
                            int iw = ow * SW - PW + kw;                                                      \
                            int32_t v;                                                                       \
                            if (iw < 0 || iw >= W) continue;                                                 \
                            v = xs[((long)c * H + ih) * W + iw];                                             \
                            if (v > m) m = v;                                                                \
                        }                                                                                    \
                    }                                                                                        \
                    KK_STORE(y + ((long)c * OH + oh) * OW + ow, m);                                          \
                }                                                                                            \
    }
#ifdef KK_SIMD
/* two outputs from four bytes of each row: the vertical maximum, then each byte against its right neighbour */
#define KK_MAXPOOL_PAIRS(MAX4)                                                                               \
    for (; ow + 1 < OW; ow += 2) {                                                                           \
        uint32_t u, v;                                                                                       \
        memcpy(&u, r0 + 2 * ow, 4);                                                                          \
        memcpy(&v, r1 + 2 * ow, 4);                                                                          \
        u = MAX4(u, v);                                                                                      \
        u = MAX4(u, u >> 8);                                                                                 \
        yr[ow] = (uint8_t)(u & 0xFFu);                                                                       \
        yr[ow + 1] = (uint8_t)((u >> 16) & 0xFFu);                                                           \
    }
#define KK_MAXPOOL_PAIRS_s8 KK_MAXPOOL_PAIRS(KK_MAX4_s8)
#define KK_MAXPOOL_PAIRS_u8 KK_MAXPOOL_PAIRS(KK_MAX4_u8)
#else
#define KK_MAXPOOL_PAIRS_s8
#define KK_MAXPOOL_PAIRS_u8
#endif
KK_DEFINE_MAXPOOL(kk_maxpool2d_s8, int8_t, s8)
KK_DEFINE_MAXPOOL(kk_maxpool2d_u8, uint8_t, u8)

#define KK_DEFINE_AVGPOOL(NAME, T)                                                                           \
    void NAME(KK_AVGPOOL_ARGS) {                                                                             \
        const T *xs = (const T *)(const void *)x;                                                            \
        int c, oh, ow, kh, kw;                                                                               \
        for (c = 0; c < C; c++)                                                                              \
            for (oh = 0; oh < OH; oh++)                                                                      \
                for (ow = 0; ow < OW; ow++) {                                                                \
                    int32_t acc = 0;                                                                         \
                    for (kh = 0; kh < KH; kh++) {                                                            \
                        int ih = oh * SH - PH + kh;                                                          \
                        if (ih < 0 || ih >= H) continue; /* padding: x - zx = 0 */                           \
                        for (kw = 0; kw < KW; kw++) {                                                        \
                            int iw = ow * SW - PW + kw;                                                      \
                            if (iw >= 0 && iw < W) acc += (int32_t)xs[((long)c * H + ih) * W + iw] - zx;     \
                        }                                                                                    \
                    }                                                                                        \
                    KK_STORE(y + ((long)c * OH + oh) * OW + ow, kk_requantize(acc, m0, shift, zy, lo, hi));  \
                }                                                                                            \
    }
KK_DEFINE_AVGPOOL(kk_avgpool2d_s8, int8_t)
KK_DEFINE_AVGPOOL(kk_avgpool2d_u8, uint8_t)

static int32_t kk_load(const uint8_t *p, int is_signed) {
    return is_signed ? (int32_t)(int8_t)*p : (int32_t)*p;
}

void kk_add(const uint8_t *a, int a_signed, int32_t za, const uint8_t *b, int b_signed, int32_t zb, int n,
            int32_t left_shift, int32_t a_m0, int32_t a_shift, int32_t b_m0, int32_t b_shift, int32_t m0,
            int32_t shift, int32_t zy, int32_t lo, int32_t hi, uint8_t *y) {
    int i;
    if (n >= 1024) { /* each input's 256 possible rescaled values once, then two table reads per element */
        int32_t ta[256], tb[256];
        kk_chan q;
        kk_chan_init(&q, m0, shift);
        for (i = 0; i < 256; i++) {
            uint8_t v = (uint8_t)i;
            ta[i] = kk_mbqm((int32_t)((kk_load(&v, a_signed) - za) * (1L << left_shift)), a_m0, a_shift);
            tb[i] = kk_mbqm((int32_t)((kk_load(&v, b_signed) - zb) * (1L << left_shift)), b_m0, b_shift);
        }
        for (i = 0; i < n; i++) KK_STORE(y + i, kk_rq(ta[a[i]] + tb[b[i]], &q, zy, lo, hi));
        return;
    }
    for (i = 0; i < n; i++) {
        int32_t a1 = kk_mbqm((int32_t)((kk_load(a + i, a_signed) - za) * (1L << left_shift)), a_m0, a_shift);
        int32_t b1 = kk_mbqm((int32_t)((kk_load(b + i, b_signed) - zb) * (1L << left_shift)), b_m0, b_shift);
        KK_STORE(y + i, kk_requantize(a1 + b1, m0, shift, zy, lo, hi));
    }
}

void kk_clamp(const uint8_t *x, int x_signed, int n, int32_t lo, int32_t hi, uint8_t *y) {
    int i;
    for (i = 0; i < n; i++) {
        int32_t v = kk_load(x + i, x_signed);
        KK_STORE(y + i, v < lo ? lo : (v > hi ? hi : v));
    }
}

void kk_lut(const uint8_t *x, const uint8_t *table, long n, uint8_t *y) {
    long i;
    for (i = 0; i < n; i++) y[i] = table[x[i]];
}

void kk_concat_part(const uint8_t *x, const uint8_t *table, long rows, long len, long stride, uint8_t *y) {
    long r;
    for (r = 0; r < rows; r++, x += len, y += stride) {
        if (table)
            kk_lut(x, table, len, y);
        else
            memcpy(y, x, (size_t)len);
    }
}

#define KK_MAX_RANK 8
/* one element of `size` bytes: a plain byte copy for the integers (memcpy with a variable size is a call) */
#define KK_COPY1(dst, src, size)                                                                             \
    do {                                                                                                     \
        if ((size) == 1) *(dst) = *(src);                                                                     \
        else memcpy((dst), (src), (size_t)(size));                                                           \
    } while (0)

void kk_transpose(const void *x, int size, int rank, const int *dims, const int *perm, void *y) {
    const uint8_t *xs = (const uint8_t *)x;
    uint8_t *ys = (uint8_t *)y;
    long stride[KK_MAX_RANK] = {0}, ostride[KK_MAX_RANK] = {0}, n = 1, i, j, inner, step;
    int idx[KK_MAX_RANK] = {0}, k;
    if (rank < 1 || rank > KK_MAX_RANK) return;
    for (k = rank - 1; k >= 0; k--) {
        stride[k] = n; /* elements between neighbours along input dimension k */
        n *= dims[k];
    }
    for (k = 0; k < rank; k++) {
        ostride[k] = stride[perm[k]];
        idx[k] = 0;
    }
    inner = dims[perm[rank - 1]];
    step = ostride[rank - 1];
    for (i = 0; i < n; i += inner) { /* one run of the last output dimension; an odometer over the others */
        long src = 0;
        for (k = 0; k < rank - 1; k++) src += idx[k] * ostride[k];
        if (size == 1)
            for (j = 0; j < inner; j++) ys[i + j] = xs[src + j * step];
        else
            for (j = 0; j < inner; j++) memcpy(ys + (i + j) * size, xs + (src + j * step) * size, (size_t)size);
        for (k = rank - 2; k >= 0 && ++idx[k] == dims[perm[k]]; k--) idx[k] = 0;
    }
}

void kk_upsample(const void *x, int size, int C, int H, int W, int SH, int SW, void *y) {
    const uint8_t *xs = (const uint8_t *)x;
    uint8_t *ys = (uint8_t *)y;
    int c, i, j, k, OW = W * SW;
    for (c = 0; c < C; c++)
        for (i = 0; i < H * SH; i++) {
            uint8_t *out = ys + ((long)c * H * SH + i) * OW * size;
            if (i % SH) { /* a repeated row: copy the one above */
                memcpy(out, out - (long)OW * size, (size_t)OW * size);
                continue;
            }
            for (j = 0; j < W; j++)
                for (k = 0; k < SW; k++)
                    KK_COPY1(out + ((long)j * SW + k) * size, xs + (((long)c * H + i / SH) * W + j) * size, size);
        }
}

void kk_pad(const void *x, int size, int C, int H, int W, int T, int L, int B, int R, const void *fill, void *y) {
    const uint8_t *xs = (const uint8_t *)x, *f = (const uint8_t *)fill;
    uint8_t *ys = (uint8_t *)y;
    int c, i, j, OH = T + H + B, OW = L + W + R;
    for (c = 0; c < C; c++)
        for (i = 0; i < OH; i++) {
            uint8_t *out = ys + ((long)c * OH + i) * OW * size;
            int inside = i >= T && i < T + H;
            for (j = 0; j < OW; j++) {
                if (inside && j == L) { /* the row of x, in one copy */
                    memcpy(out + (long)j * size, xs + ((long)c * H + i - T) * W * size, (size_t)W * size);
                    j += W - 1;
                    continue;
                }
                KK_COPY1(out + (long)j * size, f, size);
            }
        }
}
