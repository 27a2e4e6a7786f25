/* CONV_2D / DEPTHWISE_CONV_2D output pixels, portable speed-ups over the reference set: window
 * bounds once per pixel instead of per tap and channel, four (then two) output channels per pass over
 * the input, channel-blocked depthwise accumulators. Same integer arithmetic, so bit-exact. */
#include "et_kernels.h"
#include "et_fixedpoint.h"

#define ET_DW_BLOCK 32

typedef struct {
    int32_t y0, x0, ky0, ky1, kx0, kx1;
} et_window;

static et_window window_of(const et_conv_params *p, int32_t oy, int32_t ox)
{
    et_window w;
    w.y0 = oy * p->stride_h - p->pad_h;
    w.x0 = ox * p->stride_w - p->pad_w;
    w.ky0 = 0;
    while (w.ky0 < p->k_h && w.y0 + p->dil_h * w.ky0 < 0) {
        ++w.ky0;
    }
    w.ky1 = p->k_h;
    while (w.ky1 > w.ky0 && w.y0 + p->dil_h * (w.ky1 - 1) >= p->in_h) {
        --w.ky1;
    }
    w.kx0 = 0;
    while (w.kx0 < p->k_w && w.x0 + p->dil_w * w.kx0 < 0) {
        ++w.kx0;
    }
    w.kx1 = p->k_w;
    while (w.kx1 > w.kx0 && w.x0 + p->dil_w * (w.kx1 - 1) >= p->in_w) {
        --w.kx1;
    }
    return w;
}

