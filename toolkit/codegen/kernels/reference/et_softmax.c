/* SOFTMAX int8 -> int8 as TFLite-Micro's reference kernel (gemmlowp fixed point, 5 integer bits). */
#include "et_kernels.h"
#include "et_fixedpoint.h"

#define ET_SCALED_DIFF_INT_BITS 5
#define ET_ACCUM_INT_BITS 12

static int32_t fx_mul(int32_t a, int32_t b) { return et_sat_rounding_doubling_high_mul(a, b); }

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent. */
static int32_t fx_sat_shl(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t fx_exp_quarter(int32_t a)  /* a in [-1/4, 0), Q0.31 */
{
    const int32_t constant_term = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = fx_mul(x, x);
    const int32_t x3 = fx_mul(x2, x);
    const int32_t x4 = fx_mul(x2, x2);
    const int32_t x4_over_4 = et_rounding_divide_by_pot(x4, 2);
    const int32_t poly = et_rounding_divide_by_pot(fx_mul(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + fx_mul(constant_term, x + poly);
}

static int32_t fx_exp_on_negative(int32_t a)  /* a: Q5.26, result Q0.31 */
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242};
    const int frac_bits = 31 - ET_SCALED_DIFF_INT_BITS;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod = (a & mask) - one_quarter;
    int32_t result = fx_exp_quarter(fx_sat_shl(a_mod, ET_SCALED_DIFF_INT_BITS));
    const int32_t remainder = a_mod - a;
    int k;
    for (k = 0; k < 7; ++k) {
        const int exponent = k - 2;
        if (ET_SCALED_DIFF_INT_BITS > exponent &&
            (remainder & ((int32_t)1 << (frac_bits + exponent))) != 0) {
            result = fx_mul(result, multipliers[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

static int32_t fx_one_over_one_plus_x(int32_t a)  /* a: Q0.31 in [0,1) */
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + fx_mul(half_den, -1010580540);  /* Q2.29 */
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = ((int32_t)1 << 29) - fx_mul(half_den, x);
        x = x + fx_sat_shl(fx_mul(x, one_minus), 2);
    }
    return fx_sat_shl(x, 1);
}

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
            sum += et_rounding_divide_by_pot(fx_exp_on_negative(scaled_diff(p, diff)), ET_ACCUM_INT_BITS);
        }
    }
    headroom = clz32((uint32_t)sum);
    bits_over_unit = ET_ACCUM_INT_BITS - headroom;
    recip = fx_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
    for (c = 0; c < p->depth; ++c) {
        const int32_t diff = in[c] - max_in;
        if (diff >= p->diff_min) {
            const int32_t e = fx_exp_on_negative(scaled_diff(p, diff));
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
