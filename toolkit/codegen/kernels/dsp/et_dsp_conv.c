/* CONV_2D of the dsp set: per pair of output pixels, the two receptive fields are gathered (int8, the
 * input zero point in the padding) and widened to int16 columns, then every pair of output channels is
 * one 2x2 GEMM micro-kernel call (et_dsp_mm.c) and four inline requantizations. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

/* Word stores of the byte pattern (hidden from the optimizer), then a volatile tail: no loop a compiler
 * could turn into a memset call (the library links without libc). */
static void fill_bytes(int8_t *d, int32_t n, int32_t v)
{
    uint32_t pattern = (uint32_t)(uint8_t)v * 0x01010101u;
    volatile int8_t *tail;
    int32_t i = 0;
#if defined(__GNUC__)
    __asm__("" : "+r"(pattern));
#endif
    for (; i + 4 <= n; i += 4) {
        et_st32(d + i, pattern);
    }
    for (tail = d; i < n; ++i) {
        tail[i] = (int8_t)v;
    }
}

static void copy_bytes(const int8_t *s, int8_t *d, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        et_st32(d + i, et_ld32(s + i));
    }
    for (; i < n; ++i) {
        d[i] = s[i];
    }
}

/* 4 * groups int8 values (natural k order) -> int16 column slot (k0, k2, k1, k3 per group, 8 apart). */
static void widen(const int8_t *s, int16_t *slot, int32_t groups)
{
    int32_t g;
    for (g = 0; g < groups; ++g, s += 4, slot += 8) {
#if ET_DSP_ASM
        const uint32_t b = et_ld32(s);
        et_st32(slot, et_sxtb16(b));
        et_st32(slot + 2, et_sxtb16_ror8(b));
#else
        slot[0] = s[0];
        slot[1] = s[2];
        slot[2] = s[1];
        slot[3] = s[3];
#endif
    }
}

/* The receptive field of output pixel (oy, ox) as k_h * k_w * in_c bytes, then zero points up to 4 * groups. */
static void gather(const et_dsp_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int8_t *row)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int32_t seg = p->k_w * p->in_c;
    const int full = p->dil_w == 1 && x0 >= 0 && x0 + p->k_w <= p->in_w;
    int32_t ky, kx;
    int8_t *d = row;
    for (ky = 0; ky < p->k_h; ++ky, d += seg) {
        const int32_t iy = y0 + ky * p->dil_h;
        const int8_t *src = in + (size_t)iy * p->in_w * p->in_c;
        if (iy < 0 || iy >= p->in_h) {
            fill_bytes(d, seg, p->in_zp);
        } else if (full) {
            copy_bytes(src + (size_t)x0 * p->in_c, d, seg);
        } else {
            for (kx = 0; kx < p->k_w; ++kx) {
                const int32_t ix = x0 + kx * p->dil_w;
                if (ix < 0 || ix >= p->in_w) {
                    fill_bytes(d + kx * p->in_c, p->in_c, p->in_zp);
                } else {
                    copy_bytes(src + (size_t)ix * p->in_c, d + kx * p->in_c, p->in_c);
                }
            }
        }
    }
    fill_bytes(d, 4 * p->groups - p->k_h * seg, p->in_zp);
}

/* Column slot of output pixel j of an image: a 1x1 unpadded conv widens the input pixel in place. */
static void im2col(const et_dsp_conv_params *p, const int8_t *in, int32_t j, int16_t *slot, int8_t *row)
{
    const int32_t oy = j / p->out_w, ox = j % p->out_w;
    if (p->k_h == 1 && p->k_w == 1 && p->pad_h == 0 && p->pad_w == 0 && (p->in_c & 3) == 0) {
        widen(in + ((size_t)oy * p->stride_h * p->in_w + (size_t)ox * p->stride_w) * p->in_c, slot, p->groups);
        return;
    }
    gather(p, in, oy, ox, row);
    widen(row, slot, p->groups);
}

