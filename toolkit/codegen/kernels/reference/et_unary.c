/* Element-wise int8 activations and requantization, as TFLite-Micro's reference kernels:
 * LOGISTIC, TANH (gemmlowp fixed point, 4 integer bits), HARD_SWISH (16-bit fixed point),
 * LEAKY_RELU, RELU (requantizing), RELU6 (clamp, no requantization), QUANTIZE int8 -> int8. */
#include "et_kernels.h"
#include "et_fixedpoint.h"

#define ET_ACT_INPUT_INT_BITS 4

static int32_t act_input(const et_unary_params *p, int8_t x)
{
    return et_mbqm((int32_t)x - p->input_zp, p->mult, p->shift);
}

/* LOGISTIC (output Q0.8 with zero point -128) or TANH (output Q0.7), saturating beyond the radius. */
static void sigmoid_like(const et_unary_params *p, const int8_t *in, int8_t *out, int is_tanh)
{
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        const int32_t x = (int32_t)in[i] - p->input_zp;
        if (x <= -p->range_radius) {
            out[i] = -128;
        } else if (x >= p->range_radius) {
            out[i] = 127;
        } else if (is_tanh) {
            const int32_t q = et_fx_tanh(act_input(p, in[i]), ET_ACT_INPUT_INT_BITS);
            out[i] = (int8_t)et_clamp(et_rounding_divide_by_pot(q, 24), -128, 127);
        } else {
            const int32_t q = et_fx_logistic(act_input(p, in[i]), ET_ACT_INPUT_INT_BITS);
            out[i] = (int8_t)et_clamp(et_rounding_divide_by_pot(q, 23) - 128, -128, 127);
        }
    }
}

void et_logistic_s8(const et_unary_params *p, const int8_t *in, int8_t *out)
{
    sigmoid_like(p, in, out, 0);
}

void et_tanh_s8(const et_unary_params *p, const int8_t *in, int8_t *out)
{
    sigmoid_like(p, in, out, 1);
}

/* gemmlowp int16 SaturatingRoundingDoublingHighMul. */
static int16_t mul16_round(int16_t a, int16_t b)
{
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)((ab + nudge) / (1 << 15));
}

/* The same, truncating (ARM SQDMULH). */
static int16_t mul16_trunc(int16_t a, int16_t b)
{
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static int16_t sat_shl16(int16_t v, int amount)
{
    const int64_t r = (int64_t)v * ((int64_t)1 << amount);
    return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

static int8_t hard_swish_one(const et_unary_params *p, int8_t x)
{
    const int16_t hires = (int16_t)(((int32_t)x - p->input_zp) * (1 << 7));
    const int16_t preshift = mul16_round(hires, (int16_t)p->mult);
    int16_t reluish = hires;
    int32_t v;
    if (p->shift2 > 0) {
        reluish = sat_shl16(reluish, p->shift2 - 1);
    }
    reluish = mul16_round(reluish, (int16_t)p->mult2);
    if (p->shift2 > 0) {
        reluish = sat_shl16(reluish, 1);
    }
    if (p->shift2 < 0) {
        reluish = (int16_t)et_rounding_divide_by_pot(reluish, -p->shift2);
    }
    reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1);
    v = et_rounding_divide_by_pot(mul16_trunc(reluish, preshift), -p->shift) + p->output_zp;
    return (int8_t)et_clamp(v, -128, 127);
}

void et_hard_swish_s8(const et_unary_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        out[i] = hard_swish_one(p, in[i]);
    }
}

void et_leaky_relu_s8(const et_unary_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        const int32_t x = (int32_t)in[i] - p->input_zp;
        const int32_t v = x >= 0 ? et_mbqm(x, p->mult, p->shift) : et_mbqm(x, p->mult2, p->shift2);
        out[i] = (int8_t)et_clamp(v + p->output_zp, -128, 127);
    }
}

void et_relu_s8(const et_unary_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        out[i] = (int8_t)et_clamp(act_input(p, in[i]) + p->output_zp, p->act_min, p->act_max);
    }
}

void et_relu6_s8(const et_unary_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        out[i] = (int8_t)et_clamp(in[i], p->act_min, p->act_max);
    }
}

void et_requantize_s8(const et_unary_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        out[i] = (int8_t)et_clamp(act_input(p, in[i]) + p->output_zp, -128, 127);
    }
}
