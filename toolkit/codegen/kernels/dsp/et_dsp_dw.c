/* DEPTHWISE_CONV_2D of the dsp set. Four input channels at a time are copied into int16 planes padded with
 * the input zero point (so every tap is in bounds and the folded offset holds), then each of a plane's
 * output channels (depth multiplier) is convolved over it: for 3x3 with stride 1 along the plane rows, four outputs per
 * pass from the loads (x0,x1) (x2,x3) (x4,x5) of each row (SMLAD/SMLATB/SMLABB/SMLADX, et_dsp.h), other
 * windows with SMLAD on pairs of taps. The generator may transpose the image (in_sy/in_sx, out_sy/out_sx)
 * so that plane rows run along the longer output side. With multiplier 1, a block's input is copied before
 * any of its outputs is written, so the kernel also runs in place. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

/* What the 3x3 row kernel reads; the DSP version addresses the first seven words by offset. */
typedef struct {
    int32_t m, c1, e, step;    /* requantization; bytes between outputs along a row */
    int8_t *out;               /* next output */
    const int16_t *end;        /* row-0 pointer after the last group of four outputs */
    int32_t bias2;
    uint32_t w[6];             /* per kernel row: (w0, w1), (w2, w1), doubled */
} dw3_ctx;

/* Two consecutive int16 values as one packed pair (any alignment). */
static uint32_t ld_pair(const int16_t *s)
{
#if ET_DSP_ASM
    return et_ld32(s);
#else
    return et_pack16(s[0], s[1]);
#endif
}

#if ET_DSP_ASM

#define ET_ARG __attribute__((unused)) /* naked functions read their arguments from r0-r3 */

/* Kernel rows 1 and 2 (weights at ctx + off): accumulators r9-r12 of four outputs. */
#define DW3_ROW(ptr, off)                                                                              \
    "ldrd r4, r5, [r3, #" off "]\n\t"                                                                \
    "ldrd r6, r7, [" ptr "], #8\n\t"                                                                 \
    "ldr r8, [" ptr "]\n\t"                                                                          \
    "smlad r9, r6, r4, r9\n\t"                                                                       \
    "smlatb r10, r6, r4, r10\n\t"                                                                    \
    "smlad r11, r7, r4, r11\n\t"                                                                     \
    "smlatb r12, r7, r4, r12\n\t"                                                                    \
    "smlabb r9, r7, r5, r9\n\t"                                                                      \
    "smladx r10, r7, r5, r10\n\t"                                                                    \
    "smlabb r11, r8, r5, r11\n\t"                                                                    \
    "smladx r12, r8, r5, r12\n\t"

/* ssat8((SMMLAR(a, m, c1 + (a >> 31))) >> e) with m, c1, e in r4, r5, r6. */
#define DW3_RQ(a)                                                                                      \
    "add lr, r5, " a ", asr #31\n\t"                                                                 \
    "smmlar " a ", " a ", r4, lr\n\t"                                                                \
    "asr " a ", " a ", r6\n\t"                                                                       \
    "ssat " a ", #8, " a "\n\t"

/* Four outputs per pass until r0 reaches ctx->end; kernel row 0 starts from the bias (lr). */
__attribute__((naked, noinline)) static void dw3_quads(ET_ARG const int16_t *r0, ET_ARG const int16_t *r1,
                                                       ET_ARG const int16_t *r2, ET_ARG dw3_ctx *ctx)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n"
        "1:\n\t"
        "ldr lr, [r3, #24]\n\t"
        "ldrd r4, r5, [r3, #28]\n\t"
        "ldrd r6, r7, [r0], #8\n\t"
        "ldr r8, [r0]\n\t"
        "smlad r9, r6, r4, lr\n\t"
        "smlatb r10, r6, r4, lr\n\t"
        "smlad r11, r7, r4, lr\n\t"
        "smlatb r12, r7, r4, lr\n\t"
        "smlabb r9, r7, r5, r9\n\t"
        "smladx r10, r7, r5, r10\n\t"
        "smlabb r11, r8, r5, r11\n\t"
        "smladx r12, r8, r5, r12\n\t"
        DW3_ROW("r1", "36") DW3_ROW("r2", "44")
        "ldm r3, {r4-r8}\n\t"
        DW3_RQ("r9") DW3_RQ("r10") DW3_RQ("r11") DW3_RQ("r12")
        "strb r9, [r8]\n\t"
        "strb r10, [r8, r7]\n\t"
        "add r8, r8, r7, lsl #1\n\t"
        "strb r11, [r8]\n\t"
        "strb r12, [r8, r7]\n\t"
        "add r8, r8, r7, lsl #1\n\t"
        "str r8, [r3, #16]\n\t"
        "ldr lr, [r3, #20]\n\t"
        "cmp r0, lr\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t");
}

