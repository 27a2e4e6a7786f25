/* FULLY_CONNECTED of the dsp set: four output rows per pass of the int8 input (et_dsp_mm.c), inline
 * requantization. Rows are padded to a multiple of 4 with zero weights; the padding is never stored. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

static void fc(const et_dsp_fc_params *p, const int8_t *in, int8_t *out, int wide)
{
    const int clamp = p->act_min > -128 || p->act_max < 127;
    int32_t b, o, k;
    for (b = 0; b < p->batches; ++b, in += p->in_depth, out += p->out_depth) {
        const int8_t *w8 = (const int8_t *)p->filter;
        const int16_t *w16 = (const int16_t *)p->filter;
        for (o = 0; o < p->out_depth; o += 4) {
            int32_t acc[4];
            for (k = 0; k < 4; ++k) {
                acc[k] = p->bias[o + k];
            }
            if (wide) {
                et_dsp_mm4x1_w16(w16, in, p->groups, acc);
                w16 += 16 * p->groups;
            } else {
                et_dsp_mm4x1_w8(w8, in, p->groups, acc);
                w8 += 16 * p->groups;
            }
            for (k = 0; k < 4 && o + k < p->out_depth; ++k) {
                const int32_t a2 = wide ? acc[k] : (int32_t)((uint32_t)acc[k] << 1);
                int32_t v = et_dsp_rq(a2, p->rq + 3 * (o + k));
                if (clamp) {
                    v = et_dsp_clamp(v, p->act_min, p->act_max);
                }
                out[o + k] = (int8_t)v;
            }
        }
    }
}

void et_dsp_fc_w8(const et_dsp_fc_params *p, const int8_t *in, int8_t *out)
{
    fc(p, in, out, 0);
}

void et_dsp_fc_w16(const et_dsp_fc_params *p, const int8_t *in, int8_t *out)
{
    fc(p, in, out, 1);
}
