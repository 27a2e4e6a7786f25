/* AVERAGE_POOL_2D over the whole image (global average) of the dsp set: 4 channels per word load,
 * 16-bit lane sums (at most 256 pixels, so |sum| <= 32768 fits), TFLite's rounding division. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

static int8_t average(const et_dsp_gap_params *p, int32_t acc)
{
    const int32_t n = p->pixels;
    acc = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
    return (int8_t)et_dsp_clamp(acc, p->act_min, p->act_max);
}

void et_dsp_gap(const et_dsp_gap_params *p, const int8_t *in, int8_t *out)
{
    int32_t b, c, i;
    for (b = 0; b < p->batches; ++b, in += (size_t)p->pixels * p->channels, out += p->channels) {
        for (c = 0; c < p->channels; c += 4) {
            uint32_t even = 0, odd = 0;
            for (i = 0; i < p->pixels; ++i) {
                const uint32_t v = et_ld32(in + (size_t)i * p->channels + c);
                even = et_sadd16(even, et_sxtb16(v));
                odd = et_sadd16(odd, et_sxtb16_ror8(v));
            }
            out[c] = average(p, et_lo16(even));
            out[c + 1] = average(p, et_lo16(odd));
            out[c + 2] = average(p, et_hi16(even));
            out[c + 3] = average(p, et_hi16(odd));
        }
    }
}