#else

static void dw3_quads(const int16_t *r0, const int16_t *r1, const int16_t *r2, dw3_ctx *ctx)
{
    const int16_t *rows[3];
    int32_t k, ky, a[4];
    rows[0] = r0;
    rows[1] = r1;
    rows[2] = r2;
    while (rows[0] != ctx->end) {
        a[0] = a[1] = a[2] = a[3] = ctx->bias2;
        for (ky = 0; ky < 3; ++ky) {
            const uint32_t x01 = ld_pair(rows[ky]), x23 = ld_pair(rows[ky] + 2), x45 = ld_pair(rows[ky] + 4);
            const uint32_t w01 = ctx->w[2 * ky], w21 = ctx->w[2 * ky + 1];
            a[0] = et_smlabb(x23, w21, et_smlad(x01, w01, a[0]));
            a[1] = et_smladx(x23, w21, et_smlatb(x01, w01, a[1]));
            a[2] = et_smlabb(x45, w21, et_smlad(x23, w01, a[2]));
            a[3] = et_smladx(x45, w21, et_smlatb(x23, w01, a[3]));
            rows[ky] += 4;
        }
        for (k = 0; k < 4; ++k) {
            ctx->out[k * ctx->step] = (int8_t)et_ssat8((et_smmlar(a[k], ctx->m, ctx->c1) + (a[k] >> 31)) >> ctx->e);
        }
        ctx->out += 4 * ctx->step;
    }
}

#endif

/* 16-bit lane 0 of a and of b (PKHBT ... LSL #16), lane 1 of a and of b (PKHTB ... ASR #16). */
ET_INLINE uint32_t lanes0(uint32_t a, uint32_t b)
{
#if ET_DSP_ASM
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return et_pack16(et_lo16(a), et_lo16(b));
#endif
}

ET_INLINE uint32_t lanes1(uint32_t a, uint32_t b)
{
#if ET_DSP_ASM
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
#else
    return et_pack16(et_hi16(a), et_hi16(b));
#endif
}

static void st_pair(int16_t *d, uint32_t v)
{
#if ET_DSP_ASM
    et_st32(d, v);
#else
    d[0] = (int16_t)et_lo16(v);
    d[1] = (int16_t)et_hi16(v);
#endif
}

static void fill16(int16_t *d, int32_t n, int32_t v)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        d[i] = (int16_t)v;
    }
}

/* One plane row (of 4 planes n apart) from in_w input pixels `step` bytes apart, two pixels per pass. */
static void plane_row(const et_dsp_dw_params *p, const int8_t *src, size_t step, int16_t *r, int32_t n)
{
    const int32_t x1 = p->pad_w + p->in_w < p->plane_w ? p->pad_w + p->in_w : p->plane_w;
    int32_t px = p->pad_w, k;
    for (k = 0; k < 4; ++k) {
        fill16(r + k * n, p->pad_w, p->in_zp);
        fill16(r + k * n + x1, p->plane_w - x1, p->in_zp);
    }
    for (; px + 1 < x1; px += 2, src += 2 * step) {
        const uint32_t a = et_ld32(src), b = et_ld32(src + step);
        const uint32_t ea = et_sxtb16(a), eb = et_sxtb16(b), oa = et_sxtb16_ror8(a), ob = et_sxtb16_ror8(b);
        st_pair(r + px, lanes0(ea, eb));
        st_pair(r + px + n, lanes0(oa, ob));
        st_pair(r + px + 2 * n, lanes1(ea, eb));
        st_pair(r + px + 3 * n, lanes1(oa, ob));
    }
    if (px < x1) {
        const uint32_t a = et_ld32(src);
        r[px] = (int16_t)et_lo16(et_sxtb16(a));
        r[px + n] = (int16_t)et_lo16(et_sxtb16_ror8(a));
        r[px + 2 * n] = (int16_t)et_hi16(et_sxtb16(a));
        r[px + 3 * n] = (int16_t)et_hi16(et_sxtb16_ror8(a));
    }
}

