/* karuku's loops beside CMSIS-NN: the ops CMSIS-NN has no int8 kernel for in the integer engine's form.
 * int8 NHWC data; shifts in TFLite's convention (left-positive), requantized by CMSIS-NN's own rule. */
#ifndef KARUKU_CMSIS_H
#define KARUKU_CMSIS_H
#include <stdint.h>
#include "kk_tokens.h"

/* global average pool: y[c] = clamp(zy + requantize(sum_p (x[p][c] - zx), m0, shift)) over P pixels */
void kc_mean_s8(const int8_t *x, int P, int C, int32_t zx, int32_t m0, int32_t shift, int32_t zy, int8_t *y);
/* standalone ReLU / ReLU6 */
void kc_clamp_s8(const int8_t *x, int n, int32_t lo, int32_t hi, int8_t *y);
/* a table: y[i] = table[(uint8_t)x[i]] (the engine's activations and requantizations, 256 entries by byte) */
void kc_lut_s8(const int8_t *x, const int8_t *table, long n, int8_t *y);
/* one input of a concatenation through its table: `outer` blocks of `inner` values, each to y + start within
 * an output block of `stride` values */
void kc_concat_lut_s8(const int8_t *x, const int8_t *table, long outer, long inner, long stride, long start,
                      int8_t *y);
/* nearest-neighbour upsampling of NHWC by whole factors: y[i][j] = x[i / SH][j / SW] */
void kc_upsample_s8(const int8_t *x, int H, int W, int C, int SH, int SW, int8_t *y);
#endif
