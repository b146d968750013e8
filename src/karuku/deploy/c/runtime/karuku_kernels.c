/* karuku integer kernels (see karuku_kernels.h). */
#include "karuku_kernels.h"

#define KK_INT32_MIN (-2147483647 - 1)
#define KK_INT32_MAX 2147483647

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

int32_t kk_mbqm(int32_t acc, int32_t m0, int32_t shift) {
    int64_t x;
    if (shift >= 0) return kk_rdivpot(kk_srdhm(acc, m0), shift); /* the usual case: M < 1 */
    x = (int64_t)acc * ((int64_t)1 << -shift);
    if (x > KK_INT32_MAX) x = KK_INT32_MAX;
    if (x < KK_INT32_MIN) x = KK_INT32_MIN;
    return kk_srdhm((int32_t)x, m0);
}

int32_t kk_requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zp, int32_t lo, int32_t hi) {
    int32_t y = kk_mbqm(acc, m0, shift);
    /* |mbqm| < 2^31 and |zp| < 2^8: the sum cannot overflow for M < 1; saturate anyway for M >= 1 */
    if (y > KK_INT32_MAX - 256) y = KK_INT32_MAX - 256;
    if (y < KK_INT32_MIN + 256) y = KK_INT32_MIN + 256;
    y += zp;
    return y < lo ? lo : (y > hi ? hi : y);
}

#define KK_STORE(p, v) (*(p) = (uint8_t)((uint32_t)(v) & 0xFFu))

#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <arm_acle.h>
#define KK_SIMD 1
#endif
#include <string.h>

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
        acc = __smlad(c01, (int32_t)__sxtb16(w4), acc);
        acc = __smlad(c23, (int32_t)__sxtb16((w4 >> 8) | (w4 << 24)), acc);
    }
#else
    for (; k + 4 <= K; k += 4)
        acc += col[k] * w[k] + col[k + 1] * w[k + 2] + col[k + 2] * w[k + 1] + col[k + 3] * w[k + 3];
#endif
    for (; k < K; k++) acc += col[k] * w[k];
    return acc;
}

/* two output rows against one column: each pair of column loads feeds four SMLADs */
static void kk_dot2(const int16_t *col, const int8_t *w0, const int8_t *w1, int K, int32_t *acc0, int32_t *acc1) {
    int32_t a0 = *acc0, a1 = *acc1;
    int k = 0;
#ifdef KK_SIMD
    for (; k + 4 <= K; k += 4) {
        uint32_t x4, y4;
        int32_t c01, c23;
        memcpy(&x4, w0 + k, 4);
        memcpy(&y4, w1 + k, 4);
        memcpy(&c01, col + k, 4);
        memcpy(&c23, col + k + 2, 4);
        a0 = __smlad(c01, (int32_t)__sxtb16(x4), a0);
        a0 = __smlad(c23, (int32_t)__sxtb16((x4 >> 8) | (x4 << 24)), a0);
        a1 = __smlad(c01, (int32_t)__sxtb16(y4), a1);
        a1 = __smlad(c23, (int32_t)__sxtb16((y4 >> 8) | (y4 << 24)), a1);
    }
#else
    for (; k + 4 <= K; k += 4) {
        a0 += col[k] * w0[k] + col[k + 1] * w0[k + 2] + col[k + 2] * w0[k + 1] + col[k + 3] * w0[k + 3];
        a1 += col[k] * w1[k] + col[k + 1] * w1[k + 2] + col[k + 2] * w1[k + 1] + col[k + 3] * w1[k + 3];
    }
#endif
    for (; k < K; k++) {
        a0 += col[k] * w0[k];
        a1 += col[k] * w1[k];
    }
    *acc0 = a0;
    *acc1 = a1;
}