/* Planes of channels c0 .. c0 + 3 (plane_h x plane_w each, consecutive). */
static void planes(const et_dsp_dw_params *p, const int8_t *in, int32_t c0, int16_t *pl)
{
    const int32_t n = p->plane_h * p->plane_w;
    const size_t step = (size_t)p->in_sx * p->channels;
    int32_t py, k;
    for (py = 0; py < p->plane_h; ++py) {
        const int32_t iy = py - p->pad_h;
        int16_t *r = pl + py * p->plane_w;
        if (iy < 0 || iy >= p->in_h) {
            for (k = 0; k < 4; ++k) {
                fill16(r + k * n, p->plane_w, p->in_zp);
            }
        } else {
            plane_row(p, in + (size_t)iy * p->in_sy * p->channels + c0, step, r, n);
        }
    }
}

static int8_t out_value(const et_dsp_dw_params *p, int32_t a2, const int32_t *rq, int32_t e)
{
    const int32_t v = et_dsp_rq_e(a2, rq, e);
    return (int8_t)(p->act_min > -128 || p->act_max < 127 ? et_dsp_clamp(v, p->act_min, p->act_max) : v);
}

static int8_t *out_at(const et_dsp_dw_params *p, int8_t *out, int32_t oy, int32_t ox)
{
    return out + ((size_t)oy * p->out_sy + (size_t)ox * p->out_sx) * p->out_c;
}

/* The doubled-accumulator sum of one output over k_h rows of `pairs` tap pairs (dilation 1 along x: each pair
 * is one load), or with dilation dw (two loads). */
ET_INLINE int32_t taps(const int16_t *r, const uint32_t *w, int32_t acc, int32_t kh, int32_t pairs, int32_t dy,
                       int32_t dw)
{
    int32_t ky, i;
    for (ky = 0; ky < kh; ++ky, r += dy) {
        for (i = 0; i < pairs; ++i) {
            acc = et_smlad(dw == 1 ? ld_pair(r + 2 * i) : et_pack16(r[2 * i * dw], r[(2 * i + 1) * dw]), *w++, acc);
        }
    }
    return acc;
}

/* Any window: per row, pairs of taps (w[2i], w[2i + 1]) packed in wp[ky * pairs + i], the odd last one with 0
 * (its partner tap reads the plane's spare column). Parameters in locals: outputs may alias *p for the compiler. */
static void channel_generic(const et_dsp_dw_params *p, const int16_t *pl, const uint32_t *wp, int32_t bias2,
                            const int32_t *rq, int8_t *out)
{
    const int32_t pairs = (p->k_w + 1) / 2, e = et_dsp_rq_shift(rq), kh = p->k_h, pw = p->plane_w;
    const int32_t sw = p->stride_w, dw = p->dil_w, dy = p->dil_h * pw, lo = p->act_min, hi = p->act_max;
    const int32_t oh = p->out_h, ow = p->out_w, sy = p->stride_h * pw;
    const size_t osy = (size_t)p->out_sy * p->out_c, osx = (size_t)p->out_sx * p->out_c;
    const int clamp = lo > -128 || hi < 127;
    int32_t oy, ox;
    for (oy = 0; oy < oh; ++oy) {
        int8_t *o = out + oy * osy;
        const int16_t *r = pl + oy * sy;
        for (ox = 0; ox < ow; ++ox, o += osx, r += sw) {
            const int32_t acc = dw == 1 ? taps(r, wp, bias2, kh, pairs, dy, 1) : taps(r, wp, bias2, kh, pairs, dy, dw);
            const int32_t v = et_dsp_rq_e(acc, rq, e);
            *o = (int8_t)(clamp ? et_dsp_clamp(v, lo, hi) : v);
        }
    }
}

