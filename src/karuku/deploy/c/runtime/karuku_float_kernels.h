/* karuku float kernels: the same graph as the integer kernels in single precision, for comparison builds. */
#ifndef KARUKU_FLOAT_KERNELS_H
#define KARUKU_FLOAT_KERNELS_H

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
void kf_avgpool2d(const float *x, int C, int H, int W, float *y, int OH, int OW, int KH, int KW, int SH, int SW);
void kf_add(const float *a, const float *b, int n, float lo, float hi, float *y);
void kf_clamp(const float *x, int n, float lo, float hi, float *y);
#endif
