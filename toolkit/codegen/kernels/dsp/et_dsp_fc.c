/* FULLY_CONNECTED of the dsp set: four output rows per pass of the int8 input (et_dsp_mm.c), inline
 * requantization. Rows are padded to a multiple of 4 with zero weights; the padding is never stored. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

#if ET_DSP_ASM

/* Every quad of rows in assembly (a last partial quad into a spare one: bias, weights and rq are padded);
 * clamps after saturation. */
static void fc(const et_dsp_fc_params *p, const int8_t *in, int8_t *out, void (*quads)(et_dsp_fc_ctx *))
{
    int32_t b, k;
    for (b = 0; b < p->batches; ++b, in += p->in_depth, out += p->out_depth) {
        et_dsp_fc_ctx ctx;
        ctx.w = p->filter;
        ctx.x = in;
        ctx.groups = p->groups;
        ctx.bias = p->bias;
        ctx.rq = p->rq;
        ctx.rq_step = 4 * p->rq_stride;
        ctx.out = out;
        ctx.quads = p->out_depth / 4;
        if (ctx.quads) {
            quads(&ctx);
        }
        if (p->out_depth & 3) {
            int8_t spare[4];
            ctx.quads = 1;
            ctx.out = spare;
            quads(&ctx);
            for (k = 0; k < (p->out_depth & 3); ++k) {
                out[p->out_depth / 4 * 4 + k] = spare[k];
            }
        }
        if (p->act_min > -128 || p->act_max < 127) {
            for (k = 0; k < p->out_depth; ++k) {
                out[k] = (int8_t)et_dsp_clamp(out[k], p->act_min, p->act_max);
            }
        }
    }
}

void et_dsp_fc_w8(const et_dsp_fc_params *p, const int8_t *in, int8_t *out)
{
    fc(p, in, out, et_dsp_fc4_w8);
}

void et_dsp_fc_w16(const et_dsp_fc_params *p, const int8_t *in, int8_t *out)
{
    fc(p, in, out, et_dsp_fc4_w16);
}

#else

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

#endif
