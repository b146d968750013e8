/* karuku integer kernels: int8/uint8 data, int32 accumulators, fixed-point requantization.
 * The C form of the integer engine specified in docs/QUANTIZATION.md; outputs are bit-identical
 * to karuku.quant.engine. Activations are stored as bytes: an int8 value v is stored as its
 * two's-complement byte, a uint8 value as itself; `_s8` / `_u8` kernels read signed / unsigned inputs.
 * Portable C99; assumes arithmetic right shift of negative integers (gcc, clang, armcc). */
#ifndef KARUKU_KERNELS_H
#define KARUKU_KERNELS_H
#include <stdint.h>

int32_t kk_requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zp, int32_t lo, int32_t hi);
int32_t kk_mbqm(int32_t acc, int32_t m0, int32_t shift);

/* Convolutions and linear layers gather (x - zx) as int16 into `scratch` (one window, or the input vector)
 * and take each output's weights as one row of K int8 values stored in groups of four as w0, w2, w1, w3
 * (the generator reorders them): on Armv7E-M two SMLAD instructions then do four MACs against the int8
 * weights unpacked by SXTB16; elsewhere a plain loop computes the same sums. */
#define KK_CONV_ARGS const uint8_t *x, int32_t zx, int C, int H, int W, const int8_t *w, const int32_t *bias, \
    const int32_t *m0, const int32_t *shift, int32_t zy, int32_t lo, int32_t hi, uint8_t *y, int OC, int OH, \
    int OW, int KH, int KW, int SH, int SW, int PH, int PW, int G, int16_t *scratch
void kk_conv2d_s8(KK_CONV_ARGS);
void kk_conv2d_u8(KK_CONV_ARGS);

/* Direct convolutions (no im2col) copy the input group into `scratch` as int16 (x - zx) with its zero
 * padding, CG × (H + 2 PH) × (W + 2 PW + 1) values, and take the weights of each pair of output channels
 * interleaved: per input channel and kernel row, KWp / 2 words (KWp = KW rounded up to even, the row padded
 * with a zero) of two int16 weights (w[2j] in the low half, w[2j + 1] in the high half), each word of the
 * first channel followed by the same word of the second; a group's odd last channel (every channel of a
 * depthwise convolution) has its words alone. */
#define KK_CONVD_ARGS const uint8_t *x, int32_t zx, int C, int H, int W, const int32_t *w, const int32_t *bias, \
    const int32_t *m0, const int32_t *shift, int32_t zy, int32_t lo, int32_t hi, uint8_t *y, int OC, int OH, \
    int OW, int KH, int KW, int SH, int SW, int PH, int PW, int G, int16_t *scratch
void kk_conv2d_direct_s8(KK_CONVD_ARGS);
void kk_conv2d_direct_u8(KK_CONVD_ARGS);

#define KK_LINEAR_ARGS const uint8_t *x, int32_t zx, int IN, const int8_t *w, const int32_t *bias, \
    const int32_t *m0, const int32_t *shift, int32_t zy, int32_t lo, int32_t hi, uint8_t *y, int OUT, \
    int16_t *scratch
void kk_linear_s8(KK_LINEAR_ARGS);
void kk_linear_u8(KK_LINEAR_ARGS);

#define KK_MAXPOOL_ARGS const uint8_t *x, int C, int H, int W, uint8_t *y, int OH, int OW, int KH, int KW, \
    int SH, int SW, int PH, int PW, int32_t qmin
void kk_maxpool2d_s8(KK_MAXPOOL_ARGS);
void kk_maxpool2d_u8(KK_MAXPOOL_ARGS);

/* padding (PH, PW on both sides) adds x - zx = 0 to the window, whose size stays KH × KW */
#define KK_AVGPOOL_ARGS const uint8_t *x, int32_t zx, int C, int H, int W, uint8_t *y, int OH, int OW, int KH, \
    int KW, int SH, int SW, int PH, int PW, int32_t m0, int32_t shift, int32_t zy, int32_t lo, int32_t hi
void kk_avgpool2d_s8(KK_AVGPOOL_ARGS);
void kk_avgpool2d_u8(KK_AVGPOOL_ARGS);

/* a and b may have different signedness: 2 bits select the variant (a signed, b signed). From 1024 elements on,
 * each input's 256 possible rescaled values are tabulated first (2 KiB of stack). */
void kk_add(const uint8_t *a, int a_signed, int32_t za, const uint8_t *b, int b_signed, int32_t zb, int n,
            int32_t left_shift, int32_t a_m0, int32_t a_shift, int32_t b_m0, int32_t b_shift, int32_t m0,
            int32_t shift, int32_t zy, int32_t lo, int32_t hi, uint8_t *y);
void kk_clamp(const uint8_t *x, int x_signed, int n, int32_t lo, int32_t hi, uint8_t *y);

/* y[i] = table[x[i]]: a 256-entry table indexed by the stored byte (activations, requantization) */
void kk_lut(const uint8_t *x, const uint8_t *table, long n, uint8_t *y);
/* One input of a concatenation: `rows` runs of `len` bytes, run r written at y + r * stride, through `table`
 * (NULL: copied as they are) */
void kk_concat_part(const uint8_t *x, const uint8_t *table, long rows, long len, long stride, uint8_t *y);

#include "kk_tokens.h"
/* A bag of token embeddings: y[d] = requantize(sum of the int8 rows[id][d] of the ids that are not `pad` (-1: none
 * is), by m0[n], shift[n] for their count n), zy for a bag of nothing; returns 1 at an id outside the table. */
int kk_gather_mean(const int32_t *ids, long n, const int8_t *rows, long vocab, long dim, int32_t pad,
                   const int32_t *m0, const int32_t *shift, int32_t zy, int32_t lo, int32_t hi, uint8_t *y);

/* Data movement, on elements of `size` bytes (1 for the integers, 4 for the float build). */
/* y = x with its `rank` dimensions (sizes `dims`) permuted: output dimension k is input dimension perm[k] */
void kk_transpose(const void *x, int size, int rank, const int *dims, const int *perm, void *y);
/* nearest-neighbour upsampling of C × H × W by whole factors: y[c, i, j] = x[c, i / SH, j / SW] */
void kk_upsample(const void *x, int size, int C, int H, int W, int SH, int SW, void *y);
/* C × H × W padded to C × (T + H + B) × (L + W + R) with the element at `fill` */
void kk_pad(const void *x, int size, int C, int H, int W, int T, int L, int B, int R, const void *fill, void *y);
#endif
