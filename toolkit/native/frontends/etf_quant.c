/* edgetk frontends, stage 2 (see etf_quant.h). */
#include "etf_quant.h"

#include "etf_fixed.h"

void etf_quantize(const int16_t *feat, int8_t *q, int32_t rows, int32_t channels, const int32_t *off,
                  const int32_t *mul, const int32_t *shift, int32_t zero_point)
{
    int32_t r, c;
    for (r = 0; r < rows; r++) {
        for (c = 0; c < channels; c++) {
            int32_t y = (feat[c] - off[c]) * mul[c];
            q[c] = etf_sat8(zero_point + ((y + (1 << (shift[c] - 1))) >> shift[c]));
        }
        feat += channels;
        q += channels;
    }
}
