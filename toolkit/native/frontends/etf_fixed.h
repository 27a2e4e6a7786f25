/* edgetk frontends: fixed-point primitives shared by the frontend kernels.
 *
 * C99, integers only, no libc (only <stdint.h>), no state. Signed right shifts are arithmetic
 * (floor) as on every compiler edgetk targets (TFLite relies on the same). Signed overflow never
 * happens: each caller documents the bounds of its operands.
 *
 * Where the core has the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33/M55), a primitive is
 * one instruction; elsewhere it is the portable expression that defines that instruction's result,
 * so both give the same bits (tests run the host build and a QEMU Cortex-M4 build on the same
 * input and compare). -DETF_PORTABLE compiles the portable expressions on any core. */
#ifndef ETF_FIXED_H
#define ETF_FIXED_H

#include <stdint.h>

#if defined(__GNUC__)
#define ETF_INLINE static inline __attribute__((always_inline))
#else
#define ETF_INLINE static inline
#endif

/* floor(a * b / 2^32) (SMMUL). */
ETF_INLINE int32_t etf_smmul(int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP) && !defined(ETF_PORTABLE)
    int32_t r;
    __asm__("smmul %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b) >> 32);
#endif
}

/* acc + floor(a * b / 2^32) (SMMLA). */
ETF_INLINE int32_t etf_smmla(int32_t acc, int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP) && !defined(ETF_PORTABLE)
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return acc + (int32_t)(((int64_t)a * b) >> 32);
#endif
}

/* acc + floor(-a * b / 2^32) (SMMLS). */
ETF_INLINE int32_t etf_smmls(int32_t acc, int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP) && !defined(ETF_PORTABLE)
    int32_t r;
    __asm__("smmls %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return acc + (int32_t)((-(int64_t)a * b) >> 32);
#endif
}

/* Leading zero bits of a nonzero 32-bit value. */
ETF_INLINE int32_t etf_clz32(uint32_t x)
{
#if defined(__GNUC__)
    return (int32_t)__builtin_clz(x);
#else
    int32_t n = 0;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
#endif
}

/* Bits needed to write x (0 for 0): floor(log2 x) + 1. */
ETF_INLINE int32_t etf_bitlen32(uint32_t x)
{
    return x ? 32 - etf_clz32(x) : 0;
}

ETF_INLINE int32_t etf_bitlen64(uint64_t x)
{
    uint32_t hi = (uint32_t)(x >> 32);
    return hi ? 64 - etf_clz32(hi) : etf_bitlen32((uint32_t)x);
}

/* x >> s for 0 <= s < 64, on 32-bit halves (no libgcc helper on 32-bit cores). */
ETF_INLINE uint64_t etf_shr64(uint64_t x, int32_t s)
{
    uint32_t hi = (uint32_t)(x >> 32), lo = (uint32_t)x;
    if (s >= 32) {
        return (uint64_t)(hi >> (s - 32));
    }
    if (s == 0) {
        return x;
    }
    return ((uint64_t)(hi >> s) << 32) | ((lo >> s) | (hi << (32 - s)));
}

/* Arithmetic x >> s for 0 < s < 32 with round half up, on a signed 64-bit value whose result
 * fits in 32 bits. */
ETF_INLINE int32_t etf_round_shr64(int64_t x, int32_t s)
{
    int64_t r = x + (int64_t)(1u << (s - 1));
    uint32_t lo = (uint32_t)(uint64_t)r;
    int32_t hi = (int32_t)(r >> 32);
    /* (hi:lo) >> s for s < 32, keeping the low 32 bits of the (small) result */
    return (int32_t)((lo >> s) | ((uint32_t)hi << (32 - s)));
}

ETF_INLINE int16_t etf_sat16(int32_t x)
{
    return (int16_t)(x > 32767 ? 32767 : (x < -32768 ? -32768 : x));
}

ETF_INLINE int8_t etf_sat8(int32_t x)
{
    return (int8_t)(x > 127 ? 127 : (x < -128 ? -128 : x));
}

#endif
