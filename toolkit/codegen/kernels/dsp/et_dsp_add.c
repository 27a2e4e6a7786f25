/* ADD of the dsp set (same-shape inputs): TFLite's scheme (each input shifted left by 20 and rescaled to
 * twice the larger input scale, the sum requantized to the output) with every MultiplyByQuantizedMultiplier
 * as one SMMLAR on the doubled value plus a rounding shift, exactly (bounds checked by the generator). */
#include "et_dsp.h"
#include "et_dsp_simd.h"

/* RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m), e) of x2 = 2x, plus the offset in c. */
ET_INLINE int32_t rescale(int32_t x2, int32_t m, int32_t c, int32_t z, int32_t e)
{
    return (et_smmlar(x2, m, c) + ((x2 >> 31) & z)) >> e;
}

void et_dsp_add(const et_dsp_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    const int clamp = p->act_min > -128 || p->act_max < 127;
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        const int32_t s1 = rescale(in1[i] * (1 << 21) + p->k1, p->m1, p->c1, p->z1, p->e1);
        const int32_t s2 = rescale(in2[i] * (1 << 21) + p->k2, p->m2, p->c2, p->z2, p->e2);
        const int32_t t = (int32_t)((uint32_t)(s1 + s2) << 1);
        int32_t v = et_ssat8(rescale(t, p->mo, p->co, -1, p->eo));
        if (clamp) {
            v = et_dsp_clamp(v, p->act_min, p->act_max);
        }
        out[i] = (int8_t)v;
    }
}
