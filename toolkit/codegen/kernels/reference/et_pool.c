/* AVERAGE_POOL_2D, MAX_POOL_2D and MEAN, int8, as TFLite's reference kernels. */
#include "et_kernels.h"
#include "et_fixedpoint.h"

static int32_t imax(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t imin(int32_t a, int32_t b) { return a < b ? a : b; }

static int32_t pool_window(const et_pool_params *p, const int8_t *in, int32_t oy, int32_t ox,
                           int32_t c, int is_max, int32_t *count)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    const int32_t fy0 = imax(0, -y0), fy1 = imin(p->k_h, p->in_h - y0);
    const int32_t fx0 = imax(0, -x0), fx1 = imin(p->k_w, p->in_w - x0);
    int32_t acc = is_max ? -128 : 0;
    int32_t fy, fx;
    *count = 0;
    for (fy = fy0; fy < fy1; ++fy) {
        for (fx = fx0; fx < fx1; ++fx) {
            const int32_t v = in[((size_t)(y0 + fy) * p->in_w + (x0 + fx)) * p->channels + c];
            acc = is_max ? imax(acc, v) : acc + v;
            ++*count;
        }
    }
    return acc;
}

static void pool(const et_pool_params *p, const int8_t *in, int8_t *out, int is_max)
{
    int32_t b, oy, ox, c, count;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *src = in + (size_t)b * p->in_h * p->in_w * p->channels;
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                for (c = 0; c < p->channels; ++c) {
                    int32_t acc = pool_window(p, src, oy, ox, c, is_max, &count);
                    if (!is_max && count > 0) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    *out++ = (int8_t)et_clamp(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

void et_avg_pool_s8(const et_pool_params *p, const int8_t *in, int8_t *out)
{
    pool(p, in, out, 0);
}

void et_max_pool_s8(const et_pool_params *p, const int8_t *in, int8_t *out)
{
    pool(p, in, out, 1);
}

/* Sum over the reduced axes straight into each output (no zeroed scratch: the library links without
 * libc, and gcc turns zero-fill loops into memset). */
static int32_t reduced_sum(const et_mean_params *p, const int8_t *in, const int32_t *outer)
{
    int32_t r, d, sum = 0;
    for (r = 0; r < p->num_elements; ++r) {
        int32_t rest = r;
        size_t offset = 0;
        for (d = 3; d >= 0; --d) {
            int32_t coord = outer[d];
            if (p->reduce[d]) {
                coord = rest % p->in_shape[d];
                rest /= p->in_shape[d];
            }
            offset += (size_t)coord * (size_t)p->stride[d];
        }
        sum += in[offset];
    }
    return sum;
}

void et_mean_s8(const et_mean_params *p, const int8_t *in, int8_t *out)
{
    int32_t o[4];
    int32_t n[4], d;
    for (d = 0; d < 4; ++d) {
        n[d] = p->reduce[d] ? 1 : p->in_shape[d];
    }
    for (o[0] = 0; o[0] < n[0]; ++o[0]) {
        for (o[1] = 0; o[1] < n[1]; ++o[1]) {
            for (o[2] = 0; o[2] < n[2]; ++o[2]) {
                for (o[3] = 0; o[3] < n[3]; ++o[3]) {
                    const int32_t sum = reduced_sum(p, in, o) - p->input_zp * p->num_elements;
                    const int32_t v = et_mbqm(sum, p->mult, p->shift) + p->output_zp;
                    *out++ = (int8_t)et_clamp(v, -128, 127);
                }
            }
        }
    }
}