static int8_t out8(const et_dsp_conv_params *p, int32_t a2, const int32_t *rq, int clamp)
{
    const int32_t v = et_dsp_rq(a2, rq);
    return (int8_t)(clamp ? et_dsp_clamp(v, p->act_min, p->act_max) : v);
}

/* All output channels of the two pixels whose columns are in `cols`. */
static void gemm_pair(const et_dsp_conv_params *p, const int16_t *cols, int8_t *o0, int8_t *o1, int wide)
{
    const int8_t *w8 = (const int8_t *)p->filter;
    const int16_t *w16 = (const int16_t *)p->filter;
    const int clamp = p->act_min > -128 || p->act_max < 127;
    const int32_t groups = p->groups, shift = wide ? 0 : 1;
    int32_t c, acc[4];
    for (c = 0; c < p->out_c; c += 2) {
        const int32_t *rq = p->rq + 3 * c;
        acc[0] = acc[2] = p->bias[c];
        acc[1] = acc[3] = p->bias[c + 1];
        if (wide) {
            et_dsp_mm2x2_w16(w16, cols, groups, acc);
            w16 += 8 * groups;
        } else {
            et_dsp_mm2x2_w8(w8, cols, groups, acc);
            w8 += 8 * groups;
        }
        o1[c] = out8(p, (int32_t)((uint32_t)acc[2] << shift), rq, clamp);
        o0[c] = out8(p, (int32_t)((uint32_t)acc[0] << shift), rq, clamp);
        if (c + 1 < p->out_c) {
            o1[c + 1] = out8(p, (int32_t)((uint32_t)acc[3] << shift), rq + 3, clamp);
            o0[c + 1] = out8(p, (int32_t)((uint32_t)acc[1] << shift), rq + 3, clamp);
        }
    }
}

/* Output pixels j0 .. j1 - 1 of one image (row-major) into dst, two at a time (an odd last one twice). */
static void conv_span(const et_dsp_conv_params *p, const int8_t *in, int32_t j0, int32_t j1, int8_t *dst,
                      int16_t *cols, int wide)
{
    int8_t *row = (int8_t *)(cols + 8 * p->groups);
    int32_t j;
    for (j = j0; j < j1; j += 2) {
        const int32_t j2 = j + 1 < j1 ? j + 1 : j;
        im2col(p, in, j, cols, row);
        im2col(p, in, j2, cols + 4, row);
        gemm_pair(p, cols, dst + (size_t)(j - j0) * p->out_c, dst + (size_t)(j2 - j0) * p->out_c, wide);
    }
}

static void conv_all(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch, int wide)
{
    const int32_t pixels = p->out_h * p->out_w;
    int32_t b;
    for (b = 0; b < p->batches; ++b) {
        conv_span(p, in + (size_t)b * p->in_h * p->in_w * p->in_c, 0, pixels, out + (size_t)b * pixels * p->out_c,
                  (int16_t *)(void *)scratch, wide);
    }
}

/* Batch 1, output row r written back once output row r + pad_h exists (rows wait in a ring). */
static void conv_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch, int wide)
{
    const int32_t row = p->out_w * p->out_c, slots = p->pad_h + 1;
    int8_t *ring = scratch + ET_DSP_CONV_COLS(p->groups);
    int32_t oy, r;
    for (oy = 0; oy < p->out_h + p->pad_h; ++oy) {
        if (oy < p->out_h) {
            conv_span(p, buf, oy * p->out_w, (oy + 1) * p->out_w, ring + (size_t)(oy % slots) * row,
                      (int16_t *)(void *)scratch, wide);
        }
        r = oy - p->pad_h;
        if (r >= 0) {
            copy_bytes(ring + (size_t)(r % slots) * row, buf + (size_t)r * row, row);
        }
    }
}

void et_dsp_conv_w8(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch)
{
    conv_all(p, in, out, scratch, 0);
}

void et_dsp_conv_w16(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch)
{
    conv_all(p, in, out, scratch, 1);
}

void et_dsp_conv_w8_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch)
{
    conv_inplace(p, buf, scratch, 0);
}

void et_dsp_conv_w16_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch)
{
    conv_inplace(p, buf, scratch, 1);
}
