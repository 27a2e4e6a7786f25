/* MUL, SUB, MINIMUM, MAXIMUM (and ADD beyond 4-D or with a constant operand), int8 with broadcasting up to
 * 6-D, as TFLite-Micro's reference kernels. */
#include "et_kernels.h"
#include "et_fixedpoint.h"

enum { ET_MUL, ET_SUB, ET_ADD, ET_MIN, ET_MAX };

static int8_t binary_one(const et_binary_params *p, int op, int32_t a, int32_t b)
{
    int32_t v;
    if (op == ET_MIN) {
        return (int8_t)(a < b ? a : b);
    }
    if (op == ET_MAX) {
        return (int8_t)(a > b ? a : b);
    }
    if (op == ET_MUL) {
        v = et_mbqm((a + p->in1_offset) * (b + p->in2_offset), p->out_mult, p->out_shift);
    } else {
        const int32_t s1 = et_mbqm((a + p->in1_offset) * ((int32_t)1 << p->left_shift), p->in1_mult, p->in1_shift);
        const int32_t s2 = et_mbqm((b + p->in2_offset) * ((int32_t)1 << p->left_shift), p->in2_mult, p->in2_shift);
        v = et_mbqm(op == ET_ADD ? s1 + s2 : s1 - s2, p->out_mult, p->out_shift);
    }
    return (int8_t)et_clamp(v + p->output_offset, p->act_min, p->act_max);
}

/* Walk the output in row-major order; a and b follow with their (possibly zero) strides. */
static void binary(const et_binary_params *p, int op, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    int32_t idx[ET_DIMS];
    int32_t total = 1, k, d;
    int32_t a = 0, b = 0;
    for (d = 0; d < ET_DIMS; ++d) {
        idx[d] = 0;
        total *= p->out_shape[d];
    }
    for (k = 0; k < total; ++k) {
        out[k] = binary_one(p, op, in1[a], in2[b]);
        for (d = ET_DIMS - 1; d >= 0; --d) {
            if (++idx[d] < p->out_shape[d]) {
                a += p->in1_stride[d];
                b += p->in2_stride[d];
                break;
            }
            a -= p->in1_stride[d] * (p->out_shape[d] - 1);
            b -= p->in2_stride[d] * (p->out_shape[d] - 1);
            idx[d] = 0;
        }
    }
}

void et_mul_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    binary(p, ET_MUL, in1, in2, out);
}

void et_sub_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    binary(p, ET_SUB, in1, in2, out);
}

void et_add_nd_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    binary(p, ET_ADD, in1, in2, out);
}

void et_minimum_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    binary(p, ET_MIN, in1, in2, out);
}

void et_maximum_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    binary(p, ET_MAX, in1, in2, out);
}
