/* edgetk kernel interface: every kernel set (reference, optimized variants) implements these. */
#ifndef ET_KERNELS_H
#define ET_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* NHWC shapes throughout; batches folded into the outer loop. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t depth_multiplier;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *filter;   /* conv: [out_c][k_h][k_w][in_c]; depthwise: [k_h][k_w][out_c] */
    const int32_t *bias;    /* [out_c] or NULL */
    const int32_t *mult;    /* [out_c] */
    const int32_t *shift;   /* [out_c] */
} et_conv_params;

typedef struct {
    int32_t batches, in_depth, out_depth;
    int32_t input_offset, filter_offset, output_offset, act_min, act_max;
    const int8_t *filter;   /* [out_depth][in_depth] */
    const int32_t *bias;    /* [out_depth] or NULL */
    const int32_t *mult;    /* [out_depth] */
    const int32_t *shift;   /* [out_depth] */
} et_fc_params;

typedef struct {
    int32_t out_shape[4];
    int32_t in1_stride[4], in2_stride[4];  /* element strides, 0 on broadcast dims */
    int32_t left_shift;
    int32_t in1_offset, in1_mult, in1_shift;
    int32_t in2_offset, in2_mult, in2_shift;
    int32_t output_offset, out_mult, out_shift, act_min, act_max;
} et_add_params;

typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} et_pool_params;

typedef struct {
    int32_t in_shape[4];     /* input extended to 4-D */
    int32_t stride[4];       /* input element strides */
    int32_t reduce[4];       /* 1 on reduced axes */
    int32_t input_zp, output_zp;
    int32_t mult, shift;     /* requantization with the 1/num_elements folded in (at codegen time) */
    int32_t num_elements;
} et_mean_params;

typedef struct {
    int32_t outer, depth;
    int32_t input_multiplier, input_left_shift, diff_min;
} et_softmax_params;

typedef struct {
    int32_t in_shape[4], before[4], after[4];
    int8_t pad_value;
} et_pad_params;

typedef struct {
    int32_t outer, n_inputs, out_chunk;
    const int32_t *chunks;   /* [n_inputs] bytes copied per outer step from each input */
} et_concat_params;

/* Per-pixel functions (all out_c channels of output pixel oy, ox): what a kernel set's et_conv.c
 * implements; the schedules below (et_conv_sched.c) call them. */
void et_conv2d_s8_pixel(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int8_t *dst);
void et_depthwise_conv2d_s8_pixel(const et_conv_params *p, const int8_t *in, int32_t oy, int32_t ox,
                                  int8_t *dst);
void et_conv2d_s8(const et_conv_params *p, const int8_t *in, int8_t *out);
void et_depthwise_conv2d_s8(const et_conv_params *p, const int8_t *in, int8_t *out);
/* In-place variants (batch 1, output row bytes <= input row bytes); ring: (pad_h + 1) output rows. */
void et_conv2d_s8_inplace(const et_conv_params *p, int8_t *buf, int8_t *ring);
void et_depthwise_conv2d_s8_inplace(const et_conv_params *p, int8_t *buf, int8_t *ring);
/* Pixel-granular in-place variants (also stride 1, in_w == out_w, out_c <= in_c);
 * ring: (pad_h * out_w + pad_w + 1) output pixels. */
void et_conv2d_s8_inplace_px(const et_conv_params *p, int8_t *buf, int8_t *ring);
void et_depthwise_conv2d_s8_inplace_px(const et_conv_params *p, int8_t *buf, int8_t *ring);
void et_fully_connected_s8(const et_fc_params *p, const int8_t *in, int8_t *out);
void et_add_s8(const et_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void et_avg_pool_s8(const et_pool_params *p, const int8_t *in, int8_t *out);
void et_max_pool_s8(const et_pool_params *p, const int8_t *in, int8_t *out);
void et_mean_s8(const et_mean_params *p, const int8_t *in, int8_t *out);
void et_softmax_s8(const et_softmax_params *p, const int8_t *in, int8_t *out);
void et_pad_s8(const et_pad_params *p, const int8_t *in, int8_t *out);
void et_concat_s8(const et_concat_params *p, const int8_t *const *ins, int8_t *out);
void et_copy_s8(const int8_t *in, int8_t *out, int32_t n);

#endif
