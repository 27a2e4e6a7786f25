/* edgetk frontends: fixed-point log-mel / MFCC (design and number formats: etf_mfcc.h). */
#include "etf_mfcc.h"

#include "etf_fixed.h"

#if defined(__ARM_FEATURE_DSP) && defined(__thumb2__) && defined(__GNUC__) && !defined(ETF_PORTABLE)
#define ETF_ASM 1
#define ETF_ARG __attribute__((unused)) /* naked functions read their arguments from r0-r3 */
#else
#define ETF_ASM 0
#endif

/* round(65536 * log2(1 + i / 64)), i = 0..64 */
static const int32_t k_log2_tab[65] = {
    0,     1466,  2909,  4331,  5732,  7112,  8473,  9814,  11136, 12440, 13727, 14996, 16248,
    17484, 18704, 19909, 21098, 22272, 23433, 24579, 25711, 26830, 27936, 29029, 30109, 31178,
    32234, 33279, 34312, 35334, 36346, 37346, 38336, 39316, 40286, 41246, 42196, 43137, 44068,
    44990, 45904, 46809, 47705, 48593, 49472, 50344, 51207, 52063, 52911, 53751, 54584, 55410,
    56229, 57040, 57845, 58643, 59434, 60219, 60997, 61769, 62534, 63294, 64047, 64794, 65536,
};

int32_t etf_log2_q16(uint64_t y)
{
    int32_t n = etf_bitlen64(y) - 1; /* floor(log2 y) */
    uint32_t m, f, t;
    int32_t idx, lo;
    if (n < 0) {
        return 0;
    }
    m = n >= 31 ? (uint32_t)etf_shr64(y, n - 31) : (uint32_t)y << (31 - n); /* [2^31, 2^32) */
    f = m & 0x7FFFFFFFu;
    idx = (int32_t)(f >> 25);
    t = (f >> 9) & 0xFFFFu;
    lo = k_log2_tab[idx];
    return n * 65536 + lo + (int32_t)(((uint32_t)(k_log2_tab[idx + 1] - lo) * t) >> 16);
}

/* Step 1: max |x| of a frame (an exact integer; the DSP path gives the same value). */
static int32_t frame_peak(const int16_t *x, int32_t len)
{
    int32_t n = 0, hi = 0, lo = 0;
#if ETF_ASM
    typedef int32_t pair_t __attribute__((__may_alias__, __aligned__(2)));
    int32_t mx = 0, mn = 0; /* packed running max / min of the even and odd samples */
    for (; n + 2 <= len; n += 2) {
        int32_t v = *(const pair_t *)(x + n), t;
        __asm__("ssub16 %0, %1, %2\n\tsel %1, %1, %2" : "=&r"(t), "+r"(mx) : "r"(v) : "cc");
        __asm__("ssub16 %0, %2, %1\n\tsel %1, %1, %2" : "=&r"(t), "+r"(mn) : "r"(v) : "cc");
    }
    hi = (int16_t)(mx >> 16) > (int16_t)mx ? (int16_t)(mx >> 16) : (int16_t)mx;
    lo = (int16_t)(mn >> 16) < (int16_t)mn ? (int16_t)(mn >> 16) : (int16_t)mn;
#endif
    for (; n < len; n++) {
        int32_t v = x[n];
        hi = v > hi ? v : hi;
        lo = v < lo ? v : lo;
    }
    return hi > -lo ? hi : -lo;
}

/* (ur + i ui) * (wr + i wi) / 4 with Q30 twiddles: floor of each product (SMMUL, SMMLS, SMMLA). */
#define CMUL_Q30(outr, outi, ur, ui, wr, wi)                                                                       \
    do {                                                                                                           \
        int32_t ur_ = (ur), ui_ = (ui);                                                                            \
        (outr) = etf_smmls(etf_smmul(ur_, (wr)), ui_, (wi));                                                      \
        (outi) = etf_smmla(etf_smmul(ur_, (wi)), ui_, (wr));                                                      \
    } while (0)

