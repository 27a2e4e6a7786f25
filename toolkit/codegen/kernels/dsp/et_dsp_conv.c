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

/* 4 * groups int8 values (natural k order, any alignment) -> int16 column slot (k0, k2, k1, k3 per group, 8
 * apart; slots are 8-byte aligned). */
static void widen(const int8_t *s, int16_t *slot, int32_t groups)
{
#if ET_DSP_ASM
    uint32_t v, lo, hi;
    if (groups > 0) {
        __asm__ volatile("1:\n\t"
                         "ldr %3, [%0], #4\n\t"
                         "sxtb16 %4, %3\n\t"
                         "sxtb16 %5, %3, ror #8\n\t"
                         "strd %4, %5, [%1], #16\n\t"
                         "subs %2, %2, #1\n\t"
                         "bne 1b\n\t"
                         : "+r"(s), "+r"(slot), "+r"(groups), "=&r"(v), "=&r"(lo), "=&r"(hi)
                         :
                         : "cc", "memory");
    }
#else
    int32_t g;
    for (g = 0; g < groups; ++g, s += 4, slot += 8) {
        slot[0] = s[0];
        slot[1] = s[2];
        slot[2] = s[1];
        slot[3] = s[3];
    }
#endif
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

/* Column slot of output pixel j of an image. A window inside the image whose rows are whole groups (k_w * in_c
 * a multiple of 4, dilation 1 along x) is widened row by row where it lies; any other is gathered first. */
static void cols_any(const et_dsp_conv_params *p, const int8_t *in, int32_t j, int16_t *slot, int8_t *row)
{
    const int32_t oy = j / p->out_w, ox = j % p->out_w;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w, seg = p->k_w * p->in_c;
    if ((seg & 3) == 0 && p->dil_w == 1 && y0 >= 0 && y0 + (p->k_h - 1) * p->dil_h < p->in_h && x0 >= 0 &&
        x0 + p->k_w <= p->in_w) {
        const int8_t *src = in + ((size_t)y0 * p->in_w + x0) * p->in_c;
        const size_t step = (size_t)p->dil_h * p->in_w * p->in_c;
        int32_t ky;
        for (ky = 0; ky < p->k_h; ++ky, src += step, slot += 2 * seg) {
            widen(src, slot, seg / 4);
        }
        return;
    }
    gather(p, in, oy, ox, row);
    widen(row, slot, p->groups);
}

/* 1x1, unpadded, in_c % 4 == 0: the input pixel widened where it is. */
static void cols_1x1(const et_dsp_conv_params *p, const int8_t *in, int32_t j, int16_t *slot, int8_t *row)
{
    const int32_t oy = j / p->out_w, ox = j % p->out_w;
    (void)row;
    widen(in + ((size_t)oy * p->stride_h * p->in_w + (size_t)ox * p->stride_w) * p->in_c, slot, p->groups);
}

/* An entry point's micro-kernel (DSP builds: the fused assembly over channel pairs; elsewhere the portable
 * one), whether int8 weights need the accumulators doubled, and its im2col: each entry point links only what
 * it uses. */
typedef struct {
#if ET_DSP_ASM
    void (*gemm)(et_dsp_gemm_ctx *ctx);
#else
    et_dsp_mm2x2_fn mm;
#endif
    int32_t shift;
    void (*cols)(const et_dsp_conv_params *p, const int8_t *in, int32_t j, int16_t *slot, int8_t *row);
} gemm_kind;

static void clamp_pixels(const et_dsp_conv_params *p, int8_t *o0, int8_t *o1)
{
    int32_t c;
    for (c = 0; c < p->out_c; ++c) {
        o0[c] = (int8_t)et_dsp_clamp(o0[c], p->act_min, p->act_max);
        o1[c] = (int8_t)et_dsp_clamp(o1[c], p->act_min, p->act_max);
    }
}

#if ET_DSP_ASM

/* All output channels of the two pixels whose columns are in `cols`: full pairs in one call, an odd last
 * channel with its zero-weight partner (bias and rq padded) into a spare pair; clamps after saturation. */
static void gemm_pair(const et_dsp_conv_params *p, const int16_t *cols, int8_t *o0, int8_t *o1, gemm_kind k)
{
    et_dsp_gemm_ctx ctx;
    ctx.w = p->filter;
    ctx.cols = cols;
    ctx.groups = p->groups;
    ctx.bias = p->bias;
    ctx.rq = p->rq;
    ctx.rq_step = 4 * p->rq_stride;
    ctx.o0 = o0;
    ctx.o1 = o1;
    ctx.pairs = p->out_c / 2;
    if (ctx.pairs) {
        k.gemm(&ctx);
    }
    if (p->out_c & 1) {
        int8_t spare[4];
        ctx.pairs = 1;
        ctx.o0 = spare;
        ctx.o1 = spare + 2;
        k.gemm(&ctx);
        o1[p->out_c - 1] = spare[2];
        o0[p->out_c - 1] = spare[0];
    }
    if (p->act_min > -128 || p->act_max < 127) {
        clamp_pixels(p, o0, o1);
    }
}

#else

/* All output channels of the two pixels whose columns are in `cols`. */
static void gemm_pair(const et_dsp_conv_params *p, const int16_t *cols, int8_t *o0, int8_t *o1, gemm_kind k)
{
    const int8_t *w = (const int8_t *)p->filter;
    const size_t wstep = (size_t)(8 << (1 - k.shift)) * p->groups;  /* bytes per channel pair */
    int32_t c, acc[4];
    for (c = 0; c < p->out_c; c += 2, w += wstep) {
        const int32_t *rq = p->rq + p->rq_stride * c;
        int32_t e = et_dsp_rq_shift(rq);
        acc[0] = acc[2] = p->bias[c];
        acc[1] = acc[3] = p->bias[c + 1];
        k.mm(w, cols, p->groups, acc);
        o1[c] = (int8_t)et_dsp_rq_e((int32_t)((uint32_t)acc[2] << k.shift), rq, e);
        o0[c] = (int8_t)et_dsp_rq_e((int32_t)((uint32_t)acc[0] << k.shift), rq, e);
        if (c + 1 < p->out_c) {
            rq += p->rq_stride;
            e = et_dsp_rq_shift(rq);
            o1[c + 1] = (int8_t)et_dsp_rq_e((int32_t)((uint32_t)acc[3] << k.shift), rq, e);
            o0[c + 1] = (int8_t)et_dsp_rq_e((int32_t)((uint32_t)acc[1] << k.shift), rq, e);
        }
    }
    if (p->act_min > -128 || p->act_max < 127) {
        clamp_pixels(p, o0, o1);
    }
}

#endif

/* Output pixels j0 .. j1 - 1 of one image (row-major) into dst, two at a time (an odd last one twice). */
static void conv_span(const et_dsp_conv_params *p, const int8_t *in, int32_t j0, int32_t j1, int8_t *dst,
                      int16_t *cols, gemm_kind k)
{
    int8_t *row = (int8_t *)(cols + 8 * p->groups);
    int32_t j;
    for (j = j0; j < j1; j += 2) {
        const int32_t j2 = j + 1 < j1 ? j + 1 : j;
        k.cols(p, in, j, cols, row);
        k.cols(p, in, j2, cols + 4, row);
        gemm_pair(p, cols, dst + (size_t)(j - j0) * p->out_c, dst + (size_t)(j2 - j0) * p->out_c, k);
    }
}

static void conv_all(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch, gemm_kind k)
{
    const int32_t pixels = p->out_h * p->out_w;
    int32_t b;
    for (b = 0; b < p->batches; ++b) {
        conv_span(p, in + (size_t)b * p->in_h * p->in_w * p->in_c, 0, pixels, out + (size_t)b * pixels * p->out_c,
                  (int16_t *)(void *)scratch, k);
    }
}

/* Batch 1, output row r written back once output row r + pad_h exists (rows wait in a ring). */
static void conv_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch, gemm_kind k)
{
    const int32_t row = p->out_w * p->out_c, slots = p->pad_h + 1;
    int8_t *ring = scratch + ET_DSP_CONV_COLS(p->groups);
    int32_t oy, r;
    for (oy = 0; oy < p->out_h + p->pad_h; ++oy) {
        if (oy < p->out_h) {
            conv_span(p, buf, oy * p->out_w, (oy + 1) * p->out_w, ring + (size_t)(oy % slots) * row,
                      (int16_t *)(void *)scratch, k);
        }
        r = oy - p->pad_h;
        if (r >= 0) {
            copy_bytes(ring + (size_t)(r % slots) * row, buf + (size_t)r * row, row);
        }
    }
}

