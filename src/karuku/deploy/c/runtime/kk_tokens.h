/* karuku's token-input kernels (kk_tokens.inc), shared by the portable and the CMSIS-NN projects */
#ifndef KK_TOKENS_H
#define KK_TOKENS_H
#include <stdint.h>

/* Token inputs. y[t, :] = rows[ids[t], :] for the n ids (`dim` bytes a row); returns 1, writing nothing more,
 * at the first id outside 0 .. vocab - 1, else 0. */
int kk_gather_rows(const int32_t *ids, long n, const uint8_t *rows, long vocab, long dim, uint8_t *y);
/* y = clamp(round_half_even((float)x / scale) + zy, lo, hi): a cast of integers to float, then quantized (the
 * engine's input step, in single precision as the engine computes it) */
void kk_quantize_i32(const int32_t *x, long n, float scale, int32_t zy, int32_t lo, int32_t hi, uint8_t *y);
#endif