static int8_t requant(const et_conv_params *p, int32_t acc, int32_t oc)
{
    if (p->bias) {
        acc += p->bias[oc];
    }
    acc = et_mbqm(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
    return (int8_t)et_clamp(acc, p->act_min, p->act_max);
}

static const int8_t *tap(const et_conv_params *p, const int8_t *in, const et_window *w, int32_t ky, int32_t kx)
{
    return in + ((size_t)(w->y0 + p->dil_h * ky) * p->in_w + (size_t)(w->x0 + p->dil_w * kx)) * p->in_c;
}

static void conv_pair(const et_conv_params *p, const int8_t *in, const et_window *w, int32_t oc,
                      int32_t *a0, int32_t *a1)
{
    const size_t fstride = (size_t)p->k_h * p->k_w * p->in_c;
    const int8_t *f0 = p->filter + (size_t)oc * fstride;
    const int8_t *f1 = f0 + fstride;
    int32_t ky, kx, ic, s0 = 0, s1 = 0;
    for (ky = w->ky0; ky < w->ky1; ++ky) {
        for (kx = w->kx0; kx < w->kx1; ++kx) {
            const int8_t *x = tap(p, in, w, ky, kx);
            const size_t k = ((size_t)ky * p->k_w + kx) * p->in_c;
            for (ic = 0; ic < p->in_c; ++ic) {
                const int32_t v = x[ic] + p->input_offset;
                s0 += v * f0[k + ic];
                s1 += v * f1[k + ic];
            }
        }
    }
    *a0 = s0;
    *a1 = s1;
}

static void conv_quad(const et_conv_params *p, const int8_t *in, const et_window *w, int32_t oc,
                      int32_t *acc)
{
    const size_t fstride = (size_t)p->k_h * p->k_w * p->in_c;
    const int8_t *f0 = p->filter + (size_t)oc * fstride;
    const int8_t *f1 = f0 + fstride;
    const int8_t *f2 = f1 + fstride;
    const int8_t *f3 = f2 + fstride;
    int32_t ky, kx, ic, s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (ky = w->ky0; ky < w->ky1; ++ky) {
        for (kx = w->kx0; kx < w->kx1; ++kx) {
            const int8_t *x = tap(p, in, w, ky, kx);
            const size_t k = ((size_t)ky * p->k_w + kx) * p->in_c;
            for (ic = 0; ic < p->in_c; ++ic) {
                const int32_t v = x[ic] + p->input_offset;
                s0 += v * f0[k + ic];
                s1 += v * f1[k + ic];
                s2 += v * f2[k + ic];
                s3 += v * f3[k + ic];
            }
        }
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}

static int32_t conv_one(const et_conv_params *p, const int8_t *in, const et_window *w, int32_t oc)
{
    const int8_t *f = p->filter + (size_t)oc * p->k_h * p->k_w * p->in_c;
    int32_t ky, kx, ic, s = 0;
    for (ky = w->ky0; ky < w->ky1; ++ky) {
        for (kx = w->kx0; kx < w->kx1; ++kx) {
            const int8_t *x = tap(p, in, w, ky, kx);
            const size_t k = ((size_t)ky * p->k_w + kx) * p->in_c;
            for (ic = 0; ic < p->in_c; ++ic) {
                s += (x[ic] + p->input_offset) * f[k + ic];
            }
        }
    }
    return s;
}

void et_conv2d_s8_pixel(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int8_t *dst)
{
    const et_window w = window_of(p, oy, ox);
    int32_t oc = 0, a0, a1, q[4];
    for (; oc + 3 < p->out_c; oc += 4) {
        conv_quad(p, in, &w, oc, q);
        dst[oc] = requant(p, q[0], oc);
        dst[oc + 1] = requant(p, q[1], oc + 1);
        dst[oc + 2] = requant(p, q[2], oc + 2);
        dst[oc + 3] = requant(p, q[3], oc + 3);
    }
    for (; oc + 1 < p->out_c; oc += 2) {
        conv_pair(p, in, &w, oc, &a0, &a1);
        dst[oc] = requant(p, a0, oc);
        dst[oc + 1] = requant(p, a1, oc + 1);
    }
    if (oc < p->out_c) {  /* odd channel count: the last one alone */
        dst[oc] = requant(p, conv_one(p, in, &w, oc), oc);
    }
}

/* No zero-fill loop for acc (gcc would call memset, and the library links without libc): the first
 * valid tap assigns, the others add. */
static void dw_block(const et_conv_params *p, const int8_t *in, const et_window *w, int32_t c0,
                     int32_t n, int8_t *dst)
{
    int32_t acc[ET_DW_BLOCK];
    int32_t ky, kx, c, first = 1;
    for (ky = w->ky0; ky < w->ky1; ++ky) {
        for (kx = w->kx0; kx < w->kx1; ++kx) {
            const int8_t *x = tap(p, in, w, ky, kx) + c0;
            const int8_t *f = p->filter + ((size_t)ky * p->k_w + kx) * p->out_c + c0;
            for (c = 0; c < n; ++c) {
                const int32_t v = (x[c] + p->input_offset) * f[c];
                acc[c] = first ? v : acc[c] + v;
            }
            first = 0;
        }
    }
    for (c = 0; c < n; ++c) {
        dst[c0 + c] = requant(p, first ? 0 : acc[c], c0 + c);
    }
}

static int32_t dw_acc_generic(const et_conv_params *p, const int8_t *in, const et_window *w, int32_t oc)
{
    const int32_t ic = oc / p->depth_multiplier;
    int32_t ky, kx, acc = 0;
    for (ky = w->ky0; ky < w->ky1; ++ky) {
        for (kx = w->kx0; kx < w->kx1; ++kx) {
            acc += (tap(p, in, w, ky, kx)[ic] + p->input_offset) *
                   p->filter[((size_t)ky * p->k_w + kx) * p->out_c + oc];
        }
    }
    return acc;
}

void et_depthwise_conv2d_s8_pixel(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox,
                                  int8_t *dst)
{
    const et_window w = window_of(p, oy, ox);
    int32_t c0, oc;
    if (p->depth_multiplier != 1) {
        for (oc = 0; oc < p->out_c; ++oc) {
            dst[oc] = requant(p, dw_acc_generic(p, in, &w, oc), oc);
        }
        return;
    }
    for (c0 = 0; c0 < p->out_c; c0 += ET_DW_BLOCK) {
        dw_block(p, in, &w, c0, p->out_c - c0 < ET_DW_BLOCK ? p->out_c - c0 : ET_DW_BLOCK, dst);
    }
}
