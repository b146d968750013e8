/* karuku integer kernels (see karuku_kernels.h). */
#include "karuku_kernels.h"

/* The kernels are split by what they hold into the kk_*.inc files below, compiled as this one file. */
#include "kk_requant.inc"
#include "kk_dot.inc"
#include "kk_conv_im2col.inc"
#include "kk_direct_blocks.inc"
#include "kk_conv_direct.inc"
#include "kk_linear_pool.inc"
#include "kk_tokens.inc"

static int32_t kk_load(const uint8_t *p, int is_signed) {
    return is_signed ? (int32_t)(int8_t)*p : (int32_t)*p;
}

void kk_add(const uint8_t *a, int a_signed, int32_t za, const uint8_t *b, int b_signed, int32_t zb, int n,
            int32_t left_shift, int32_t a_m0, int32_t a_shift, int32_t b_m0, int32_t b_shift, int32_t m0,
            int32_t shift, int32_t zy, int32_t lo, int32_t hi, uint8_t *y) {
    int i;
    if (n >= 1024) { /* each input's 256 possible rescaled values once, then two table reads per element */
        int32_t ta[256], tb[256];
        kk_chan q;
        kk_chan_init(&q, m0, shift);
        for (i = 0; i < 256; i++) {
            uint8_t v = (uint8_t)i;
            ta[i] = kk_mbqm((int32_t)((kk_load(&v, a_signed) - za) * (1L << left_shift)), a_m0, a_shift);
            tb[i] = kk_mbqm((int32_t)((kk_load(&v, b_signed) - zb) * (1L << left_shift)), b_m0, b_shift);
        }
        for (i = 0; i < n; i++) KK_STORE(y + i, kk_rq(ta[a[i]] + tb[b[i]], &q, zy, lo, hi));
        return;
    }
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

void kk_lut(const uint8_t *x, const uint8_t *table, long n, uint8_t *y) {
    long i;
    for (i = 0; i < n; i++) y[i] = table[x[i]];
}

void kk_concat_part(const uint8_t *x, const uint8_t *table, long rows, long len, long stride, uint8_t *y) {
    long r;
    for (r = 0; r < rows; r++, x += len, y += stride) {
        if (table)
            kk_lut(x, table, len, y);
        else
            memcpy(y, x, (size_t)len);
    }
}

#define KK_MAX_RANK 8
/* one element of `size` bytes: a plain byte copy for the integers (memcpy with a variable size is a call) */
#define KK_COPY1(dst, src, size)                                                                             \
    do {                                                                                                     \
        if ((size) == 1) *(dst) = *(src);                                                                     \
        else memcpy((dst), (src), (size_t)(size));                                                           \
    } while (0)

void kk_transpose(const void *x, int size, int rank, const int *dims, const int *perm, void *y) {
    const uint8_t *xs = (const uint8_t *)x;
    uint8_t *ys = (uint8_t *)y;
    long stride[KK_MAX_RANK] = {0}, ostride[KK_MAX_RANK] = {0}, n = 1, i, j, inner, step;
    int idx[KK_MAX_RANK] = {0}, k;
    if (rank < 1 || rank > KK_MAX_RANK) return;
    for (k = rank - 1; k >= 0; k--) {
        stride[k] = n; /* elements between neighbours along input dimension k */
        n *= dims[k];
    }
    for (k = 0; k < rank; k++) {
        ostride[k] = stride[perm[k]];
        idx[k] = 0;
    }
    inner = dims[perm[rank - 1]];
    step = ostride[rank - 1];
    for (i = 0; i < n; i += inner) { /* one run of the last output dimension; an odometer over the others */
        long src = 0;
        for (k = 0; k < rank - 1; k++) src += idx[k] * ostride[k];
        if (size == 1)
            for (j = 0; j < inner; j++) ys[i + j] = xs[src + j * step];
        else
            for (j = 0; j < inner; j++) memcpy(ys + (i + j) * size, xs + (src + j * step) * size, (size_t)size);
        for (k = rank - 2; k >= 0 && ++idx[k] == dims[perm[k]]; k--) idx[k] = 0;
    }
}

void kk_upsample(const void *x, int size, int C, int H, int W, int SH, int SW, void *y) {
    const uint8_t *xs = (const uint8_t *)x;
    uint8_t *ys = (uint8_t *)y;
    int c, i, j, k, OW = W * SW;
    for (c = 0; c < C; c++)
        for (i = 0; i < H * SH; i++) {
            uint8_t *out = ys + ((long)c * H * SH + i) * OW * size;
            if (i % SH) { /* a repeated row: copy the one above */
                memcpy(out, out - (long)OW * size, (size_t)OW * size);
                continue;
            }
            for (j = 0; j < W; j++)
                for (k = 0; k < SW; k++)
                    KK_COPY1(out + ((long)j * SW + k) * size, xs + (((long)c * H + i / SH) * W + j) * size, size);
        }
}

void kk_pad(const void *x, int size, int C, int H, int W, int T, int L, int B, int R, const void *fill, void *y) {
    const uint8_t *xs = (const uint8_t *)x, *f = (const uint8_t *)fill;
    uint8_t *ys = (uint8_t *)y;
    int c, i, j, OH = T + H + B, OW = L + W + R;
    for (c = 0; c < C; c++)
        for (i = 0; i < OH; i++) {
            uint8_t *out = ys + ((long)c * OH + i) * OW * size;
            int inside = i >= T && i < T + H;
            for (j = 0; j < OW; j++) {
                if (inside && j == L) { /* the row of x, in one copy */
                    memcpy(out + (long)j * size, xs + ((long)c * H + i - T) * W * size, (size_t)W * size);
                    j += W - 1;
                    continue;
                }
                KK_COPY1(out + (long)j * size, f, size);
            }
        }
}
