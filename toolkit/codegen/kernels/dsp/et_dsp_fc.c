/* FULLY_CONNECTED of the dsp set: four output rows per pass of the int8 input (et_dsp_mm.c), inline
 * requantization. Rows are padded to a multiple of 4 with zero weights; the padding is never stored. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

/* shift 1: int8 weights, the accumulators are doubled here; 0: doubled int16 weights. */
static void fc(const et_dsp_fc_params *p, const int8_t *in, int8_t *out, et_dsp_mm4x1_fn mm, int32_t shift)
{
    const int clamp = p->act_min > -128 || p->act_max < 127;
    const size_t wstep = (size_t)(16 << (1 - shift)) * p->groups;  /* bytes per 4 rows */
    int32_t b, o, k;
    for (b = 0; b < p->batches; ++b, in += p->in_depth, out += p->out_depth) {
        const int8_t *w = (const int8_t *)p->filter;
        for (o = 0; o < p->out_depth; o += 4, w += wstep) {
            int32_t acc[4];
            for (k = 0; k < 4; ++k) {
                acc[k] = p->bias[o + k];
            }
            mm(w, in, p->groups, acc);
            for (k = 0; k < 4 && o + k < p->out_depth; ++k) {
                int32_t v = et_dsp_rq((int32_t)((uint32_t)acc[k] << shift), p->rq + p->rq_stride * (o + k));
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
    fc(p, in, out, et_dsp_mm4x1_w8, 1);
}

void et_dsp_fc_w16(const et_dsp_fc_params *p, const int8_t *in, int8_t *out)
{
    fc(p, in, out, et_dsp_mm4x1_w16, 0);
}