/* Radix-4 DIF butterfly on complex a, b, c, d (|components| <= B), outputs scaled by 1/4 (floor):
 * a' = (t0 + t2) / 4, b' = (t1 - i t3) W1 / 4, c' = (t0 - t2) W2 / 4, d' = (t1 + i t3) W3 / 4 with
 * t0 = a + c, t1 = a - c, t2 = b + d, t3 = b - d; every sum stays below 4B < 2^31 (in_shift).
 * w = {W1, W2, W3} in Q30, or NULL for W = 1: smmul(u, 2^30) == u >> 2, the same bits. */
ETF_INLINE void r4(int32_t *restrict a, int32_t *restrict b, int32_t *restrict c, int32_t *restrict d, int32_t ar,
                   int32_t ai, int32_t br, int32_t bi, int32_t cr, int32_t ci, int32_t dr, int32_t di,
                   const int32_t *restrict w)
{
    int32_t t0r = ar + cr, t0i = ai + ci, t2r = br + dr, t2i = bi + di;
    int32_t t1r = ar - cr, t1i = ai - ci, t3r = br - dr, t3i = bi - di;
    a[0] = (t0r + t2r) >> 2;
    a[1] = (t0i + t2i) >> 2;
    if (w) {
        CMUL_Q30(c[0], c[1], t0r - t2r, t0i - t2i, w[2], w[3]);
        CMUL_Q30(b[0], b[1], t1r + t3i, t1i - t3r, w[0], w[1]);
        CMUL_Q30(d[0], d[1], t1r - t3i, t1i + t3r, w[4], w[5]);
    } else {
        c[0] = (t0r - t2r) >> 2;
        c[1] = (t0i - t2i) >> 2;
        b[0] = (t1r + t3i) >> 2;
        b[1] = (t1i - t3r) >> 2;
        d[0] = (t1r - t3i) >> 2;
        d[1] = (t1i + t3r) >> 2;
    }
}

#if ETF_ASM
/* Hand-scheduled Thumb-2 versions of the two loops below (the same integer operations in the same
 * order, so the same bits; tests compare this path on QEMU Cortex-M4 with the host's C). Naked
 * functions (no operand constraints) so any -O level and frame-pointer setting compiles them.
 * r4_run_w(a, qbytes, w, count): `count` twiddled butterflies a, a+q, a+2q, a+3q (q = qbytes / 8 complex),
 * twiddle triplets from w; r4_run_1(a, count): `count` butterflies with W = 1 on blocks of 4 values. */
__attribute__((naked, noinline)) static void r4_run_w(ETF_ARG int32_t *a, ETF_ARG int32_t qbytes, ETF_ARG const int32_t *w,
                                                         ETF_ARG int32_t count)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "mov r8, r0\n\t"
        "add r9, r0, r1\n\t"
        "add r10, r9, r1\n\t"
        "add r11, r10, r1\n\t"
        "mov r12, r2\n\t"
        "mov lr, r3\n"
        "1:\n\t"
        "ldrd r0, r1, [r8]\n\t"          /* a */
        "ldrd r2, r3, [r10]\n\t"         /* c */
        "add r0, r0, r2\n\t"             /* t0 = a + c */
        "sub r2, r0, r2, lsl #1\n\t"     /* t1 = a - c */
        "add r1, r1, r3\n\t"
        "sub r3, r1, r3, lsl #1\n\t"
        "ldrd r4, r5, [r9]\n\t"          /* b */
        "ldrd r6, r7, [r11]\n\t"         /* d */
        "add r4, r4, r6\n\t"             /* t2 = b + d */
        "sub r6, r4, r6, lsl #1\n\t"     /* t3 = b - d */
        "add r5, r5, r7\n\t"
        "sub r7, r5, r7, lsl #1\n\t"
        "add r0, r0, r4\n\t"             /* t0 + t2 */
        "sub r4, r0, r4, lsl #1\n\t"     /* u2 = t0 - t2 */
        "add r1, r1, r5\n\t"
        "sub r5, r1, r5, lsl #1\n\t"
        "asr r0, r0, #2\n\t"
        "asr r1, r1, #2\n\t"
        "strd r0, r1, [r8], #8\n\t"      /* a' = (t0 + t2) / 4 */
        "add r2, r2, r7\n\t"             /* u1r = t1r + t3i */
        "sub r7, r2, r7, lsl #1\n\t"     /* u3r = t1r - t3i */
        "sub r3, r3, r6\n\t"             /* u1i = t1i - t3r */
        "add r6, r3, r6, lsl #1\n\t"     /* u3i = t1i + t3r */
        "ldr r1, [r12]\n\t"              /* b' = u1 W1 / 4 */
        "smmul r0, r2, r1\n\t"
        "ldr r1, [r12, #4]\n\t"
        "smmls r0, r3, r1, r0\n\t"
        "smmul r2, r2, r1\n\t"
        "ldr r1, [r12]\n\t"
        "smmla r2, r3, r1, r2\n\t"
        "strd r0, r2, [r9], #8\n\t"
        "ldrd r0, r1, [r12, #8]\n\t"     /* c' = u2 W2 / 4 */
        "smmul r2, r4, r0\n\t"
        "smmls r2, r5, r1, r2\n\t"
        "smmul r4, r4, r1\n\t"
        "smmla r4, r5, r0, r4\n\t"
        "strd r2, r4, [r10], #8\n\t"
        "ldrd r0, r1, [r12, #16]\n\t"    /* d' = u3 W3 / 4 */
        "smmul r2, r7, r0\n\t"
        "smmls r2, r6, r1, r2\n\t"
        "smmul r7, r7, r1\n\t"
        "smmla r7, r6, r0, r7\n\t"
        "strd r2, r7, [r11], #8\n\t"
        "add r12, r12, #24\n\t"
        "subs lr, lr, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t");
}

