/* ADD, int8 with broadcasting, as TFLite's reference integer kernel (left_shift = 20). */
#include "et_kernels.h"
#include "et_fixedpoint.h"

static int8_t add_one(const et_add_params *p, int8_t a, int8_t b)
{
    const int32_t x1 = (int32_t)(a + p->in1_offset) * ((int32_t)1 << p->left_shift);
    const int32_t x2 = (int32_t)(b + p->in2_offset) * ((int32_t)1 << p->left_shift);
    const int32_t s1 = et_mbqm(x1, p->in1_mult, p->in1_shift);
    const int32_t s2 = et_mbqm(x2, p->in2_mult, p->in2_shift);
    const int32_t raw = et_mbqm(s1 + s2, p->out_mult, p->out_shift) + p->output_offset;
    return (int8_t)et_clamp(raw, p->act_min, p->act_max);
}

void et_add_s8(const et_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->out_shape[0]; ++i0) {
        for (i1 = 0; i1 < p->out_shape[1]; ++i1) {
            for (i2 = 0; i2 < p->out_shape[2]; ++i2) {
                const size_t a = (size_t)i0 * p->in1_stride[0] + (size_t)i1 * p->in1_stride[1] +
                                 (size_t)i2 * p->in1_stride[2];
                const size_t b = (size_t)i0 * p->in2_stride[0] + (size_t)i1 * p->in2_stride[1] +
                                 (size_t)i2 * p->in2_stride[2];
                for (i3 = 0; i3 < p->out_shape[3]; ++i3) {
                    *out++ = add_one(p, in1[a + (size_t)i3 * p->in1_stride[3]],
                                     in2[b + (size_t)i3 * p->in2_stride[3]]);
                }
            }
        }
    }
}
