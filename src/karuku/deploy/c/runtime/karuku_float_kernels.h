/* karuku float kernels: the same graph as the integer kernels in single precision, for comparison builds. */
#ifndef KARUKU_FLOAT_KERNELS_H
#define KARUKU_FLOAT_KERNELS_H
#include <stdint.h>

/* The convolution gathers each window into `scratch` (im2col) like the integer kernel does. */
void kf_conv2d(const float *x, int C, int H, int W, const float *w, const float *bias, float lo, float hi, float *y,
               int OC, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int G, float *scratch);
/* The direct convolution copies a padded input into `scratch` (CG × (H + 2 PH) × (W + 2 PW)) and reads an
 * unpadded one in place; no im2col. */
void kf_conv2d_direct(const float *x, int C, int H, int W, const float *w, const float *bias, float lo, float hi,
                      float *y, int OC, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int G,
                      float *scratch);
void kf_linear(const float *x, int IN, const float *w, const float *bias, float lo, float hi, float *y, int OUT);
void kf_maxpool2d(const float *x, int C, int H, int W, float *y, int OH, int OW, int KH, int KW, int SH, int SW,
                  int PH, int PW);
/* padding (PH, PW on both sides) adds zeros to the window, whose size stays KH × KW */
void kf_avgpool2d(const float *x, int C, int H, int W, float *y, int OH, int OW, int KH, int KW, int SH, int SW,
                  int PH, int PW);
void kf_add(const float *a, const float *b, int n, float lo, float hi, float *y);
void kf_clamp(const float *x, int n, float lo, float hi, float *y);
/* y[i] = f(x[i], a): an elementwise activation (the generated code defines f) */
void kf_map(const float *x, long n, float a, float (*f)(float, float), float *y);
/* one input of a concatenation: `rows` runs of `len` floats, run r written at y + r * stride */
void kf_concat_part(const float *x, long rows, long len, long stride, float *y);
/* y[t, :] = rows[ids[t], :]; returns 1 at the first id outside 0 .. vocab - 1, else 0 */
int kf_gather_rows(const int32_t *ids, long n, const float *rows, long vocab, long dim, float *y);
/* y[d] = the sum (mean: divided by their count, at least 1) of rows[id][d] over the ids that are not `pad` */
int kf_gather_mean(const int32_t *ids, long n, const float *rows, long vocab, long dim, int32_t pad, int mean,
                   float *y);
/* y = (float)x */
void kf_cast(const int32_t *x, long n, float *y);
/* data movement as the integer kernels do it, on floats */
void kf_transpose(const float *x, int rank, const int *dims, const int *perm, float *y);
void kf_upsample(const float *x, int C, int H, int W, int SH, int SW, float *y);
void kf_pad(const float *x, int C, int H, int W, int T, int L, int B, int R, float *y);
#endif
