/* AVERAGE_POOL_2D and MAX_POOL_2D of the dsp set (channels % 4 == 0; average windows of at most 256 pixels):
 * four channels per word load. Averages sum in 16-bit lanes (|sum| <= 128 * 256 fits) and divide with
 * TFLite's rounding; maxima are bytewise (SSUB8 + SEL), the activation clamp too. Same parameters as the
 * reference kernels (et_pool_params). */
#include "et_kernels.h"
#include "et_dsp.h"
#include "et_dsp_simd.h"

/* Bytewise signed max of a and b (SSUB8 sets a byte's GE flag where a >= b, SEL picks those bytes of a). */
ET_INLINE uint32_t bytes_max(uint32_t a, uint32_t b)
{
#if ET_DSP_ASM
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
#else
    uint32_t r = 0;
    int32_t k;
    for (k = 0; k < 32; k += 8) {
        const int8_t x = (int8_t)(a >> k), y = (int8_t)(b >> k);
        r |= (uint32_t)(uint8_t)(x > y ? x : y) << k;
    }
    return r;
#endif
}

/* Bytewise signed min: min(a, b) = ~max(~a, ~b) (bitwise not reverses the signed order, byte by byte). */
ET_INLINE uint32_t bytes_min(uint32_t a, uint32_t b)
{
    return ~bytes_max(~a, ~b);
}

static int8_t average(const et_pool_params *p, int32_t acc, int32_t n)
{
    acc = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
    return (int8_t)et_dsp_clamp(acc, p->act_min, p->act_max);
}

static int32_t imax(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static int32_t imin(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* One output pixel: the window clipped to the image, 4 channels per pass. */
static void pool_pixel(const et_pool_params *p, const int8_t *in, int32_t oy, int32_t ox, int8_t *out, int is_max)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w, ch = p->channels;
    const int32_t fy0 = imax(0, -y0), fy1 = imin(p->k_h, p->in_h - y0);
    const int32_t fx0 = imax(0, -x0), fx1 = imin(p->k_w, p->in_w - x0);
    const int32_t n = (fy1 - fy0) * (fx1 - fx0);
    const uint32_t lo = (uint32_t)(uint8_t)p->act_min * 0x01010101u, hi = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    int32_t c, fy, fx;
    for (c = 0; c < ch; c += 4) {
        uint32_t even = 0, odd = 0, m = 0x80808080u;
        for (fy = fy0; fy < fy1; ++fy) {
            const int8_t *row = in + ((size_t)(y0 + fy) * p->in_w + x0) * ch + c;
            for (fx = fx0; fx < fx1; ++fx) {
                const uint32_t v = et_ld32(row + (size_t)fx * ch);
                if (is_max) {
                    m = bytes_max(m, v);
                } else {
                    even = et_sadd16(even, et_sxtb16(v));
                    odd = et_sadd16(odd, et_sxtb16_ror8(v));
                }
            }
        }
        if (is_max) {
            et_st32(out + c, bytes_min(bytes_max(m, lo), hi));
        } else if (n > 0) {
            out[c] = average(p, et_lo16(even), n);
            out[c + 1] = average(p, et_lo16(odd), n);
            out[c + 2] = average(p, et_hi16(even), n);
            out[c + 3] = average(p, et_hi16(odd), n);
        } else {
            et_st32(out + c, bytes_min(bytes_max(0, lo), hi));
        }
    }
}

ET_INLINE void pool(const et_pool_params *p, const int8_t *in, int8_t *out, int is_max)
{
    int32_t b, oy, ox;
    for (b = 0; b < p->batches; ++b, in += (size_t)p->in_h * p->in_w * p->channels) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox, out += p->channels) {
                pool_pixel(p, in, oy, ox, out, is_max);
            }
        }
    }
}

void et_dsp_avg_pool(const et_pool_params *p, const int8_t *in, int8_t *out)
{
    pool(p, in, out, 0);
}

void et_dsp_max_pool(const et_pool_params *p, const int8_t *in, int8_t *out)
{
    pool(p, in, out, 1);
}
