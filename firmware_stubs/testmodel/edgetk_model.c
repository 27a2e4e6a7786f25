#include "edgetk_model.h"

#define IN EDGETK_INPUT_SIZE
#define OUT EDGETK_OUTPUT_SIZE

/* weights[o][i] = ((o * 7 + i * 3) % 11) - 5, bias[o] = 100 * o - 150 */
static const int8_t k_weights[OUT][IN] = {
    {-5, -2, 1, 4, -4, -1, 2, 5, -3, 0, 3, -5, -2, 1, 4, -4},
    {2, 5, -3, 0, 3, -5, -2, 1, 4, -4, -1, 2, 5, -3, 0, 3},
    {-2, 1, 4, -4, -1, 2, 5, -3, 0, 3, -5, -2, 1, 4, -4, -1},
    {5, -3, 0, 3, -5, -2, 1, 4, -4, -1, 2, 5, -3, 0, 3, -5},
};
static const int32_t k_bias[OUT] = {-150, -50, 50, 150};
static const int32_t k_multiplier = 1374389535; /* 0.64 * 2^31 */
static const int k_shift = -3;                  /* effective scale 0.64 / 8 = 0.08 */

static int32_t rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab = (int64_t)a * (int64_t)b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t rounding_divide_by_pot(int32_t x, int exponent)
{
    int32_t mask = (int32_t)((1u << exponent) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int edgetk_invoke(const int8_t *input, int8_t *output)
{
    for (int o = 0; o < OUT; o++) {
        int32_t acc = k_bias[o];
        for (int i = 0; i < IN; i++) {
            acc += ((int32_t)input[i] - EDGETK_INPUT_ZERO_POINT) * (int32_t)k_weights[o][i];
        }
        acc = rounding_divide_by_pot(rounding_doubling_high_mul(acc, k_multiplier), -k_shift);
        acc += EDGETK_OUTPUT_ZERO_POINT;
        output[o] = (int8_t)(acc < -128 ? -128 : (acc > 127 ? 127 : acc));
    }
    return 0;
}
