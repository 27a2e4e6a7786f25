/* Convolution schedules shared by every kernel set: whole tensor, and in place by rows or pixels.
 * A kernel set's et_conv.c provides the per-pixel functions. */
#include "et_kernels.h"

typedef void (*et_pixel_fn)(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox,
                            int8_t *dst);

static void copy_bytes(const int8_t *src, int8_t *dst, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

static void conv_all(const et_conv_params *p, et_pixel_fn pixel, const int8_t *in, int8_t *out)
{
    const size_t in_batch = (size_t)p->in_h * p->in_w * p->in_c;
    int32_t b, oy, ox;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                pixel(p, in + (size_t)b * in_batch, oy, ox, out);
                out += p->out_c;
            }
        }
    }
}

void et_conv2d_s8(const et_conv_params *p, const int8_t *in, int8_t *out)
{
    conv_all(p, et_conv2d_s8_pixel, in, out);
}

void et_depthwise_conv2d_s8(const et_conv_params *p, const int8_t *in, int8_t *out)
{
    conv_all(p, et_depthwise_conv2d_s8_pixel, in, out);
}

/* In place, batch 1, output row no wider than input row: output row r may overwrite input row r
 * once output row r + pad_h exists, so rows wait in a ring of pad_h + 1 rows. */
static void inplace_rows(const et_conv_params *p, et_pixel_fn pixel, int8_t *buf, int8_t *ring)
{
    const size_t row = (size_t)p->out_w * p->out_c;
    const int32_t slots = p->pad_h + 1;
    int32_t oy, ox, r;
    for (oy = 0; oy < p->out_h + p->pad_h; ++oy) {
        if (oy < p->out_h) {
            for (ox = 0; ox < p->out_w; ++ox) {
                pixel(p, buf, oy, ox, ring + (size_t)(oy % slots) * row + (size_t)ox * p->out_c);
            }
        }
        r = oy - p->pad_h;
        if (r >= 0) {
            copy_bytes(ring + (size_t)(r % slots) * row, buf + (size_t)r * row, row);
        }
    }
}

/* In place, batch 1, stride 1, same width, out_c <= in_c: output pixel j may overwrite input pixel j
 * once output pixel j + pad_h * out_w + pad_w exists; pixels wait in a ring of that many + 1. */
static void inplace_pixels(const et_conv_params *p, et_pixel_fn pixel, int8_t *buf, int8_t *ring)
{
    const int32_t delay = p->pad_h * p->out_w + p->pad_w;
    const int32_t slots = delay + 1;
    const int32_t n = p->out_h * p->out_w;
    const size_t px = (size_t)p->out_c;
    int32_t j;
    for (j = 0; j < n + delay; ++j) {
        if (j < n) {
            pixel(p, buf, j / p->out_w, j % p->out_w, ring + (size_t)(j % slots) * px);
        }
        if (j >= delay) {
            copy_bytes(ring + (size_t)((j - delay) % slots) * px, buf + (size_t)(j - delay) * px, px);
        }
    }
}

void et_conv2d_s8_inplace(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_rows(p, et_conv2d_s8_pixel, buf, ring);
}

void et_depthwise_conv2d_s8_inplace(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_rows(p, et_depthwise_conv2d_s8_pixel, buf, ring);
}

void et_conv2d_s8_inplace_px(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_pixels(p, et_conv2d_s8_pixel, buf, ring);
}

void et_depthwise_conv2d_s8_inplace_px(const et_conv_params *p, int8_t *buf, int8_t *ring)
{
    inplace_pixels(p, et_depthwise_conv2d_s8_pixel, buf, ring);
}
