/* edgetk dsp kernel set: kernels for Cortex-M cores with the DSP extension (M4, M7, M33), on data that
 * the code generator re-lays out for them (toolkit/codegen/specialize.py). Same bits as TFLite-Micro's
 * reference kernels; on cores without the DSP extension and on the host the same C runs portable
 * expressions of the same instructions (et_dsp_simd.h).
 *
 * Conventions shared by every kernel here:
 *  - the input offset is folded into the bias: bias' = bias - zp_in * sum(w); taps in the padding read
 *    the input zero point, so they add nothing, as TFLite-Micro skips them;
 *  - a "group" is 4 consecutive values of the reduction axis k (for a conv: (ky, kx, ci) flattened);
 *    16-bit data of a group is stored in the order k0, k2, k1, k3 (what SXTB16 makes of 4 bytes), so
 *    one SMLAD multiplies the pair (k0, k2) and the next the pair (k1, k3);
 *  - requantization: rq = {multiplier, c = (1 << (e - 1)) + (output_offset << e)} per output channel
 *    (rq_stride 2; 0 when one pair serves every channel), e = right shift >= 1 = 1 + trailing zeros of c
 *    (c is 2^(e-1) times an odd number), takes a doubled accumulator a2 = 2 * acc to
 *    ssat8((SMMLAR(a2, multiplier, c) + (a2 >> 31)) >> e): TFLite's MultiplyByQuantizedMultiplier
 *    plus the output offset, exactly (the generator checks the bounds this needs per channel);
 *  - "w16" kernels read int16 weights stored doubled (2w) and doubled biases, so the accumulator
 *    arrives doubled; "w8" kernels read int8 weights and double the accumulator themselves. */
#ifndef ET_DSP_H
#define ET_DSP_H
#include <stddef.h>
#include <stdint.h>

#include "et_kernels.h"

/* CONV_2D as im2col of two output pixels at a time + a 2x2 (channels x pixels) GEMM micro-kernel. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t groups;            /* ceil(k_h * k_w * in_c / 4) */
    int32_t in_zp;             /* value of padded taps (and of the k padding) */
    int32_t act_min, act_max, rq_stride;
    const void *filter;        /* per channel pair, per group: int8 [2][4] (w8) or int16 [2][4] k0,k2,k1,k3 (w16) */
    const int32_t *bias;       /* [out_c rounded up to 2], offset folded (doubled for w16) */
    const int32_t *rq;         /* [out_c rounded up to 2][2], or [1][2] */
} et_dsp_conv_params;

/* FULLY_CONNECTED (per-tensor or per-channel, weight zero point 0): 4 rows per pass. */
typedef struct {
    int32_t batches, in_depth, out_depth;
    int32_t groups;            /* in_depth / 4 */
    int32_t act_min, act_max, rq_stride;
    const void *filter;        /* per 4 rows, per group: int8 [4][4] (w8) or int16 [4][4] k0,k2,k1,k3 (w16) */
    const int32_t *bias;       /* [out_depth rounded up to 4], offset folded (doubled for w16) */
    const int32_t *rq;         /* [out_depth rounded up to 4][2], or [1][2] */
} et_dsp_fc_params;

/* DEPTHWISE_CONV_2D, any depth multiplier: 4 input channels at a time copied into zero-point-padded int16
 * planes, each plane convolved for its `multiplier` output channels. Geometry in the kernel's orientation;
 * pixel (y, x) of the NHWC tensors is pixel y * sy + x * sx (the generator may swap the axes so that plane
 * rows run along the longer side). */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;  /* channels: input channels (a multiple of 4) */
    int32_t out_c, multiplier;                            /* out_c = channels * multiplier */
    int32_t in_sy, in_sx, out_sy, out_sx;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t plane_h, plane_w;  /* padded plane of one channel (plane_w even, one spare column) */
    int32_t in_zp;
    int32_t act_min, act_max, rq_stride;
    const int8_t *filter;      /* [out_c][k_h][k_w] */
    const int32_t *bias;       /* [out_c], offset folded, doubled */
    const int32_t *rq;         /* [out_c][2], or [1][2] */
} et_dsp_dw_params;

/* ADD of two tensors of the output's shape (TFLite's left_shift = 20 scheme); input 2 has the larger scale,
 * which TFLite rescales by exactly 1/2 (multiplier 2^30, shift 0). */
typedef struct {
    int32_t n;
    int32_t k1, m1, c1, z1, e1;  /* input 1: x2 = (a << 21) + k1; rounding c1; z1 = -1 if e1 > 0 else 0 */
    int32_t k2;                  /* input 2: twice its rescaled value is (b << 20) + k2 */
    int32_t mo, co, eo;          /* output requantization of 2 * (s1 + s2), output offset in co */
    int32_t act_min, act_max;
} et_dsp_add_params;

/* Bytes of the int16 im2col of two pixels (+ the int8 gather row) a conv needs in scratch. */
#define ET_DSP_CONV_COLS(groups) (16 * (groups) + 4 * (groups))

