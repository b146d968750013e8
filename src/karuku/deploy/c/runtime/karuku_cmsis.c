/* karuku's loops beside CMSIS-NN (see karuku_cmsis.h). */
#include "arm_nnsupportfunctions.h"
#include "karuku_cmsis.h"

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

void kc_nhwc_to_nchw(const int8_t *x, int H, int W, int C, int8_t *y) {
    int c, p;
    for (c = 0; c < C; c++)
        for (p = 0; p < H * W; p++) y[(long)c * H * W + p] = x[(long)p * C + c];
}
