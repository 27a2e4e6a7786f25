/* CONV_2D and DEPTHWISE_CONV_2D output pixels, int8 per-channel, as TFLite's reference integer kernels.
 * The schedules (whole tensor, in place by rows or pixels) are in et_conv_sched.c. */
#include "et_kernels.h"
#include "et_fixedpoint.h"

static int8_t conv_out(const et_conv_params *p, int32_t acc, int32_t oc)
{
    if (p->bias) {
        acc += p->bias[oc];
    }
    acc = et_mbqm(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
    return (int8_t)et_clamp(acc, p->act_min, p->act_max);
}

static int32_t conv_acc(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int32_t oc)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    const int8_t *f = p->filter + (size_t)oc * p->k_h * p->k_w * p->in_c;
    int32_t acc = 0;
    int32_t ky, kx, ic;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = y0 + p->dil_h * ky;
        if (iy < 0 || iy >= p->in_h) {
            continue;
        }
        for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = x0 + p->dil_w * kx;
            const int8_t *src;
            const int8_t *w;
            if (ix < 0 || ix >= p->in_w) {
                continue;
            }
            src = in + ((size_t)iy * p->in_w + ix) * p->in_c;
            w = f + ((size_t)ky * p->k_w + kx) * p->in_c;
            for (ic = 0; ic < p->in_c; ++ic) {
                acc += (src[ic] + p->input_offset) * w[ic];
            }
        }
    }
    return acc;
}

static int32_t dw_acc(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int32_t oc)
{
    const int32_t ic = oc / p->depth_multiplier;
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    int32_t acc = 0;
    int32_t ky, kx;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = y0 + p->dil_h * ky;
        if (iy < 0 || iy >= p->in_h) {
            continue;
        }
        for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = x0 + p->dil_w * kx;
            if (ix < 0 || ix >= p->in_w) {
                continue;
            }
            acc += (in[((size_t)iy * p->in_w + ix) * p->in_c + ic] + p->input_offset) *
                   p->filter[((size_t)ky * p->k_w + kx) * p->out_c + oc];
        }
    }
    return acc;
}

void et_conv2d_s8_pixel(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int8_t *dst)
{
    int32_t oc;
    for (oc = 0; oc < p->out_c; ++oc) {
        dst[oc] = conv_out(p, conv_acc(p, in, oy, ox, oc), oc);
    }
}

void et_depthwise_conv2d_s8_pixel(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox,
                                  int8_t *dst)
{
    int32_t oc;
    for (oc = 0; oc < p->out_c; ++oc) {
        dst[oc] = conv_out(p, dw_acc(p, in, oy, ox, oc), oc);
    }
}
