/* ADD of the dsp set (same-shape inputs): TFLite's scheme (each input shifted left by 20 and rescaled to
 * twice the larger input scale, the sum requantized to the output) with every MultiplyByQuantizedMultiplier
 * as one SMMLAR on the doubled value plus a rounding shift, exactly (bounds checked by the generator). Input 2
 * is the one with the larger scale: its rescale is an exact halving (multiplier 2^30, no shift), so twice
 * its value is (b - zp) << 20. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

/* The loop with or without the activation clamp: constants in locals, so they stay in registers. */
ET_INLINE void add_loop(const et_dsp_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out, int clamp)
{
    const int32_t k1 = p->k1, m1 = p->m1, c1 = p->c1, z1 = p->z1, e1 = p->e1, k2 = p->k2;
    const int32_t mo = p->mo, co = p->co, eo = p->eo, lo = p->act_min, hi = p->act_max;
    const int8_t *end = in1 + p->n;
    while (in1 != end) {
        const int32_t x1 = *in1++ * (1 << 21) + k1;
        const uint32_t s1 = (uint32_t)((et_smmlar(x1, m1, c1) + ((x1 >> 31) & z1)) >> e1) << 1;
        const int32_t t = (int32_t)(s1 + (uint32_t)(*in2++ * (1 << 20) + k2));
        const int32_t v = et_ssat8((et_smmlar(t, mo, co + (t >> 31))) >> eo);
        *out++ = (int8_t)(clamp ? et_dsp_clamp(v, lo, hi) : v);
    }
}

void et_dsp_add(const et_dsp_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    if (p->act_min > -128 || p->act_max < 127) {
        add_loop(p, in1, in2, out, 1);
    } else {
        add_loop(p, in1, in2, out, 0);
    }
}