__attribute__((naked, noinline)) static void r4_run_1(ETF_ARG int32_t *a, ETF_ARG int32_t count)
{
    __asm__ volatile(
        "push {r4-r7, lr}\n\t"
        "mov r12, r0\n\t"
        "mov lr, r1\n"
        "1:\n\t"
        "ldrd r0, r1, [r12]\n\t"
        "ldrd r2, r3, [r12, #16]\n\t"
        "add r0, r0, r2\n\t"
        "sub r2, r0, r2, lsl #1\n\t"
        "add r1, r1, r3\n\t"
        "sub r3, r1, r3, lsl #1\n\t"
        "ldrd r4, r5, [r12, #8]\n\t"
        "ldrd r6, r7, [r12, #24]\n\t"
        "add r4, r4, r6\n\t"
        "sub r6, r4, r6, lsl #1\n\t"
        "add r5, r5, r7\n\t"
        "sub r7, r5, r7, lsl #1\n\t"
        "add r0, r0, r4\n\t"
        "sub r4, r0, r4, lsl #1\n\t"
        "add r1, r1, r5\n\t"
        "sub r5, r1, r5, lsl #1\n\t"
        "asr r0, r0, #2\n\t"
        "asr r1, r1, #2\n\t"
        "asr r4, r4, #2\n\t"
        "asr r5, r5, #2\n\t"
        "strd r4, r5, [r12, #16]\n\t"    /* c' = (t0 - t2) / 4 */
        "add r2, r2, r7\n\t"
        "sub r7, r2, r7, lsl #1\n\t"
        "sub r3, r3, r6\n\t"
        "add r6, r3, r6, lsl #1\n\t"
        "asr r2, r2, #2\n\t"
        "asr r3, r3, #2\n\t"
        "asr r7, r7, #2\n\t"
        "asr r6, r6, #2\n\t"
        "strd r2, r3, [r12, #8]\n\t"     /* b' = (t1 - i t3) / 4 */
        "strd r7, r6, [r12, #24]\n\t"    /* d' = (t1 + i t3) / 4 */
        "strd r0, r1, [r12], #32\n\t"    /* a' = (t0 + t2) / 4 */
        "subs lr, lr, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r7, pc}\n\t");
}
#endif

/* One radix-4 stage over blocks of 4q complex values (q >= 1): j = 0 without twiddles, then the
 * triplets of tw for j = 1 .. q-1. */