/* Batch 1, stride 1, in_w == out_w, out_c <= in_c: output pixel i replaces input pixel i once outputs up to
 * i + pad_h * out_w + pad_w exist (no later output reads it); pixels wait in an even ring of at least that
 * delay + 2 slots, so a pair never wraps. */
static void conv_inplace_px(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch, gemm_kind k)
{
    const int32_t delay = p->pad_h * p->out_w + p->pad_w, n = p->out_h * p->out_w;
    const int32_t slots = (delay + 3) & ~1;
    const size_t px = (size_t)p->out_c;
    int8_t *ring = scratch + ET_DSP_CONV_COLS(p->groups);
    int32_t j, done = 0;
    for (j = 0; j < n; j += 2) {
        const int32_t end = j + 2 < n ? j + 2 : n;
        conv_span(p, buf, j, end, ring + (size_t)(j % slots) * px, (int16_t *)(void *)scratch, k);
        for (; done < end - delay; ++done) {
            copy_bytes(ring + (size_t)(done % slots) * px, buf + (size_t)done * px, (int32_t)px);
        }
    }
    for (; done < n; ++done) {
        copy_bytes(ring + (size_t)(done % slots) * px, buf + (size_t)done * px, (int32_t)px);
    }
}

/* CONV_2D fused with the same-shape ADD that is its output's only reader (batch 1): per pair of output pixels the
 * conv's int8 values (in scratch after the im2col) are added to the ADD's other operand and the sums written to
 * out, which may be that operand (in place): the conv's output never exists whole, no ring is needed.
 * add: the ADD's et_dsp_add_params fields in order (n unused), then 1 when the conv output is the ADD's input 1. */
