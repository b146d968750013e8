/* karuku float kernels (see karuku_float_kernels.h). */
#include "karuku_float_kernels.h"

static float kf_clip(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

static float kf_dot(const float *a, const float *b, int n, float acc) {
    int i;
    for (i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* two weight rows against one column, or one row against two columns, as the integer kernels do */
static void kf_dot2(const float *a, const float *b0, const float *b1, int n, float *acc) {
    float s0 = acc[0], s1 = acc[1];
    int i;
    for (i = 0; i < n; i++) {
        s0 += a[i] * b0[i];
        s1 += a[i] * b1[i];
    }
    acc[0] = s0;
    acc[1] = s1;
}

/* two columns (pixels) against two weight rows (channels): acc = {c0·w0, c0·w1, c1·w0, c1·w1} */
static void kf_dot22(const float *c0, const float *c1, const float *w0, const float *w1, int n, float *acc) {
    float s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3];
    int i;
    for (i = 0; i < n; i++) {
        float x0 = c0[i], x1 = c1[i], v0 = w0[i], v1 = w1[i];
        s00 += x0 * v0;
        s01 += x0 * v1;
        s10 += x1 * v0;
        s11 += x1 * v1;
    }
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

/* the window of output pixel p of group g; padding is 0 */
static void kf_gather(const float *x, int H, int W, int CG, int g, int p, int OW, int KH, int KW, int SH, int SW,
                      int PH, int PW, float *col) {
    int oh = p / OW, ow = p - oh * OW, ic, kh, kw;
    int ih0 = oh * SH - PH, iw0 = ow * SW - PW;
    int inside = ih0 >= 0 && iw0 >= 0 && ih0 + KH <= H && iw0 + KW <= W;
    for (ic = 0; ic < CG; ic++) {
        const float *xc = x + (long)(g * CG + ic) * H * W;
        for (kh = 0; kh < KH; kh++) {
            int ih = ih0 + kh;
            if (inside) {
                const float *row = xc + ih * W + iw0;
                for (kw = 0; kw < KW; kw++) *col++ = row[kw];
            } else if (ih < 0 || ih >= H) {
                for (kw = 0; kw < KW; kw++) *col++ = 0.0f;
            } else {
                for (kw = 0; kw < KW; kw++) {
                    int iw = iw0 + kw;
                    *col++ = (iw < 0 || iw >= W) ? 0.0f : xc[ih * W + iw];
                }
            }
        }
    }
}

/* output pixels two at a time, each pair of channels in one pass, as the integer kernel does */
void kf_conv2d(const float *x, int C, int H, int W, const float *w, const float *bias, float lo, float hi, float *y,
               int OC, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int G, float *scratch) {
    int CG = C / G, OCG = OC / G, K = CG * KH * KW, P = OH * OW, g, oc, p;
    float *c0 = scratch, *c1 = scratch + K;
    for (g = 0; g < G; g++) {
        int oc1 = (g + 1) * OCG;
        for (p = 0; p + 1 < P; p += 2) {
            float *y0 = y + p, *y1 = y + p + 1;
            kf_gather(x, H, W, CG, g, p, OW, KH, KW, SH, SW, PH, PW, c0);
            kf_gather(x, H, W, CG, g, p + 1, OW, KH, KW, SH, SW, PH, PW, c1);
            for (oc = g * OCG; oc + 1 < oc1; oc += 2) {
                float a[4];
                a[0] = a[2] = bias[oc];
                a[1] = a[3] = bias[oc + 1];
                kf_dot22(c0, c1, w + (long)oc * K, w + (long)(oc + 1) * K, K, a);
                y0[(long)oc * P] = kf_clip(a[0], lo, hi);
                y0[(long)(oc + 1) * P] = kf_clip(a[1], lo, hi);
                y1[(long)oc * P] = kf_clip(a[2], lo, hi);
                y1[(long)(oc + 1) * P] = kf_clip(a[3], lo, hi);
            }
            if (oc < oc1) {
                float a[2];
                a[0] = a[1] = bias[oc];
                kf_dot2(w + (long)oc * K, c0, c1, K, a);
                y0[(long)oc * P] = kf_clip(a[0], lo, hi);
                y1[(long)oc * P] = kf_clip(a[1], lo, hi);
            }
        }
        if (p < P) {
            kf_gather(x, H, W, CG, g, p, OW, KH, KW, SH, SW, PH, PW, c0);
            for (oc = g * OCG; oc < oc1; oc += 2) {
                if (oc + 1 < oc1) {
                    float a[2];
                    a[0] = bias[oc];
                    a[1] = bias[oc + 1];
                    kf_dot2(c0, w + (long)oc * K, w + (long)(oc + 1) * K, K, a);
                    y[(long)oc * P + p] = kf_clip(a[0], lo, hi);
                    y[(long)(oc + 1) * P + p] = kf_clip(a[1], lo, hi);
                } else {
                    y[(long)oc * P + p] = kf_clip(kf_dot(c0, w + (long)oc * K, K, bias[oc]), lo, hi);
                }
            }
        }
    }
}

/* Direct convolution (no im2col), as the integer kernel does: a padded input is copied once into `scratch`
 * (an unpadded one is read in place), four neighbouring output pixels × two channels per pass, each window
 * read straight from the input rows (for stride 1 the neighbours' overlapping values are loaded once). */
#if defined(__GNUC__)
#define KF_INLINE static __inline__ __attribute__((always_inline))
#else
#define KF_INLINE static
#endif
KF_INLINE void kf_block4(const float *xr, int Wp, int plane, const float *w0, const float *w1, int CG, int KH,
                         int KW, int SW, float *a) {
    float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6], a7 = a[7];
    int ic, kh, j;
    for (ic = 0; ic < CG; ic++, xr += plane)
        for (kh = 0; kh < KH; kh++, w0 += KW, w1 += KW) {
            const float *r = xr + kh * Wp;
            if (SW == 1 && (KW == 5 || KW == 3)) { /* written out: each input value loaded once per row */
                float x0 = r[0], x1 = r[1], x2 = r[2], x3 = r[3], x4, x5, x6, x7, wa, wb;
#define KF_D_STEP(J, X0, X1, X2, X3)                                                                         \
    wa = w0[J];                                                                                              \
    wb = w1[J];                                                                                              \
    a0 += X0 * wa;                                                                                           \
    a1 += X0 * wb;                                                                                           \
    a2 += X1 * wa;                                                                                           \
    a3 += X1 * wb;                                                                                           \
    a4 += X2 * wa;                                                                                           \
    a5 += X2 * wb;                                                                                           \
    a6 += X3 * wa;                                                                                           \
    a7 += X3 * wb;
                KF_D_STEP(0, x0, x1, x2, x3)
                x4 = r[4];
                KF_D_STEP(1, x1, x2, x3, x4)
                x5 = r[5];
                KF_D_STEP(2, x2, x3, x4, x5)
                if (KW == 5) {
                    x6 = r[6];
                    KF_D_STEP(3, x3, x4, x5, x6)
                    x7 = r[7];
                    KF_D_STEP(4, x4, x5, x6, x7)
                }
                continue;
            }
            for (j = 0; j < KW; j++) {
                float wa = w0[j], wb = w1[j], x0 = r[j], x1 = r[SW + j], x2 = r[2 * SW + j], x3 = r[3 * SW + j];
                a0 += x0 * wa;
                a1 += x0 * wb;
                a2 += x1 * wa;
                a3 += x1 * wb;
                a4 += x2 * wa;
                a5 += x2 * wb;
                a6 += x3 * wa;
                a7 += x3 * wb;
            }
        }
    a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3; a[4] = a4; a[5] = a5; a[6] = a6; a[7] = a7;
}

static void kf_block1(const float *xr, int Wp, int plane, const float *w0, const float *w1, int CG, int KH, int KW,
                      float *a) {
    float a0 = a[0], a1 = a[1];
    int ic, kh, j;
    for (ic = 0; ic < CG; ic++, xr += plane)
        for (kh = 0; kh < KH; kh++, w0 += KW, w1 += KW) {
            const float *r = xr + kh * Wp;
            for (j = 0; j < KW; j++) {
                a0 += r[j] * w0[j];
                a1 += r[j] * w1[j];
            }
        }
    a[0] = a0;
    a[1] = a1;
}

void kf_conv2d_direct(const float *x, int C, int H, int W, const float *w, const float *bias, float lo, float hi,
                      float *y, int OC, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int G,
                      float *scratch) {
    int CG = C / G, OCG = OC / G, Hp = H + 2 * PH, Wp = W + 2 * PW, plane = Hp * Wp, KC = CG * KH * KW;
    int P = OH * OW, padded = PH > 0 || PW > 0, g, oc, oh, ow, i, r;
    for (g = 0; g < G; g++) {
        int oc1 = (g + 1) * OCG;
        const float *xg = x + (long)g * CG * H * W;
        if (padded) {
            for (i = 0; i < CG; i++) {
                const float *xc = xg + (long)i * H * W;
                float *d = scratch + (long)i * plane;
                for (r = 0; r < Hp; r++, d += Wp) {
                    int c = 0;
                    if (r < PH || r >= PH + H) {
                        for (; c < Wp; c++) d[c] = 0.0f;
                        continue;
                    }
                    for (; c < PW; c++) d[c] = 0.0f;
                    for (; c < PW + W; c++) d[c] = xc[(r - PH) * W + c - PW]; /* no conversion: a plain copy */
                    for (; c < Wp; c++) d[c] = 0.0f;
                }
            }
            xg = scratch;
        }
        for (oc = g * OCG; oc < oc1; oc += 2) {
            int ob = oc + 1 < oc1 ? oc + 1 : oc;
            const float *w0 = w + (long)oc * KC, *w1 = w + (long)ob * KC;
            for (oh = 0; oh < OH; oh++) {
                const float *xr = xg + (long)oh * SH * Wp;
                float *y0 = y + (long)oc * P + oh * OW, *y1 = y + (long)ob * P + oh * OW;
                for (ow = 0; ow + 4 <= OW; ow += 4) {
                    float a[8];
                    a[0] = a[2] = a[4] = a[6] = bias[oc];
                    a[1] = a[3] = a[5] = a[7] = bias[ob];
                    if (SW == 1 && KW == 5) /* constants for the written-out rows */
                        kf_block4(xr + ow, Wp, plane, w0, w1, CG, KH, 5, 1, a);
                    else if (SW == 1 && KW == 3)
                        kf_block4(xr + ow, Wp, plane, w0, w1, CG, KH, 3, 1, a);
                    else
                        kf_block4(xr + ow * SW, Wp, plane, w0, w1, CG, KH, KW, SW, a);
                    y0[ow] = kf_clip(a[0], lo, hi); /* written out, as the integer kernel does */
                    y1[ow] = kf_clip(a[1], lo, hi);
                    y0[ow + 1] = kf_clip(a[2], lo, hi);
                    y1[ow + 1] = kf_clip(a[3], lo, hi);
                    y0[ow + 2] = kf_clip(a[4], lo, hi);
                    y1[ow + 2] = kf_clip(a[5], lo, hi);
                    y0[ow + 3] = kf_clip(a[6], lo, hi);
                    y1[ow + 3] = kf_clip(a[7], lo, hi);
                }
                for (; ow < OW; ow++) {
                    float a[2];
                    a[0] = bias[oc];
                    a[1] = bias[ob];
                    kf_block1(xr + ow * SW, Wp, plane, w0, w1, CG, KH, KW, a);
                    y0[ow] = kf_clip(a[0], lo, hi);
                    y1[ow] = kf_clip(a[1], lo, hi);
                }
            }
        }
    }
}

void kf_linear(const float *x, int IN, const float *w, const float *bias, float lo, float hi, float *y, int OUT) {
    int o;
    for (o = 0; o + 4 <= OUT; o += 4) { /* four outputs per pass, then pairs, as the integer kernel does */
        const float *w0 = w + (long)o * IN, *w1 = w0 + IN, *w2 = w1 + IN, *w3 = w2 + IN;
        float s0 = bias[o], s1 = bias[o + 1], s2 = bias[o + 2], s3 = bias[o + 3];
        int i;
        for (i = 0; i < IN; i++) {
            float v = x[i];
            s0 += v * w0[i];
            s1 += v * w1[i];
            s2 += v * w2[i];
            s3 += v * w3[i];
        }
        y[o] = kf_clip(s0, lo, hi);
        y[o + 1] = kf_clip(s1, lo, hi);
        y[o + 2] = kf_clip(s2, lo, hi);
        y[o + 3] = kf_clip(s3, lo, hi);
    }
    for (; o + 1 < OUT; o += 2) {
        float a[2];
        a[0] = bias[o];
        a[1] = bias[o + 1];
        kf_dot2(x, w + (long)o * IN, w + (long)(o + 1) * IN, IN, a);
        y[o] = kf_clip(a[0], lo, hi);
        y[o + 1] = kf_clip(a[1], lo, hi);
    }
    if (o < OUT) y[o] = kf_clip(kf_dot(x, w + (long)o * IN, IN, bias[o]), lo, hi);
}

void kf_maxpool2d(const float *x, int C, int H, int W, float *y, int OH, int OW, int KH, int KW, int SH, int SW,
                  int PH, int PW) {
    int c, oh, ow, kh, kw, any;
    if (KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0 && 2 * OH <= H && 2 * OW <= W) {
        for (c = 0; c < C; c++) /* the common 2×2, stride 2, unpadded window, as the integer kernel has */
            for (oh = 0; oh < OH; oh++) {
                const float *r0 = x + ((long)c * H + 2 * oh) * W, *r1 = r0 + W;
                float *yr = y + ((long)c * OH + oh) * OW;
                for (ow = 0; ow < OW; ow++) {
                    float a = r0[2 * ow], b = r0[2 * ow + 1], d = r1[2 * ow], e = r1[2 * ow + 1];
                    a = a > b ? a : b;
                    d = d > e ? d : e;
                    yr[ow] = a > d ? a : d;
                }
            }
        return;
    }
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

void kf_avgpool2d(const float *x, int C, int H, int W, float *y, int OH, int OW, int KH, int KW, int SH, int SW,
                  int PH, int PW) {
    int c, oh, ow, kh, kw;
    for (c = 0; c < C; c++)
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                float acc = 0.0f;
                for (kh = 0; kh < KH; kh++) {
                    int ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (kw = 0; kw < KW; kw++) {
                        int iw = ow * SW - PW + kw;
                        if (iw >= 0 && iw < W) acc += x[((long)c * H + ih) * W + iw];
                    }
                }
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

void kf_map(const float *x, long n, float a, float (*f)(float, float), float *y) {
    long i;
    for (i = 0; i < n; i++) y[i] = f(x[i], a);
}

int kf_gather_rows(const int32_t *ids, long n, const float *rows, long vocab, long dim, float *y) {
    long t, i;
    for (t = 0; t < n; t++, y += dim) {
        if (ids[t] < 0 || (long)ids[t] >= vocab) return 1;
        for (i = 0; i < dim; i++) y[i] = rows[(long)ids[t] * dim + i];
    }
    return 0;
}

int kf_gather_mean(const int32_t *ids, long n, const float *rows, long vocab, long dim, int32_t pad, int mean,
                   float *y) {
    long t, d, count = 0;
    for (t = 0; t < n; t++) {
        if (ids[t] < 0 || (long)ids[t] >= vocab) return 1;
        count += ids[t] != pad;
    }
    for (d = 0; d < dim; d++) {
        float acc = 0.0f;
        for (t = 0; t < n; t++)
            if (ids[t] != pad) acc += rows[(long)ids[t] * dim + d];
        y[d] = mean && count > 1 ? acc / (float)count : acc;
    }
    return 0;
}

void kf_cast(const int32_t *x, long n, float *y) {
    long i;
    for (i = 0; i < n; i++) y[i] = (float)x[i];
}

void kf_concat_part(const float *x, long rows, long len, long stride, float *y) {
    long r, i;
    for (r = 0; r < rows; r++, x += len, y += stride)
        for (i = 0; i < len; i++) y[i] = x[i];
}

#define KF_MAX_RANK 8
void kf_transpose(const float *x, int rank, const int *dims, const int *perm, float *y) {
    long stride[KF_MAX_RANK], ostride[KF_MAX_RANK], n = 1, i;
    int idx[KF_MAX_RANK], k;
    for (k = rank - 1; k >= 0; k--) {
        stride[k] = n;
        n *= dims[k];
    }
    for (k = 0; k < rank; k++) {
        ostride[k] = stride[perm[k]];
        idx[k] = 0;
    }
    for (i = 0; i < n; i++) {
        long src = 0;
        for (k = 0; k < rank; k++) src += idx[k] * ostride[k];
        y[i] = x[src];
        for (k = rank - 1; k >= 0 && ++idx[k] == dims[perm[k]]; k--) idx[k] = 0;
    }
}

void kf_upsample(const float *x, int C, int H, int W, int SH, int SW, float *y) {
    int c, i, j, OW = W * SW;
    for (c = 0; c < C; c++)
        for (i = 0; i < H * SH; i++)
            for (j = 0; j < OW; j++) y[((long)c * H * SH + i) * OW + j] = x[((long)c * H + i / SH) * W + j / SW];
}

void kf_pad(const float *x, int C, int H, int W, int T, int L, int B, int R, float *y) {
    int c, i, j, OH = T + H + B, OW = L + W + R;
    for (c = 0; c < C; c++)
        for (i = 0; i < OH; i++)
            for (j = 0; j < OW; j++)
                y[((long)c * OH + i) * OW + j] = (i < T || i >= T + H || j < L || j >= L + W)
                                                     ? 0.0f : x[((long)c * H + i - T) * W + j - L];
}
