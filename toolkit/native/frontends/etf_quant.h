/* edgetk frontends, stage 2: per-channel integer normalisation + quantisation to the model's int8 input.
 *
 * q[t][c] = sat8(zp + round(((f[t][c] - off[c]) * mul[c]) / 2^shift[c])), round half up.
 * Python derives off/mul/shift from the training split's per-channel mean/std of the stage-1
 * features f (int16) and the model's fixed input scale 2^k: q ~ (f - mean_c) / std_c / 2^k.
 * Bounds: |f - off| <= 2^16 and 0 <= mul < 2^14, so the product fits in 32 bits; 1 <= shift <= 30. */
#ifndef ETF_QUANT_H
#define ETF_QUANT_H

#include <stdint.h>

void etf_quantize(const int16_t *feat, int8_t *q, int32_t rows, int32_t channels, const int32_t *off,
                  const int32_t *mul, const int32_t *shift, int32_t zero_point);

#endif
