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

#define ET_DIMS 6  /* elementwise and layout kernels work on shapes extended to 6-D */

/* MUL, SUB, ADD (beyond 4-D or constant operand), MINIMUM, MAXIMUM with broadcasting (element strides 0
 * on broadcast axes). */
typedef struct {
    int32_t out_shape[ET_DIMS];
    int32_t in1_stride[ET_DIMS], in2_stride[ET_DIMS];
    int32_t in1_offset, in2_offset, output_offset;  /* -zero points (inputs), zero point (output) */
    int32_t left_shift;                             /* SUB: 20 */
    int32_t in1_mult, in1_shift, in2_mult, in2_shift;
    int32_t out_mult, out_shift, act_min, act_max;
} et_binary_params;

/* One int8 in, one int8 out, element by element (activations, requantization). */
typedef struct {
    int32_t n;
    int32_t input_zp, output_zp;
    int32_t mult, shift;       /* LOGISTIC/TANH input scaling; RELU/LEAKY_RELU/QUANTIZE identity; HARD_SWISH output */
    int32_t mult2, shift2;     /* LEAKY_RELU alpha; HARD_SWISH reluish */
    int32_t range_radius;      /* LOGISTIC/TANH: |input - zp| saturating the output */
    int32_t act_min, act_max;  /* RELU/RELU6 clamp */
} et_unary_params;

/* QUANTIZE float32 -> int8 (thresholds on the float's order key) and DEQUANTIZE int8 -> float32
 * (the 256 float32 bit patterns); float32 travels as 4 little-endian bytes. */
typedef struct {
    int32_t n;
    const int32_t *thresholds;  /* [255]: the smallest order key mapping to -127 + k, k = 0..254 */
} et_quantize_params;

typedef struct {
    int32_t n;
    const int32_t *lut;         /* [256]: float32 bits of the result, indexed by (uint8_t)q */
} et_dequantize_params;

/* TRANSPOSE and STRIDED_SLICE: out[i0..i5] = in[base + sum(i_k * stride_k)], output in row-major order. */
typedef struct {
    int32_t out_shape[ET_DIMS];
    int32_t stride[ET_DIMS];    /* input element step per output index step (may be negative) */
    int32_t base;
} et_gather_params;

/* RESIZE_NEAREST_NEIGHBOR, NHWC: output row y reads input row y_map[y], column x reads x_map[x]. */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    const int32_t *y_map;       /* [out_h] */
    const int32_t *x_map;       /* [out_w] */
} et_resize_params;

/* UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations, int8 weights, int32 biases, int16 cell state and
 * gates, as TFLite-Micro's integer LSTM. Gates in the order forget, input, cell, output. The state
 * starts from zero at every call (TFLite-Micro after ResetVariableTensors). */
typedef struct {
    int32_t batches, steps, n_input, n_cell, time_major;
    int32_t input_offset, hidden_offset, hidden_zp;     /* -input zp, -hidden zp, hidden zp */
    int32_t in_mult[4], in_shift[4], rec_mult[4], rec_shift[4];
    int32_t forget_mult, forget_shift;   /* forget gate x cell state -> cell state */
    int32_t input_mult, input_shift;     /* input gate x cell gate -> cell state */
    int32_t hidden_mult, hidden_shift;   /* tanh(cell state) x output gate -> hidden state (int8) */
    int32_t tanh_mult, tanh_shift;       /* int16 tanh of the cell state */
    int32_t cell_clip;                   /* quantized clip of the cell state, 0: none */
    const int8_t *w_in;      /* [4][n_cell][n_input] */
    const int8_t *w_rec;     /* [4][n_cell][n_cell] */
    const int32_t *bias;     /* [4][n_cell] */
} et_lstm_params;

/* Scratch bytes et_lstm_s8 needs: six int16 vectors and the int8 hidden state. */
#define ET_LSTM_SCRATCH(n_cell) (12 * (n_cell) + (n_cell) + 16)

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
void et_mul_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void et_add_nd_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void et_sub_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void et_minimum_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void et_maximum_s8(const et_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void et_logistic_s8(const et_unary_params *p, const int8_t *in, int8_t *out);
void et_tanh_s8(const et_unary_params *p, const int8_t *in, int8_t *out);
void et_hard_swish_s8(const et_unary_params *p, const int8_t *in, int8_t *out);
void et_leaky_relu_s8(const et_unary_params *p, const int8_t *in, int8_t *out);
void et_relu_s8(const et_unary_params *p, const int8_t *in, int8_t *out);
void et_relu6_s8(const et_unary_params *p, const int8_t *in, int8_t *out);
void et_requantize_s8(const et_unary_params *p, const int8_t *in, int8_t *out);
void et_quantize_f32_s8(const et_quantize_params *p, const int8_t *in, int8_t *out);
void et_dequantize_s8_f32(const et_dequantize_params *p, const int8_t *in, int8_t *out);
void et_gather_s8(const et_gather_params *p, const int8_t *in, int8_t *out);
void et_resize_nearest_s8(const et_resize_params *p, const int8_t *in, int8_t *out);
void et_lstm_s8(const et_lstm_params *p, const int8_t *in, int8_t *out, int32_t *scratch);

#endif
