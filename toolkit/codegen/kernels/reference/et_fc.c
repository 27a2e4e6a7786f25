/* FULLY_CONNECTED, int8 (per-tensor or per-channel weights), as TFLite's reference kernel. */
#include "et_kernels.h"
#include "et_fixedpoint.h"

void et_fully_connected_s8(const et_fc_params *p, const int8_t *in, int8_t *out)
{
    int32_t b, o, i;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = in + (size_t)b * p->in_depth;
        for (o = 0; o < p->out_depth; ++o) {
            const int8_t *w = p->filter + (size_t)o * p->in_depth;
            int32_t acc = 0;
            for (i = 0; i < p->in_depth; ++i) {
                acc += (x[i] + p->input_offset) * (w[i] + p->filter_offset);
            }
            if (p->bias) {
                acc += p->bias[o];
            }
            acc = et_mbqm(acc, p->mult[o], p->shift[o]) + p->output_offset;
            out[(size_t)b * p->out_depth + o] = (int8_t)et_clamp(acc, p->act_min, p->act_max);
        }
    }
}
