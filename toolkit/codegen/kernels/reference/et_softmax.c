/* SOFTMAX int8 -> int8 as TFLite-Micro's reference kernel (gemmlowp fixed point, 5 integer bits). */
#include "et_kernels.h"
#include "et_fixedpoint.h"

#define ET_SCALED_DIFF_INT_BITS 5
#define ET_ACCUM_INT_BITS 12

static int32_t fx_mul(int32_t a, int32_t b) { return et_sat_rounding_doubling_high_mul(a, b); }

static int clz32(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while ((x & 0x80000000u) == 0) {
        x <<= 1;
        ++n;
    }
    return n;
}

static int32_t scaled_diff(const et_softmax_params *p, int32_t diff)
{
    return et_sat_rounding_doubling_high_mul((int32_t)(diff * ((int32_t)1 << p->input_left_shift)),
                                             p->input_multiplier);
}

static void softmax_row(const et_softmax_params *p, const int8_t *in, int8_t *out)
{
    int32_t max_in = -128, sum = 0, c, headroom, bits_over_unit, recip;
    for (c = 0; c < p->depth; ++c) {
        max_in = in[c] > max_in ? in[c] : max_in;
    }
    for (c = 0; c < p->depth; ++c) {
        const int32_t diff = in[c] - max_in;
        if (diff >= p->diff_min) {
            sum += et_rounding_divide_by_pot(et_fx_exp_on_negative(scaled_diff(p, diff), ET_SCALED_DIFF_INT_BITS), ET_ACCUM_INT_BITS);
        }
    }
    headroom = clz32((uint32_t)sum);
    bits_over_unit = ET_ACCUM_INT_BITS - headroom;
    recip = et_fx_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
    for (c = 0; c < p->depth; ++c) {
        const int32_t diff = in[c] - max_in;
        if (diff >= p->diff_min) {
            const int32_t e = et_fx_exp_on_negative(scaled_diff(p, diff), ET_SCALED_DIFF_INT_BITS);
            const int32_t v = et_rounding_divide_by_pot(fx_mul(recip, e), bits_over_unit + 31 - 8);
            out[c] = (int8_t)et_clamp(v - 128, -128, 127);
        } else {
            out[c] = -128;
        }
    }
}

void et_softmax_s8(const et_softmax_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->outer; ++i) {
        softmax_row(p, in + (size_t)i * p->depth, out + (size_t)i * p->depth);
    }
}
