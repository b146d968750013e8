/* karuku's loops beside CMSIS-NN: the ops CMSIS-NN has no int8 kernel for in the integer engine's form.
 * int8 NHWC data; shifts in TFLite's convention (left-positive), requantized by CMSIS-NN's own rule. */
#ifndef KARUKU_CMSIS_H
#define KARUKU_CMSIS_H
#include <stdint.h>

/* global average pool: y[c] = clamp(zy + requantize(sum_p (x[p][c] - zx), m0, shift)) over P pixels */
void kc_mean_s8(const int8_t *x, int P, int C, int32_t zx, int32_t m0, int32_t shift, int32_t zy, int8_t *y);
/* standalone ReLU / ReLU6 */
void kc_clamp_s8(const int8_t *x, int n, int32_t lo, int32_t hi, int8_t *y);
/* a flatten in the engine's C-major order: NHWC -> NCHW */
void kc_nhwc_to_nchw(const int8_t *x, int H, int W, int C, int8_t *y);
#endif