static void conv_add(const et_dsp_conv_params *p, const int8_t *in, const int8_t *other, const int32_t *add,
                     int8_t *out, int32_t *scratch, gemm_kind k)
{
    const int32_t n = p->out_h * p->out_w;
    const size_t px = (size_t)p->out_c;
    int8_t *tmp = (int8_t *)scratch + ET_DSP_CONV_COLS(p->groups);
    et_dsp_add_params a;
    int32_t j;
    a.k1 = add[1];
    a.m1 = add[2];
    a.c1 = add[3];
    a.z1 = add[4];
    a.e1 = add[5];
    a.k2 = add[6];
    a.mo = add[7];
    a.co = add[8];
    a.eo = add[9];
    a.act_min = add[10];
    a.act_max = add[11];
    for (j = 0; j < n; j += 2) {
        const int32_t end = j + 2 < n ? j + 2 : n;
        const size_t at = (size_t)j * px;
        conv_span(p, in, j, end, tmp, (int16_t *)(void *)scratch, k);
        a.n = (int32_t)((size_t)(end - j) * px);
        if (add[12]) {
            et_dsp_add(&a, tmp, other + at, out + at);
        } else {
            et_dsp_add(&a, other + at, tmp, out + at);
        }
    }
}

#if ET_DSP_ASM
#define KERNEL_W8 et_dsp_gemm2x2_w8
#define KERNEL_W16 et_dsp_gemm2x2_w16
#else
#define KERNEL_W8 et_dsp_mm2x2_w8
#define KERNEL_W16 et_dsp_mm2x2_w16
#endif

#define ET_DSP_CONV_ENTRIES(name, kernel, shift, cols)                                                       \
    void name(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch)              \
    {                                                                                                    \
        const gemm_kind k = {kernel, shift, cols};                                                    \
        conv_all(p, in, out, scratch, k);                                                                \
    }                                                                                                    \
    void name##_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch)                       \
    {                                                                                                    \
        const gemm_kind k = {kernel, shift, cols};                                                    \
        conv_inplace(p, buf, scratch, k);                                                                \
    }                                                                                                    \
    void name##_inplace_px(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch)                    \
    {                                                                                                    \
        const gemm_kind k = {kernel, shift, cols};                                                       \
        conv_inplace_px(p, buf, scratch, k);                                                             \
    }                                                                                                    \
    void name##_add(const et_dsp_conv_params *p, const int8_t *in, const int8_t *other, const int32_t *add, \
                    int8_t *out, int32_t *scratch)                                                       \
    {                                                                                                    \
        const gemm_kind k = {kernel, shift, cols};                                                       \
        conv_add(p, in, other, add, out, scratch, k);                                                    \
    }

ET_DSP_CONV_ENTRIES(et_dsp_conv_w8, KERNEL_W8, 1, cols_any)
ET_DSP_CONV_ENTRIES(et_dsp_conv_w16, KERNEL_W16, 0, cols_any)
ET_DSP_CONV_ENTRIES(et_dsp_conv1x1_w8, KERNEL_W8, 1, cols_1x1)
ET_DSP_CONV_ENTRIES(et_dsp_conv1x1_w16, KERNEL_W16, 0, cols_1x1)
