/* Integer requantization exactly as TFLite's reference kernels (gemmlowp rounding). C99. */
#ifndef ET_FIXEDPOINT_H
#define ET_FIXEDPOINT_H
#include <stdint.h>

static inline int32_t et_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static inline int32_t et_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding). */
static inline int32_t et_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return et_rounding_divide_by_pot(
        et_sat_rounding_doubling_high_mul((int32_t)(x * ((int32_t)1 << left)), multiplier), right);
}

static inline int32_t et_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* gemmlowp fixed point (int32 raw values), as TFLite's softmax, logistic and tanh use it. */

/* SaturatingRoundingMultiplyByPOT for a positive exponent. */
static inline int32_t et_fx_sat_shl(int32_t x, int exponent)
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

/* exp(x) for x in [-1/4, 0): Q0.31 in, Q0.31 out. */
static inline int32_t et_fx_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = et_sat_rounding_doubling_high_mul(x, x);
    const int32_t x3 = et_sat_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = et_sat_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = et_rounding_divide_by_pot(x4, 2);
    const int32_t poly = et_rounding_divide_by_pot(
        et_sat_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + et_sat_rounding_doubling_high_mul(constant_term, x + poly);
}

/* exp(a) for a <= 0 with `int_bits` integer bits (1..6); result Q0.31. */
static inline int32_t et_fx_exp_on_negative(int32_t a, int int_bits)
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242};
    const int frac_bits = 31 - int_bits;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t a_mod = (a & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod - a;
    int32_t result = et_fx_exp_quarter(et_fx_sat_shl(a_mod, int_bits));
    int k;
    for (k = 0; k < 7; ++k) {
        const int exponent = k - 2;
        if (int_bits > exponent && (remainder & ((int32_t)1 << (frac_bits + exponent))) != 0) {
            result = et_sat_rounding_doubling_high_mul(result, multipliers[k]);
        }
    }
    if (int_bits > 5 && a < -((int32_t)1 << (36 - int_bits))) {
        result = 0;
    }
    return a == 0 ? INT32_MAX : result;
}

/* Newton-Raphson 1 / (1 + x) for x in [0, 1) (Q0.31), in Q2.29 (gemmlowp's three iterations). */
static inline int32_t et_fx_reciprocal_q29(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + et_sat_rounding_doubling_high_mul(half_den, -1010580540);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = ((int32_t)1 << 29) - et_sat_rounding_doubling_high_mul(half_den, x);
        x = x + et_fx_sat_shl(et_sat_rounding_doubling_high_mul(x, one_minus), 2);
    }
    return x;
}

/* 1 / (1 + x) for x in [0, 1): Q0.31. */
static inline int32_t et_fx_one_over_one_plus_x(int32_t a)
{
    return et_fx_sat_shl(et_fx_reciprocal_q29(a), 1);
}

/* (1 - x) / (1 + x) for x in [0, 1): Q0.31. */
static inline int32_t et_fx_one_minus_x_over_one_plus_x(int32_t a)
{
    return et_fx_sat_shl(et_fx_reciprocal_q29(a) - ((int32_t)1 << 29), 2);
}

/* gemmlowp logistic of a value with `int_bits` integer bits; result Q0.31. */
static inline int32_t et_fx_logistic(int32_t a, int int_bits)
{
    int32_t pos;
    if (a == 0) {
        return (int32_t)1 << 30;
    }
    pos = et_fx_one_over_one_plus_x(et_fx_exp_on_negative(a > 0 ? -a : a, int_bits));
    return a > 0 ? pos : INT32_MAX - pos;
}

/* gemmlowp tanh of a value with `int_bits` integer bits; result Q0.31. */
static inline int32_t et_fx_tanh(int32_t a, int int_bits)
{
    int32_t t;
    if (a == 0) {
        return 0;
    }
    t = et_fx_one_minus_x_over_one_plus_x(et_fx_exp_on_negative(a < 0 ? a : -a, int_bits + 1));
    return a < 0 ? -t : t;
}

#endif
