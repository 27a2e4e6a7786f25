/* QUANTIZE float32 -> int8 and DEQUANTIZE int8 -> float32 at the model's edges, bit-exact with
 * TFLite-Micro without any float arithmetic (no FPU or soft-float library needed): quantization is a
 * monotone step function of the input, so it is a search in 255 precomputed thresholds on the
 * float's order key; dequantization has 256 possible results, precomputed. Float32 values travel
 * as 4 little-endian bytes (any alignment). */
#include "et_kernels.h"

/* Order key of a float32's bits: keys compare as the floats do (-0 just below +0). */
static int32_t order_key(uint32_t bits)
{
    const int32_t i = (int32_t)bits;
    return i >= 0 ? i : (int32_t)(bits ^ 0x7FFFFFFFu);
}

void et_quantize_f32_s8(const et_quantize_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        const uint8_t *b = (const uint8_t *)in + (size_t)i * 4;
        const uint32_t bits = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
                              ((uint32_t)b[3] << 24);
        const int32_t key = order_key(bits);
        int32_t lo = 0, hi = 255;  /* count of thresholds <= key lies in [lo, hi] */
        while (lo < hi) {
            const int32_t mid = (lo + hi) / 2;
            if (p->thresholds[mid] <= key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        out[i] = (int8_t)(lo - 128);
    }
}

void et_dequantize_s8_f32(const et_dequantize_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    uint8_t *o = (uint8_t *)out;
    for (i = 0; i < p->n; ++i) {
        const uint32_t bits = (uint32_t)p->lut[(uint8_t)in[i]];
        o[4 * i] = (uint8_t)(bits & 0xFFu);
        o[4 * i + 1] = (uint8_t)((bits >> 8) & 0xFFu);
        o[4 * i + 2] = (uint8_t)((bits >> 16) & 0xFFu);
        o[4 * i + 3] = (uint8_t)(bits >> 24);
    }
}