void et_dsp_conv_w8(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
void et_dsp_conv_w16(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
/* In place, output rows delayed in a ring of pad_h + 1 rows placed after the im2col in `scratch`. */
void et_dsp_conv_w8_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
void et_dsp_conv_w16_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
/* In place by pixels (stride 1, in_w == out_w, out_c <= in_c): a ring of pad_h * out_w + pad_w + 2 pixels
 * (rounded up to even) after the im2col in `scratch`. */
void et_dsp_conv_w8_inplace_px(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
void et_dsp_conv_w16_inplace_px(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
/* 1x1 unpadded convolutions with in_c % 4 == 0: the input pixels are the columns (no gather). */
void et_dsp_conv1x1_w8(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
void et_dsp_conv1x1_w16(const et_dsp_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
void et_dsp_conv1x1_w8_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
void et_dsp_conv1x1_w16_inplace(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
void et_dsp_conv1x1_w8_inplace_px(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
void et_dsp_conv1x1_w16_inplace_px(const et_dsp_conv_params *p, int8_t *buf, int8_t *scratch);
/* Fused with the same-shape ADD that reads the conv's output (batch 1): out = ADD(conv(in), other), in place over
 * other allowed. add: the ADD's et_dsp_add_params fields in order, then 1 when the conv output is its input 1.
 * scratch: ET_DSP_CONV_COLS(groups) + 2 * out_c bytes. */
void et_dsp_conv_w8_add(const et_dsp_conv_params *p, const int8_t *in, const int8_t *other, const int32_t *add,
                        int8_t *out, int32_t *scratch);
void et_dsp_conv_w16_add(const et_dsp_conv_params *p, const int8_t *in, const int8_t *other, const int32_t *add,
                         int8_t *out, int32_t *scratch);
void et_dsp_conv1x1_w8_add(const et_dsp_conv_params *p, const int8_t *in, const int8_t *other, const int32_t *add,
                           int8_t *out, int32_t *scratch);
void et_dsp_conv1x1_w16_add(const et_dsp_conv_params *p, const int8_t *in, const int8_t *other, const int32_t *add,
                            int8_t *out, int32_t *scratch);
void et_dsp_fc_w8(const et_dsp_fc_params *p, const int8_t *in, int8_t *out);
void et_dsp_fc_w16(const et_dsp_fc_params *p, const int8_t *in, int8_t *out);
void et_dsp_dw(const et_dsp_dw_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
/* 3x3, stride 1 and dilation 1 along the plane rows: four outputs per pass. */
void et_dsp_dw3x3(const et_dsp_dw_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
void et_dsp_add(const et_dsp_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
/* AVERAGE_POOL_2D (windows of at most 256 pixels) and MAX_POOL_2D on the reference parameters, channels % 4 == 0. */
void et_dsp_avg_pool(const et_pool_params *p, const int8_t *in, int8_t *out);
void et_dsp_max_pool(const et_pool_params *p, const int8_t *in, int8_t *out);

/* GEMM micro-kernels (et_dsp_mm.c). acc holds the initial sums and receives the results.
 * 2x2: acc = {c0 p0, c1 p0, c0 p1, c1 p1}; x: per group, pixel 0's 4 int16 then pixel 1's.
 * 4x1: acc = {r0, r1, r2, r3}; x: int8, natural order. */
/* Fused conv GEMM (DSP builds only): all channel pairs of two pixels, requantized to full-range int8.
 * Field offsets are read by assembly (32-bit pointers): keep the order. */
typedef struct {
    const void *w;             /* weights of the first channel pair (advances) */
    const int16_t *cols;       /* the two pixels' columns */
    int32_t groups, pairs;     /* pairs >= 1 (counts down) */
    const int32_t *bias;       /* advances by 2 per pair */
    const int32_t *rq;         /* advances by 2 * rq_step per pair */
    int32_t rq_step;           /* bytes between two channels' {multiplier, c}: 8, or 0 (one pair for all) */
    int8_t *o0, *o1;           /* outputs of pixel 0 and 1 (advance by 2 per pair) */
} et_dsp_gemm_ctx;
void et_dsp_gemm2x2_w8(et_dsp_gemm_ctx *ctx);
void et_dsp_gemm2x2_w16(et_dsp_gemm_ctx *ctx);

/* Fused FC (DSP builds only): all full quads of rows of one input vector, requantized to full-range int8.
 * Field offsets are read by assembly (32-bit pointers): keep the order. */
typedef struct {
    const void *w;             /* weights of the first quad (advances) */
    const int8_t *x;           /* the input vector */
    int32_t groups, quads;     /* quads >= 1 (counts down) */
    const int32_t *bias;       /* advances by 4 per quad */
    const int32_t *rq;         /* advances by 4 * rq_step per quad */
    int32_t rq_step;           /* bytes between two rows' {multiplier, c}: 8, or 0 (one pair for all) */
    int8_t *out;               /* advances by 4 per quad */
} et_dsp_fc_ctx;
void et_dsp_fc4_w8(et_dsp_fc_ctx *ctx);
void et_dsp_fc4_w16(et_dsp_fc_ctx *ctx);

typedef void (*et_dsp_mm2x2_fn)(const void *w, const int16_t *x, int32_t groups, int32_t *acc);
typedef void (*et_dsp_mm4x1_fn)(const void *w, const int8_t *x, int32_t groups, int32_t *acc);
void et_dsp_mm2x2_w8(const void *w, const int16_t *x, int32_t groups, int32_t *acc);
void et_dsp_mm2x2_w16(const void *w, const int16_t *x, int32_t groups, int32_t *acc);
void et_dsp_mm4x1_w8(const void *w, const int8_t *x, int32_t groups, int32_t *acc);
void et_dsp_mm4x1_w16(const void *w, const int8_t *x, int32_t groups, int32_t *acc);

#endif
