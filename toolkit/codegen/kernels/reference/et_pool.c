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

static size_t out_index(const et_mean_params *p, const int32_t *idx)
{
    size_t o = 0;
    int d;
    for (d = 0; d < 4; ++d) {
        o = o * (size_t)(p->reduce[d] ? 1 : p->in_shape[d]) + (size_t)(p->reduce[d] ? 0 : idx[d]);
    }
    return o;
}

void et_mean_s8(const et_mean_params *p, const int8_t *in, int8_t *out, int32_t *scratch)
{
    int32_t idx[4];
    size_t n_out = 1, i = 0, o;
    int d;
    for (d = 0; d < 4; ++d) {
        n_out *= (size_t)(p->reduce[d] ? 1 : p->in_shape[d]);
    }
    for (o = 0; o < n_out; ++o) {
        scratch[o] = 0;
    }
    for (idx[0] = 0; idx[0] < p->in_shape[0]; ++idx[0]) {
        for (idx[1] = 0; idx[1] < p->in_shape[1]; ++idx[1]) {
            for (idx[2] = 0; idx[2] < p->in_shape[2]; ++idx[2]) {
                for (idx[3] = 0; idx[3] < p->in_shape[3]; ++idx[3]) {
                    scratch[out_index(p, idx)] += in[i++];
                }
            }
        }
    }
    for (o = 0; o < n_out; ++o) {
        const int64_t n = p->num_elements;
        int32_t shift = 0, v;
        int64_t mult;
        const int32_t sum = scratch[o] - p->input_zp * p->num_elements;
        while (shift < 63 && ((int64_t)1 << (shift + 1)) <= n) {
            ++shift;
        }
        shift = shift < 32 ? shift : 32;
        shift = shift < 31 + p->shift ? shift : 31 + p->shift;
        mult = (((int64_t)p->mult << shift) + n / 2) / n;
        v = et_mbqm(sum, (int32_t)mult, p->shift - shift) + p->output_zp;
        out[o] = (int8_t)et_clamp(v, -128, 127);
    }
}