#define KK_DEFINE_CONV(NAME, T)                                                                              \
    void NAME(KK_CONV_ARGS) {                                                                                \
        const T *xs = (const T *)(const void *)x;                                                            \
        int CG = C / G, OCG = OC / G, K = CG * KH * KW, g, oc, oh, ow, ic, kh, kw;                           \
        for (g = 0; g < G; g++)                                                                              \
            for (oh = 0; oh < OH; oh++)                                                                      \
                for (ow = 0; ow < OW; ow++) {                                                                \
                    int16_t *col = scratch;                                                                  \
                    int ih0 = oh * SH - PH, iw0 = ow * SW - PW;                                              \
                    int inside = ih0 >= 0 && iw0 >= 0 && ih0 + KH <= H && iw0 + KW <= W;                     \
                    for (ic = 0; ic < CG; ic++) {                                                            \
                        const T *xc = xs + (long)(g * CG + ic) * H * W;                                      \
                        for (kh = 0; kh < KH; kh++) {                                                        \
                            int ih = ih0 + kh;                                                               \
                            if (inside) {                                                                    \
                                const T *row = xc + ih * W + iw0;                                            \
                                for (kw = 0; kw < KW; kw++) *col++ = (int16_t)((int32_t)row[kw] - zx);       \
                            } else {                                                                         \
                                for (kw = 0; kw < KW; kw++) {                                                \
                                    int iw = iw0 + kw; /* padding holds the zero point: x - zx = 0 */        \
                                    *col++ = (ih < 0 || ih >= H || iw < 0 || iw >= W)                        \
                                        ? 0 : (int16_t)((int32_t)xc[ih * W + iw] - zx);                      \
                                }                                                                            \
                            }                                                                                \
                        }                                                                                    \
                    }                                                                                        \
                    for (oc = g * OCG; oc + 1 < (g + 1) * OCG; oc += 2) {                                    \
                        int32_t a0 = bias[oc], a1 = bias[oc + 1];                                            \
                        kk_dot2(scratch, w + (long)oc * K, w + (long)(oc + 1) * K, K, &a0, &a1);             \
                        KK_STORE(y + ((long)oc * OH + oh) * OW + ow,                                         \
                                 kk_requantize(a0, m0[oc], shift[oc], zy, lo, hi));                          \
                        KK_STORE(y + ((long)(oc + 1) * OH + oh) * OW + ow,                                   \
                                 kk_requantize(a1, m0[oc + 1], shift[oc + 1], zy, lo, hi));                  \
                    }                                                                                        \
                    if (oc < (g + 1) * OCG)                                                                  \
                        KK_STORE(y + ((long)oc * OH + oh) * OW + ow,                                         \
                                 kk_requantize(kk_dot(scratch, w + (long)oc * K, K, bias[oc]), m0[oc],       \
                                               shift[oc], zy, lo, hi));                                      \
                }                                                                                            \
    }
KK_DEFINE_CONV(kk_conv2d_s8, int8_t)
KK_DEFINE_CONV(kk_conv2d_u8, uint8_t)

#define KK_DEFINE_LINEAR(NAME, T)                                                                            \
    void NAME(KK_LINEAR_ARGS) {                                                                              \
        const T *xs = (const T *)(const void *)x;                                                            \
        int o, i;                                                                                            \
        for (i = 0; i < IN; i++) scratch[i] = (int16_t)((int32_t)xs[i] - zx);                                \
        for (o = 0; o + 1 < OUT; o += 2) {                                                                   \
            int32_t a0 = bias[o], a1 = bias[o + 1];                                                          \
            kk_dot2(scratch, w + (long)o * IN, w + (long)(o + 1) * IN, IN, &a0, &a1);                        \
            KK_STORE(y + o, kk_requantize(a0, m0[o], shift[o], zy, lo, hi));                                 \
            KK_STORE(y + o + 1, kk_requantize(a1, m0[o + 1], shift[o + 1], zy, lo, hi));                     \
        }                                                                                                    \
        if (o < OUT)                                                                                         \
            KK_STORE(y + o, kk_requantize(kk_dot(scratch, w + (long)o * IN, IN, bias[o]), m0[o], shift[o], zy, \
                                          lo, hi));                                                          \
    }
KK_DEFINE_LINEAR(kk_linear_s8, int8_t)
KK_DEFINE_LINEAR(kk_linear_u8, uint8_t)

#define KK_DEFINE_MAXPOOL(NAME, T)                                                                           \
    void NAME(KK_MAXPOOL_ARGS) {                                                                             \
        const T *xs = (const T *)(const void *)x;                                                            \
        int c, oh, ow, kh, kw;                                                                               \
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
KK_DEFINE_MAXPOOL(kk_maxpool2d_s8, int8_t)
KK_DEFINE_MAXPOOL(kk_maxpool2d_u8, uint8_t)

#define KK_DEFINE_AVGPOOL(NAME, T)                                                                           \
    void NAME(KK_AVGPOOL_ARGS) {                                                                             \
        const T *xs = (const T *)(const void *)x;                                                            \
        int c, oh, ow, kh, kw;                                                                               \
        for (c = 0; c < C; c++)                                                                              \
            for (oh = 0; oh < OH; oh++)                                                                      \
                for (ow = 0; ow < OW; ow++) {                                                                \
                    int32_t acc = 0;                                                                         \
                    for (kh = 0; kh < KH; kh++)                                                              \
                        for (kw = 0; kw < KW; kw++)                                                          \
                            acc += (int32_t)xs[((long)c * H + oh * SH + kh) * W + ow * SW + kw] - zx;        \
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
