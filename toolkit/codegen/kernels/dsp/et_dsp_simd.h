/* DSP-extension primitives of the dsp kernel set: one instruction where the core has the DSP extension
 * (__ARM_FEATURE_DSP: Cortex-M4/M7/M33), elsewhere the portable expression that defines the
 * instruction's result, so both give the same bits. -DET_DSP_PORTABLE forces the portable C on any core.
 * Packed values: a uint32_t holds two int16 lanes, lane 0 in bits 0-15; words are read and written
 * little-endian on every host, so the portable C gives the same bits on big-endian machines too (the DSP
 * path needs a little-endian core). Wrapping sums are computed in uint32_t (no signed overflow); signed
 * right shifts are arithmetic, as TFLite assumes too. */
#ifndef ET_DSP_SIMD_H
#define ET_DSP_SIMD_H
#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && defined(__thumb2__) && defined(__GNUC__) && !defined(__ARM_BIG_ENDIAN) && \
    !defined(ET_DSP_PORTABLE)
#define ET_DSP_ASM 1
#else
#define ET_DSP_ASM 0
#endif

#if defined(__GNUC__)
#define ET_INLINE static inline __attribute__((always_inline))
#else
#define ET_INLINE static inline
#endif

/* 4 bytes from any address as a little-endian word (byte 0 in bits 0-7, on any host). */
ET_INLINE uint32_t et_ld32(const void *p)
{
#if ET_DSP_ASM
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
#else
    const uint8_t *b = (const uint8_t *)p;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
#endif
}

ET_INLINE void et_st32(void *p, uint32_t v)
{
#if ET_DSP_ASM
    __builtin_memcpy(p, &v, 4);
#else
    uint8_t *b = (uint8_t *)p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
#endif
}

ET_INLINE int32_t et_lo16(uint32_t v)
{
    return (int32_t)(int16_t)(uint16_t)(v & 0xFFFFu);
}

ET_INLINE int32_t et_hi16(uint32_t v)
{
    return (int32_t)(int16_t)(uint16_t)(v >> 16);
}

ET_INLINE uint32_t et_pack16(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

/* Bytes 0 and 2 sign-extended to the two int16 lanes (SXTB16). */
ET_INLINE uint32_t et_sxtb16(uint32_t v)
{
#if ET_DSP_ASM
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
#else
    return et_pack16((int8_t)(uint8_t)v, (int8_t)(uint8_t)(v >> 16));
#endif
}

/* Bytes 1 and 3 sign-extended (SXTB16 with ROR #8). */
ET_INLINE uint32_t et_sxtb16_ror8(uint32_t v)
{
#if ET_DSP_ASM
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return et_pack16((int8_t)(uint8_t)(v >> 8), (int8_t)(uint8_t)(v >> 24));
#endif
}

/* acc + a.lo * b.lo + a.hi * b.hi, wrapping (SMLAD). */
ET_INLINE int32_t et_smlad(uint32_t a, uint32_t b, int32_t acc)
{
#if ET_DSP_ASM
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(et_lo16(a) * et_lo16(b)) + (uint32_t)(et_hi16(a) * et_hi16(b)));
#endif
}

/* acc + a.lo * b.hi + a.hi * b.lo, wrapping (SMLADX). */
ET_INLINE int32_t et_smladx(uint32_t a, uint32_t b, int32_t acc)
{
#if ET_DSP_ASM
    int32_t r;
    __asm__("smladx %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(et_lo16(a) * et_hi16(b)) + (uint32_t)(et_hi16(a) * et_lo16(b)));
#endif
}

/* acc + a.lo * b.lo (SMLABB) and acc + a.hi * b.lo (SMLATB), wrapping. */
ET_INLINE int32_t et_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
#if ET_DSP_ASM
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(et_lo16(a) * et_lo16(b)));
#endif
}

ET_INLINE int32_t et_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
#if ET_DSP_ASM
    int32_t r;
    __asm__("smlatb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(et_hi16(a) * et_lo16(b)));
#endif
}

/* Lane-wise a + b, wrapping in 16 bits (SADD16; the kernels keep lanes within int16). */
ET_INLINE uint32_t et_sadd16(uint32_t a, uint32_t b)
{
#if ET_DSP_ASM
    uint32_t r;
    __asm__("sadd16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return et_pack16(et_lo16(a) + et_lo16(b), et_hi16(a) + et_hi16(b));
#endif
}

/* acc + floor((a * b + 2^31) / 2^32), wrapping (SMMLAR). */
ET_INLINE int32_t et_smmlar(int32_t a, int32_t b, int32_t acc)
{
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(ET_DSP_PORTABLE)
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32));
#endif
}

/* Saturate to int8 (SSAT #8; Armv7-M has it without the DSP extension too). */
ET_INLINE int32_t et_ssat8(int32_t v)
{
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__) && !defined(ET_DSP_PORTABLE)
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
#else
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

/* Trailing zero bits of a nonzero value. */
ET_INLINE int32_t et_ctz(uint32_t x)
{
#if defined(__GNUC__)
    return (int32_t)__builtin_ctz(x);
#else
    int32_t n = 0;
    while (!(x & 1u)) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* The right shift e of a requantization pair {multiplier, c}: c = 2^(e-1) * odd (et_dsp.h). */
ET_INLINE int32_t et_dsp_rq_shift(const int32_t *rq)
{
    return et_ctz((uint32_t)rq[1]) + 1;
}

/* Requantize a doubled accumulator with {multiplier, rounding + output offset} and the shift e (et_dsp.h). */
ET_INLINE int32_t et_dsp_rq_e(int32_t a2, const int32_t *rq, int32_t e)
{
    return et_ssat8((et_smmlar(a2, rq[0], rq[1]) + (a2 >> 31)) >> e);
}

ET_INLINE int32_t et_dsp_rq(int32_t a2, const int32_t *rq)
{
    return et_dsp_rq_e(a2, rq, et_dsp_rq_shift(rq));
}

ET_INLINE int32_t et_dsp_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

#endif