static void r4_stage(int32_t *restrict z, int32_t n, int32_t q, const int32_t *restrict tw)
{
    int32_t *a, *end = z + 2 * n;
#if ETF_ASM
    if (q == 1) {
        r4_run_1(z, n >> 2);
        return;
    }
#endif
    for (a = z; a < end; a += 8 * q) {
        int32_t *b = a + 2 * q, *c = b + 2 * q, *d = c + 2 * q, j;
        r4(a, b, c, d, a[0], a[1], b[0], b[1], c[0], c[1], d[0], d[1], 0);
#if ETF_ASM
        if (q > 1) {
            r4_run_w(a + 2, 8 * q, tw, q - 1);
        }
        (void)j;
#else
        for (j = 1; j < q; j++) {
            int32_t o = 2 * j;
            r4(a + o, b + o, c + o, d + o, a[o], a[o + 1], b[o], b[o + 1], c[o], c[o + 1], d[o], d[o + 1],
               tw + 6 * (j - 1));
        }
#endif
    }
}

#if ETF_ASM
/* Step 2 on the DSP path, per pair of samples: s = x * 2^ls (SMULBB/SMULTB with m = 2^ls; fits in 16 bits),
 * v = SMULWB(w, s) >> shift, stored in order, energy += v^2 (SMLAL). Arguments through one struct. */
typedef struct {
    const int16_t *x;   /* offset 0 */
    const int32_t *win; /* 4 */
    int32_t *z;         /* 8 */
    int32_t pairs;      /* 12 */
    int32_t m;          /* 16 */
    int32_t shift;      /* 20 */
    uint32_t energy_lo; /* 24: out */
    uint32_t energy_hi; /* 28: out */
} win_args;

__attribute__((naked, noinline)) static void win_run(ETF_ARG win_args *a)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "ldr r1, [r0, #0]\n\t"
        "ldr r2, [r0, #4]\n\t"
        "ldr r3, [r0, #8]\n\t"
        "ldr r12, [r0, #12]\n\t"
        "ldr r10, [r0, #16]\n\t"
        "ldr r11, [r0, #20]\n\t"
        "mov r8, #0\n\t"
        "mov r9, #0\n"
        "1:\n\t"
        "ldr r4, [r1], #4\n\t"           /* x pair (unaligned is fine on v7-M) */
        "ldrd r6, r7, [r2], #8\n\t"      /* w pair, Q31 */
        "smulbb r5, r4, r10\n\t"
        "smultb r4, r4, r10\n\t"
        "smulwb r6, r6, r5\n\t"
        "smulwb r7, r7, r4\n\t"
        "asr r6, r6, r11\n\t"
        "asr r7, r7, r11\n\t"
        "strd r6, r7, [r3], #8\n\t"
        "smlal r8, r9, r6, r6\n\t"
        "smlal r8, r9, r7, r7\n\t"
        "subs r12, r12, #1\n\t"
        "bne 1b\n\t"
        "str r8, [r0, #24]\n\t"
        "str r9, [r0, #28]\n\t"
        "pop {r4-r11, pc}\n\t");
}

/* DSP path of step 2 + the first FFT stage: v = SMULW(w, x * 2^ls) >> in_shift for pairs of samples
 * into the FFT buffer (the same integers as WIN below), zero the padding, then the generic radix-4 stage. */
static uint64_t first_stage_dsp(int32_t *restrict z, int32_t n, int32_t frame_len, const int16_t *restrict x,
                                const int32_t *restrict win, int32_t ls, int32_t in_shift, const int32_t *restrict tw)
{
    int32_t *zp = z + frame_len, zeros = n - (frame_len >> 1), zero = 0;
    int32_t m = 1 << (ls < 14 ? ls : 14); /* ls = 15 only for an all-zero frame */
    win_args args;
    args.x = x;
    args.win = win;
    args.z = z;
    args.pairs = frame_len >> 1;
    args.m = m;
    args.shift = in_shift;
    win_run(&args);
    if (zeros > 0) { /* complex zero padding; an asm loop: gcc would turn a C loop into a memset call */
        __asm__ volatile("1: strd %2, %3, [%0], #8\n\tsubs %1, %1, #1\n\tbne 1b"
                         : "+r"(zp), "+r"(zeros) : "r"(zero), "r"(zero) : "cc", "memory");
    }
    r4_stage(z, n, n >> 2, tw);
    return ((uint64_t)args.energy_hi << 32) | args.energy_lo; /* sum v^2 */
}
#endif

#if !ETF_ASM
/* Step 2 on the fly: v[n] = (x[n] * 2^ls * w[n]) >> (16 + in_shift), w in Q31; the energy sum v^2
 * accumulates as the values are read (|v| <= 2^(30 - in_shift)). */