/* 3x3, stride 1 and dilation 1 along the rows: four outputs per pass, the last out_w % 4 one by one. */
static void channel_3x3(const et_dsp_dw_params *p, const int16_t *pl, dw3_ctx *ctx, const int32_t *rq, int8_t *out)
{
    const int32_t quads = p->out_w / 4;
    int32_t oy, ox, ky;
    ctx->m = rq[0];
    ctx->c1 = rq[1];
    ctx->e = et_dsp_rq_shift(rq);
    ctx->step = p->out_sx * p->out_c;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int16_t *r = pl + oy * p->stride_h * p->plane_w;
        const size_t dy = (size_t)p->dil_h * p->plane_w;
        if (quads) {
            ctx->out = out_at(p, out, oy, 0);
            ctx->end = r + 4 * quads;
            dw3_quads(r, r + dy, r + 2 * dy, ctx);
            if (p->act_min > -128 || p->act_max < 127) {  /* the row kernel saturates to int8 only */
                for (ox = 0; ox < 4 * quads; ++ox) {
                    int8_t *o = out_at(p, out, oy, ox);
                    *o = (int8_t)et_dsp_clamp(*o, p->act_min, p->act_max);
                }
            }
        }
        for (ox = 4 * quads; ox < p->out_w; ++ox) {
            int32_t acc = ctx->bias2;
            for (ky = 0; ky < 3; ++ky) {
                const int16_t *x = r + ky * dy + ox;
                acc = et_smlabb(ld_pair(x + 2), ctx->w[2 * ky + 1], et_smlad(ld_pair(x), ctx->w[2 * ky], acc));
            }
            *out_at(p, out, oy, ox) = out_value(p, acc, rq, ctx->e);
        }
    }
}

/* Every 4-channel block of one image: planes, then each channel with its packed doubled weights. */
ET_INLINE void dw_image(const et_dsp_dw_params *p, const int8_t *in, int8_t *out, int16_t *pl, uint32_t *wp,
                        int fast)
{
    const int32_t n = p->plane_h * p->plane_w, pairs = (p->k_w + 1) / 2;
    dw3_ctx ctx;
    int32_t c0, k, ky, kx;
    for (c0 = 0; c0 < p->channels; c0 += 4) {
        planes(p, in, c0, pl);
        for (k = 0; k < 4 * p->multiplier; ++k) {
            const int32_t c = c0 * p->multiplier + k;  /* output channel; its plane is k / multiplier */
            const int16_t *plane = pl + k / p->multiplier * n;
            const int8_t *w = p->filter + (size_t)c * p->k_h * p->k_w;
            const int32_t *rq = p->rq + p->rq_stride * c;
            if (fast) {
                for (ky = 0; ky < 3; ++ky, w += 3) {
                    ctx.w[2 * ky] = et_pack16(2 * w[0], 2 * w[1]);
                    ctx.w[2 * ky + 1] = et_pack16(2 * w[2], 2 * w[1]);
                }
                ctx.bias2 = p->bias[c];
                channel_3x3(p, plane, &ctx, rq, out + c);
                continue;
            }
            for (ky = 0; ky < p->k_h; ++ky, w += p->k_w) {
                for (kx = 0; kx < p->k_w; kx += 2) {
                    wp[ky * pairs + kx / 2] = et_pack16(2 * w[kx], kx + 1 < p->k_w ? 2 * w[kx + 1] : 0);
                }
            }
            channel_generic(p, plane, wp, p->bias[c], rq, out + c);
        }
    }
}

/* Inlined into each entry point with `fast` constant: each links only its own channel loop. */
ET_INLINE void dw(const et_dsp_dw_params *p, const int8_t *in, int8_t *out, int32_t *scratch, int fast)
{
    int16_t *pl = (int16_t *)(void *)scratch;
    uint32_t *wp = (uint32_t *)(void *)(pl + 4 * p->plane_h * p->plane_w);
    const size_t in_image = (size_t)p->in_h * p->in_w * p->channels;
    const size_t out_image = (size_t)p->out_h * p->out_w * p->out_c;
    int32_t b;
    for (b = 0; b < p->batches; ++b) {
        dw_image(p, in + (size_t)b * in_image, out + (size_t)b * out_image, pl, wp, fast);
    }
}

void et_dsp_dw(const et_dsp_dw_params *p, const int8_t *in, int8_t *out, int32_t *scratch)
{
    dw(p, in, out, scratch, 0);
}

void et_dsp_dw3x3(const et_dsp_dw_params *p, const int8_t *in, int8_t *out, int32_t *scratch)
{
    dw(p, in, out, scratch, 1);
}
