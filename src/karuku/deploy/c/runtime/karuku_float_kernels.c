/* karuku float kernels (see karuku_float_kernels.h). */
#include "karuku_float_kernels.h"

static float kf_clip(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

static float kf_dot(const float *a, const float *b, int n, float acc) {
    int i;
    for (i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* two output rows against one column, as the integer kernels do */
static void kf_dot2(const float *a, const float *b0, const float *b1, int n, float *acc0, float *acc1) {
    float s0 = *acc0, s1 = *acc1;
    int i;
    for (i = 0; i < n; i++) {
        s0 += a[i] * b0[i];
        s1 += a[i] * b1[i];
    }
    *acc0 = s0;
    *acc1 = s1;
}

void kf_conv2d(const float *x, int C, int H, int W, const float *w, const float *bias, float lo, float hi, float *y,
               int OC, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int G, float *scratch) {
    int CG = C / G, OCG = OC / G, K = CG * KH * KW, g, oc, oh, ow, ic, kh, kw;
    for (g = 0; g < G; g++)
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                int j = 0;
                for (ic = 0; ic < CG; ic++) {
                    const float *xc = x + (long)(g * CG + ic) * H * W;
                    for (kh = 0; kh < KH; kh++) {
                        int ih = oh * SH - PH + kh;
                        for (kw = 0; kw < KW; kw++, j++) {
                            int iw = ow * SW - PW + kw;
                            scratch[j] = (ih < 0 || ih >= H || iw < 0 || iw >= W) ? 0.0f : xc[ih * W + iw];
                        }
                    }
                }
                for (oc = g * OCG; oc + 1 < (g + 1) * OCG; oc += 2) {
                    float a0 = bias[oc], a1 = bias[oc + 1];
                    kf_dot2(scratch, w + (long)oc * K, w + (long)(oc + 1) * K, K, &a0, &a1);
                    y[((long)oc * OH + oh) * OW + ow] = kf_clip(a0, lo, hi);
                    y[((long)(oc + 1) * OH + oh) * OW + ow] = kf_clip(a1, lo, hi);
                }
                if (oc < (g + 1) * OCG)
                    y[((long)oc * OH + oh) * OW + ow] = kf_clip(kf_dot(scratch, w + (long)oc * K, K, bias[oc]), lo, hi);
            }
}

void kf_linear(const float *x, int IN, const float *w, const float *bias, float lo, float hi, float *y, int OUT) {
    int o;
    for (o = 0; o + 1 < OUT; o += 2) {
        float a0 = bias[o], a1 = bias[o + 1];
        kf_dot2(x, w + (long)o * IN, w + (long)(o + 1) * IN, IN, &a0, &a1);
        y[o] = kf_clip(a0, lo, hi);
        y[o + 1] = kf_clip(a1, lo, hi);
    }
    if (o < OUT) y[o] = kf_clip(kf_dot(x, w + (long)o * IN, IN, bias[o]), lo, hi);
}

void kf_maxpool2d(const float *x, int C, int H, int W, float *y, int OH, int OW, int KH, int KW, int SH, int SW,
                  int PH, int PW) {
    int c, oh, ow, kh, kw, any;
    for (c = 0; c < C; c++)
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                float m = 0.0f;
                any = 0;
                for (kh = 0; kh < KH; kh++) {
                    int ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (kw = 0; kw < KW; kw++) {
                        int iw = ow * SW - PW + kw;
                        float v;
                        if (iw < 0 || iw >= W) continue;
                        v = x[((long)c * H + ih) * W + iw];
                        if (!any || v > m) m = v;
                        any = 1;
                    }
                }
                y[((long)c * OH + oh) * OW + ow] = m;
            }
}

void kf_avgpool2d(const float *x, int C, int H, int W, float *y, int OH, int OW, int KH, int KW, int SH, int SW) {
    int c, oh, ow, kh, kw;
    for (c = 0; c < C; c++)
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                float acc = 0.0f;
                for (kh = 0; kh < KH; kh++)
                    for (kw = 0; kw < KW; kw++) acc += x[((long)c * H + oh * SH + kh) * W + ow * SW + kw];
                y[((long)c * OH + oh) * OW + ow] = acc / (float)(KH * KW);
            }
}

void kf_add(const float *a, const float *b, int n, float lo, float hi, float *y) {
    int i;
    for (i = 0; i < n; i++) y[i] = kf_clip(a[i] + b[i], lo, hi);
}

void kf_clamp(const float *x, int n, float lo, float hi, float *y) {
    int i;
    for (i = 0; i < n; i++) y[i] = kf_clip(x[i], lo, hi);
}