#define WIN(n) ((int32_t)(((int64_t)(x[n] * scale) * win[n]) >> down))
#define SQ(v) ((int64_t)(v) * (v))

/* First stage: reads the int16 frame through the window (step 2) and treats complex inputs from index
 * nz = frame_len / 2 on as the zero padding. has_b/has_c/has_d are constants in each caller loop. */
ETF_INLINE void first_r4(int32_t *restrict z, int32_t j, int32_t q, const int16_t *restrict x,
                         const int32_t *restrict win, int32_t scale, int32_t down, const int32_t *restrict w,
                         int32_t has_b, int32_t has_c, int32_t has_d, int64_t *energy)
{
    int32_t a = 2 * j, b = a + 2 * q, c = b + 2 * q, d = c + 2 * q;
    int32_t ar = WIN(a), ai = WIN(a + 1), br = has_b ? WIN(b) : 0, bi = has_b ? WIN(b + 1) : 0;
    int32_t cr = has_c ? WIN(c) : 0, ci = has_c ? WIN(c + 1) : 0, dr = has_d ? WIN(d) : 0, di = has_d ? WIN(d + 1) : 0;
    *energy += SQ(ar) + SQ(ai) + SQ(br) + SQ(bi) + SQ(cr) + SQ(ci) + SQ(dr) + SQ(di);
    r4(z + a, z + b, z + c, z + d, ar, ai, br, bi, cr, ci, dr, di, w);
}

static uint64_t first_stage(int32_t *restrict z, int32_t n, int32_t frame_len, const int16_t *restrict x,
                            const int32_t *restrict win, int32_t ls, int32_t in_shift, const int32_t *restrict tw)
{
    int32_t q = n >> 2, nz = frame_len >> 1, j = 0, tb, tc, td;
    int64_t e = 0;
    int32_t scale = 1 << ls, down = 16 + in_shift;
    /* inputs b, c, d exist for j < nz - q, nz - 2q, nz - 3q (Python asserts frame_len even, nz > q) */
    tb = nz - q < q ? nz - q : q;
    tc = nz - 2 * q < 0 ? 0 : (nz - 2 * q < q ? nz - 2 * q : q);
    td = nz - 3 * q < 0 ? 0 : (nz - 3 * q < q ? nz - 3 * q : q);
    if (td > 0) {
        first_r4(z, 0, q, x, win, scale, down, 0, 1, 1, 1, &e);
        for (j = 1; j < td; j++) {
            first_r4(z, j, q, x, win, scale, down, tw + 6 * (j - 1), 1, 1, 1, &e);
        }
    }
    if (j == 0 && tc > 0) {
        first_r4(z, 0, q, x, win, scale, down, 0, 1, 1, 0, &e);
        j = 1;
    }
    for (; j < tc; j++) {
        first_r4(z, j, q, x, win, scale, down, tw + 6 * (j - 1), 1, 1, 0, &e);
    }
    if (j == 0 && tb > 0) {
        first_r4(z, 0, q, x, win, scale, down, 0, 1, 0, 0, &e);
        j = 1;
    }
    for (; j < tb; j++) {
        first_r4(z, j, q, x, win, scale, down, tw + 6 * (j - 1), 1, 0, 0, &e);
    }
    if (j == 0) {
        first_r4(z, 0, q, x, win, scale, down, 0, 0, 0, 0, &e);
        j = 1;
    }
    for (; j < q; j++) {
        first_r4(z, j, q, x, win, scale, down, tw + 6 * (j - 1), 0, 0, 0, &e);
    }
    return (uint64_t)e;
}

#endif

/* Step 3: DIF FFT of n complex values, every stage scaled (radix-4: 1/4, radix-2: 1/2, floor). Twiddles:
 * per radix-4 stage, for j = 1 .. q-1, the Q30 triplet W^(j s), W^(2 j s), W^(3 j s) (s = 4^stage).
 * Returns the energy sum v^2 of the windowed frame. */
