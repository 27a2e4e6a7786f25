/* CONV_2D and DEPTHWISE_CONV_2D, int8 per-channel, as TFLite's reference integer kernels. */
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

typedef int32_t (*et_acc_fn)(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox,
                             int32_t oc);

static void conv_row(const et_conv_params *p, et_acc_fn acc, const int8_t *in, int8_t *dst, int32_t oy)
{
    int32_t ox, oc;
    for (ox = 0; ox < p->out_w; ++ox) {
        for (oc = 0; oc < p->out_c; ++oc) {
            *dst++ = conv_out(p, acc(p, in, oy, ox, oc), oc);
        }
    }
}

static void copy_row(const int8_t *src, int8_t *dst, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

static void conv_all(const et_conv_params *p, et_acc_fn acc, const int8_t *in, int8_t *out)
{
    const size_t in_batch = (size_t)p->in_h * p->in_w * p->in_c;
    const size_t row = (size_t)p->out_w * p->out_c;
    int32_t b, oy;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            conv_row(p, acc, in + (size_t)b * in_batch, out, oy);
            out += row;
        }
    }
}

void et_conv2d_s8(const et_conv_params *p, const int8_t *in, int8_t *out)
{
    conv_all(p, conv_acc, in, out);
}

void et_depthwise_conv2d_s8(const et_conv_params *p, const int8_t *in, int8_t *out)
{
    conv_all(p, dw_acc, in, out);
}

/* In place, batch 1, output row no wider than input row: output row r may overwrite input row r
 * once output row r + pad_h exists, so rows wait in a ring of pad_h + 1 rows. */
static void inplace_rows(const et_conv_params *p, et_acc_fn acc, int8_t *buf, int8_t *ring)
{
    const size_t row = (size_t)p->out_w * p->out_c;
    const int32_t slots = p->pad_h + 1;
    int32_t oy, r;
    for (oy = 0; oy < p->out_h; ++oy) {
        conv_row(p, acc, buf, ring + (size_t)(oy % slots) * row, oy);
        r = oy - p->pad_h;
        if (r >= 0) {
            copy_row(ring + (size_t)(r % slots) * row, buf + (size_t)r * row, row);
        }
    }
    for (r = p->out_h - p->pad_h < 0 ? 0 : p->out_h - p->pad_h; r < p->out_h; ++r) {
        copy_row(ring + (size_t)(r % slots) * row, buf + (size_t)r * row, row);
    }
}

void et_conv2d_s8_inplace(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_rows(p, conv_acc, buf, ring);
}

void et_depthwise_conv2d_s8_inplace(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_rows(p, dw_acc, buf, ring);
}

/* In place, batch 1, stride 1, same width, out_c <= in_c: output pixel j may overwrite input pixel j
 * once output pixel j + pad_h * out_w + pad_w exists; pixels wait in a ring of that many + 1. */
static void inplace_pixels(const et_conv_params *p, et_acc_fn acc, int8_t *buf, int8_t *ring)
{
    const int32_t delay = p->pad_h * p->out_w + p->pad_w;
    const int32_t slots = delay + 1;
    const int32_t n = p->out_h * p->out_w;
    const size_t px = (size_t)p->out_c;
    int32_t j, oc;
    for (j = 0; j < n + delay; ++j) {
        if (j < n) {
            int8_t *dst = ring + (size_t)(j % slots) * px;
            for (oc = 0; oc < p->out_c; ++oc) {
                dst[oc] = conv_out(p, acc(p, buf, j / p->out_w, j % p->out_w, oc), oc);
            }
        }
        if (j >= delay) {
            copy_row(ring + (size_t)((j - delay) % slots) * px, buf + (size_t)(j - delay) * px, px);
        }
    }
}

void et_conv2d_s8_inplace_px(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_pixels(p, conv_acc, buf, ring);
}

void et_depthwise_conv2d_s8_inplace_px(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_pixels(p, dw_acc, buf, ring);
}
