/* karuku's loops beside CMSIS-NN (see karuku_cmsis.h). */
#include <string.h>
#include "arm_nnsupportfunctions.h"
#include "karuku_cmsis.h"
#include "kk_tokens.inc"

void kc_mean_s8(const int8_t *x, int P, int C, int32_t zx, int32_t m0, int32_t shift, int32_t zy, int8_t *y) {
    int c, p;
    for (c = 0; c < C; c++) {
        int32_t acc = -zx * P, v;
        for (p = 0; p < P; p++) acc += x[(long)p * C + c];
        v = arm_nn_requantize(acc, m0, shift) + zy;
        y[c] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
}

void kc_clamp_s8(const int8_t *x, int n, int32_t lo, int32_t hi, int8_t *y) {
    int i;
    for (i = 0; i < n; i++) {
        int32_t v = x[i];
        y[i] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
    }
}

void kc_lut_s8(const int8_t *x, const int8_t *table, long n, int8_t *y) {
    long i;
    for (i = 0; i < n; i++) y[i] = table[(uint8_t)x[i]];
}

void kc_concat_lut_s8(const int8_t *x, const int8_t *table, long outer, long inner, long stride, long start,
                      int8_t *y) {
    long o, k;
    for (o = 0; o < outer; o++) {
        const int8_t *src = x + o * inner;
        int8_t *dst = y + o * stride + start;
        for (k = 0; k < inner; k++) dst[k] = table[(uint8_t)src[k]];
    }
}

void kc_upsample_s8(const int8_t *x, int H, int W, int C, int SH, int SW, int8_t *y) {
    int i, j;
    for (i = 0; i < H * SH; i++)
        for (j = 0; j < W * SW; j++)
            memcpy(y + ((long)i * W * SW + j) * C, x + ((long)(i / SH) * W + j / SW) * C, (size_t)C);
}