static uint64_t cfft_dif(int32_t *restrict z, int32_t n, const etf_mfcc_params *p, const int16_t *restrict x,
                         int32_t ls)
{
    const int32_t *restrict tw = p->fft_tw;
    int32_t q = n >> 2, st;
#if ETF_ASM
    uint64_t energy = first_stage_dsp(z, n, p->frame_len, x, p->window, ls, p->in_shift, tw);
#else
    uint64_t energy = first_stage(z, n, p->frame_len, x, p->window, ls, p->in_shift, tw);
#endif
    for (st = 1; st < p->n_radix4; st++) {
        tw += 6 * (q - 1);
        q >>= 2;
        r4_stage(z, n, q, tw);
    }
    if (p->radix2) {
        int32_t *a, *end = z + 2 * n;
        for (a = z; a < end; a += 4) {
            int32_t ar = a[0], ai = a[1], br = a[2], bi = a[3];
            a[0] = (ar + br) >> 1;
            a[1] = (ai + bi) >> 1;
            a[2] = (ar - br) >> 1;
            a[3] = (ai - bi) >> 1;
        }
    }
    return energy;
}

/* |x|^2 >> s2 (0 <= s2 < 32): < 2^48 by the choice of s2 (Parseval, see etf_mfcc_frame). */
ETF_INLINE uint64_t power48(int32_t xr, int32_t xi, int32_t s2)
{
    uint64_t pw = (uint64_t)((int64_t)xr * xr) + (uint64_t)((int64_t)xi * xi);
    uint32_t hi = (uint32_t)(pw >> 32), lo = (uint32_t)pw;
    return ((uint64_t)(hi >> s2) << 32) | ((lo >> s2) | ((hi << 1) << (31 - s2)));
}

/* Step 4: X[k] = A + T and X[N-k] = conj(A - T) with A = (Z[k] + Z*[N-k]) / 4 and
 * T = -i W^k (Z[k] - Z*[N-k]) / 4, W = exp(-i pi k / N) (split_tw[k-1], k = 1 .. N/2); floor scaling. */
static void split_power(const etf_mfcc_params *p, const int32_t *restrict z, int32_t n, int32_t s2,
                        uint64_t *restrict power)
{
    const uint16_t *restrict pos = p->fft_pos;
    const int32_t *restrict w = p->split_tw;
    int32_t k, z0r = z[0], z0i = z[1];
    /* k = 0 and N: A = (2 Z0.re / 4, 0), T = (2 Z0.im / 4) * (1, 0) and * (-1, 0) */
    power[0] = power48(((2 * z0r) >> 2) + ((2 * z0i) >> 2), 0, s2);
    power[n] = power48(((2 * z0r) >> 2) - ((2 * z0i) >> 2), 0, s2);
    for (k = 1; k <= n >> 1; k++, w += 2) {
        const int32_t *a = z + 2 * pos[k], *b = z + 2 * pos[n - k];
        int32_t sr = a[0] + b[0], si = a[1] - b[1]; /* Z[k] + Z*[N-k] */
        int32_t dr = a[0] - b[0], di = a[1] + b[1]; /* Z[k] - Z*[N-k]; -i d = di - i dr */
        int32_t ar = sr >> 2, ai = si >> 2;
        int32_t tr = etf_smmla(etf_smmul(di, w[0]), dr, w[1]);
        int32_t ti = etf_smmls(etf_smmul(di, w[1]), dr, w[0]);
        power[k] = power48(ar + tr, ai + ti, s2);
        power[n - k] = power48(ar - tr, ai - ti, s2);
    }
}

