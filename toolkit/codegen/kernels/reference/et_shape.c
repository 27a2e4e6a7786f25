/* Data movement: PAD, CONCATENATION and plain copies (no requantization). */
#include "et_kernels.h"

void et_copy_s8(const int8_t *in, int8_t *out, int32_t n)
{
    int32_t i;
    if (in == out) {
        return;
    }
    for (i = 0; i < n; ++i) {
        out[i] = in[i];
    }
}

void et_pad_s8(const et_pad_params *p, const int8_t *in, int8_t *out)
{
    int32_t o[4], d, inside;
    int32_t os[4];
    for (d = 0; d < 4; ++d) {
        os[d] = p->before[d] + p->in_shape[d] + p->after[d];
    }
    for (o[0] = 0; o[0] < os[0]; ++o[0]) {
        for (o[1] = 0; o[1] < os[1]; ++o[1]) {
            for (o[2] = 0; o[2] < os[2]; ++o[2]) {
                for (o[3] = 0; o[3] < os[3]; ++o[3]) {
                    size_t src = 0;
                    inside = 1;
                    for (d = 0; d < 4; ++d) {
                        const int32_t i = o[d] - p->before[d];
                        inside = inside && i >= 0 && i < p->in_shape[d];
                        src = src * (size_t)p->in_shape[d] + (size_t)(inside ? i : 0);
                    }
                    *out++ = inside ? in[src] : p->pad_value;
                }
            }
        }
    }
}

void et_concat_s8(const et_concat_params *p, const int8_t *const *ins, int8_t *out)
{
    int32_t k, n;
    for (k = 0; k < p->outer; ++k) {
        for (n = 0; n < p->n_inputs; ++n) {
            et_copy_s8(ins[n] + (size_t)k * p->chunks[n], out, p->chunks[n]);
            out += p->chunks[n];
        }
    }
}