void etf_mfcc_frame(const etf_mfcc_params *p, const int16_t *frame, int16_t *row, const etf_mfcc_scratch *s)
{
    int32_t n = 1 << (p->log2_n_fft - 1), m = p->n_mels;
    int32_t peak, ls, s2, e, j, f, k, down = 0;
    uint64_t energy, floor_int = 0;
    const uint16_t *restrict up = p->mel_up - p->bin_lo;
    const uint64_t *restrict power = s->power;
    peak = frame_peak(frame, p->frame_len);
    ls = 15 - etf_bitlen32((uint32_t)peak); /* |x| * 2^ls <= 2^15 */
    ls = ls < 0 ? 0 : ls;
    energy = cfft_dif(s->fft, n, p, frame, ls);
    /* Parseval: sum_k P[k] <= energy / n_fft (one bit of margin for rounding), so sum_k P48[k] < 2^48 */
    s2 = etf_bitlen64(energy >> p->log2_n_fft) + 1 - 48;
    s2 = s2 < 0 ? 0 : s2;
    split_power(p, s->fft, n, s2, s->power);
    /* step 5: per-segment sums S (< 2^48) and U (< 2^63) */
    k = p->bin_lo;
    for (j = 0; j <= m; j++) {
        uint64_t sum = 0, acc = 0;
        uint32_t acc_hi = 0; /* sum of (P48 >> 32) * u < 2^16 * 2^15: U = acc + acc_hi * 2^32, exactly */
        int32_t end = p->seg_end[j];
        for (; k < end; k++) {
            uint64_t pw = power[k];
            uint32_t w = up[k];
            sum += pw;
#if ETF_ASM
            __asm__("umlal %Q0, %R0, %1, %2" : "+r"(acc) : "r"((uint32_t)pw), "r"(w)); /* gcc splits it otherwise */
#else
            acc += (uint64_t)(uint32_t)pw * w;
#endif
            acc_hi += (uint32_t)(pw >> 32) * w;
        }
        s->seg[2 * j] = sum;
        s->seg[2 * j + 1] = acc + ((uint64_t)acc_hi << 32);
    }
    /* step 6: log2(mel + floor) - E in Q16; mel is in units of 2^-E */
    e = 2 * (30 - p->in_shift + ls - p->log2_n_fft) - s2 + 15;
    if (e > p->floor_shift) {
        down = e - p->floor_shift;
        floor_int = p->floor_q;
        e = p->floor_shift;
    } else if (p->floor_shift - e < 64) {
        floor_int = etf_shr64(p->floor_q, p->floor_shift - e);
    }
    for (f = 0; f < m; f++) {
        uint64_t mel = s->seg[2 * f + 1] + (s->seg[2 * (f + 1)] << 15) - s->seg[2 * (f + 1) + 1];
        uint64_t y = (down ? etf_shr64(mel, down) : mel) + floor_int;
        s->logs[f] = etf_log2_q16(y ? y : 1) - e * 65536;
    }
    /* step 7 */
    if (p->dct) { /* two coefficients per pass share the loads of the log energies */
        const int32_t *restrict c = p->coef;
        const int32_t *restrict logs = s->logs;
        for (k = 0; k < p->n_out; k += 2, c += 2 * m) {
            const int32_t *restrict c1 = k + 1 < p->n_out ? c + m : c;
            int64_t acc0 = 0, acc1 = 0;
            for (f = 0; f < m; f++) {
                int32_t l = logs[f];
                acc0 += (int64_t)l * c[f];
                acc1 += (int64_t)l * c1[f];
            }
            row[k] = etf_sat16(etf_round_shr64(acc0, p->out_shift));
            if (k + 1 < p->n_out) {
                row[k + 1] = etf_sat16(etf_round_shr64(acc1, p->out_shift));
            }
        }
    } else {
        for (f = 0; f < m; f++) {
            row[f] = etf_sat16(etf_round_shr64((int64_t)s->logs[f] * p->coef[0], p->out_shift));
        }
    }
}

void etf_mfcc_window(const etf_mfcc_params *p, const int16_t *pcm, int16_t *rows, const etf_mfcc_scratch *s)
{
    int32_t i;
    for (i = 0; i < p->n_frames; i++) {
        etf_mfcc_frame(p, pcm + i * p->hop, rows + i * p->n_out, s);
    }
}

int32_t etf_mfcc_stream_push(const etf_mfcc_params *p, int16_t *hist, int32_t *filled, const int16_t *hop_samples,
                             int16_t *row, const etf_mfcc_scratch *s)
{
    int32_t keep = p->frame_len - p->hop, i;
    for (i = 0; i < p->frame_len; i++) { /* one loop: gcc makes no memmove/memcpy call of it */
        hist[i] = i < keep ? hist[i + p->hop] : hop_samples[i - keep];
    }
    if (*filled < p->frame_len) {
        *filled += p->hop;
    }
    if (*filled < p->frame_len) {
        return 0;
    }
    etf_mfcc_frame(p, hist, row, s);
    return 1;
}
