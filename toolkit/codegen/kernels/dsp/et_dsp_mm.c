/* GEMM micro-kernels of the dsp set (layouts in et_dsp.h). With the DSP extension: hand-scheduled
 * Thumb-2 loops (two groups per iteration; LDRD/LDM loads, SXTB16 unpacking, SMLAD); elsewhere the
 * portable C below, which computes the same wrapping sums. Pointers to weights and int16 columns are
 * word-aligned (generated arrays and arena scratch are 16-byte aligned); int8 FC inputs may be unaligned. */
#include "et_dsp.h"
#include "et_dsp_simd.h"

#if ET_DSP_ASM

#define ET_ARG __attribute__((unused)) /* naked functions read their arguments from r0-r3 */

/* One group: 2 channels x 2 pixels x 4 k, int8 weights. */
#define MM2X2_W8                                                                                       \
    "ldrd r8, r9, [r0], #8\n\t"                                                                      \
    "sxtb16 r10, r8\n\t"                                                                             \
    "sxtb16 r8, r8, ror #8\n\t"                                                                      \
    "sxtb16 r11, r9\n\t"                                                                             \
    "sxtb16 r9, r9, ror #8\n\t"                                                                      \
    "ldrd r12, lr, [r1], #8\n\t"                                                                     \
    "smlad r4, r10, r12, r4\n\t"                                                                     \
    "smlad r4, r8, lr, r4\n\t"                                                                       \
    "smlad r5, r11, r12, r5\n\t"                                                                     \
    "smlad r5, r9, lr, r5\n\t"                                                                       \
    "ldrd r12, lr, [r1], #8\n\t"                                                                     \
    "smlad r6, r10, r12, r6\n\t"                                                                     \
    "smlad r6, r8, lr, r6\n\t"                                                                       \
    "smlad r7, r11, r12, r7\n\t"                                                                     \
    "smlad r7, r9, lr, r7\n\t"

/* One group: 2 channels x 2 pixels x 4 k, int16 weights. */
#define MM2X2_W16                                                                                      \
    "ldm r0!, {r8-r11}\n\t"                                                                          \
    "ldrd r12, lr, [r1], #8\n\t"                                                                     \
    "smlad r4, r8, r12, r4\n\t"                                                                      \
    "smlad r4, r9, lr, r4\n\t"                                                                       \
    "smlad r5, r10, r12, r5\n\t"                                                                     \
    "smlad r5, r11, lr, r5\n\t"                                                                      \
    "ldrd r12, lr, [r1], #8\n\t"                                                                     \
    "smlad r6, r8, r12, r6\n\t"                                                                      \
    "smlad r6, r9, lr, r6\n\t"                                                                       \
    "smlad r7, r10, r12, r7\n\t"                                                                     \
    "smlad r7, r11, lr, r7\n\t"

/* One group of the int8 input: lr = (x0, x2), r12 = (x1, x3). */
#define X_INT8                                                                                         \
    "ldr r12, [r1], #4\n\t"                                                                          \
    "sxtb16 lr, r12\n\t"                                                                             \
    "sxtb16 r12, r12, ror #8\n\t"

#define ROW_W8(w, acc)                                                                                 \
    "sxtb16 r3, " w "\n\t"                                                                           \
    "sxtb16 " w ", " w ", ror #8\n\t"                                                                \
    "smlad " acc ", r3, lr, " acc "\n\t"                                                             \
    "smlad " acc ", " w ", r12, " acc "\n\t"

/* One group: 4 rows x 4 k, int8 weights (r3 is free: the acc pointer waits on the stack). */
#define MM4X1_W8 X_INT8 "ldm r0!, {r8-r11}\n\t" ROW_W8("r8", "r4") ROW_W8("r9", "r5") ROW_W8("r10", "r6") \
    ROW_W8("r11", "r7")

/* One group: 4 rows x 4 k, int16 weights. */
#define MM4X1_W16                                                                                      \
    X_INT8                                                                                             \
    "ldm r0!, {r8-r11}\n\t"                                                                          \
    "smlad r4, r8, lr, r4\n\t"                                                                       \
    "smlad r4, r9, r12, r4\n\t"                                                                      \
    "smlad r5, r10, lr, r5\n\t"                                                                      \
    "smlad r5, r11, r12, r5\n\t"                                                                     \
    "ldm r0!, {r8-r11}\n\t"                                                                          \
    "smlad r6, r8, lr, r6\n\t"                                                                       \
    "smlad r6, r9, r12, r6\n\t"                                                                      \
    "smlad r7, r10, lr, r7\n\t"                                                                      \
    "smlad r7, r11, r12, r7\n\t"

/* r2 groups of BODY, two per iteration (an odd count enters at the second copy). */
#define GROUP_LOOP(BODY)                                                                               \
    "lsrs r2, r2, #1\n\t"                                                                            \
    "bcc 1f\n\t"                                                                                     \
    "add r2, r2, #1\n\t"                                                                             \
    "b 2f\n"                                                                                        \
    "1:\n\t"                                                                                         \
    "cmp r2, #0\n\t"                                                                                 \
    "beq 3f\n"                                                                                      \
    "6:\n\t" BODY "2:\n\t" BODY "subs r2, r2, #1\n\t"                                               \
    "bne 6b\n"                                                                                      \
    "3:\n\t"

__attribute__((naked, noinline)) void et_dsp_mm2x2_w8(ET_ARG const void *w, ET_ARG const int16_t *x,
                                                      ET_ARG int32_t groups, ET_ARG int32_t *acc)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldm r3, {r4-r7}\n\t" GROUP_LOOP(MM2X2_W8) "stm r3, {r4-r7}\n\t"
                     "pop {r4-r11, pc}\n\t");
}

__attribute__((naked, noinline)) void et_dsp_mm2x2_w16(ET_ARG const void *w, ET_ARG const int16_t *x,
                                                       ET_ARG int32_t groups, ET_ARG int32_t *acc)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldm r3, {r4-r7}\n\t" GROUP_LOOP(MM2X2_W16) "stm r3, {r4-r7}\n\t"
                     "pop {r4-r11, pc}\n\t");
}

__attribute__((naked, noinline)) void et_dsp_mm4x1_w8(ET_ARG const void *w, ET_ARG const int8_t *x,
                                                      ET_ARG int32_t groups, ET_ARG int32_t *acc)
{
    __asm__ volatile("push {r3-r11, lr}\n\t"
                     "ldm r3, {r4-r7}\n\t" GROUP_LOOP(MM4X1_W8) "ldr r3, [sp]\n\t"
                     "stm r3, {r4-r7}\n\t"
                     "pop {r3-r11, pc}\n\t");
}

__attribute__((naked, noinline)) void et_dsp_mm4x1_w16(ET_ARG const void *w, ET_ARG const int8_t *x,
                                                       ET_ARG int32_t groups, ET_ARG int32_t *acc)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldm r3, {r4-r7}\n\t" GROUP_LOOP(MM4X1_W16) "stm r3, {r4-r7}\n\t"
                     "pop {r4-r11, pc}\n\t");
}

/* Fused conv GEMM: every channel pair of two pixels (et_dsp_gemm_ctx), bias in, int8 out (full range only):
 * the group loop above, then the four requantizations (et_dsp.h) and stores, without leaving the loop. */
#define RQ_ONE(a)                                                                                      \
    "add lr, r10, " a ", asr #31\n\t"                                                                \
    "smmlar " a ", " a ", r9, lr\n\t"                                                                \
    "asr " a ", " a ", r11\n\t"                                                                      \
    "ssat " a ", #8, " a "\n\t"

#define RQ_PAIR(x, y) /* {m, c} at r8 -> r9, r10; e = 1 + trailing zeros of c -> r11 */                \
    "ldrd r9, r10, [r8]\n\t"                                                                         \
    "rbit r11, r10\n\t"                                                                              \
    "clz r11, r11\n\t"                                                                               \
    "add r11, r11, #1\n\t" RQ_ONE(x) RQ_ONE(y)

#define DOUBLE_ACC "lsl r4, r4, #1\n\tlsl r5, r5, #1\n\tlsl r6, r6, #1\n\tlsl r7, r7, #1\n\t"

#define GEMM2X2(BODY, DOUBLE)                                                                          \
    "push {r4-r11, lr}\n\t"                                                                          \
    "mov r3, r0\n\t"                                                                                 \
    "ldr r0, [r3]\n"                                                                                 \
    "4:\n\t"                                                                                         \
    "ldrd r1, r2, [r3, #4]\n\t"                                                                      \
    "ldr lr, [r3, #16]\n\t"                                                                          \
    "ldrd r4, r5, [lr], #8\n\t"                                                                      \
    "str lr, [r3, #16]\n\t"                                                                          \
    "mov r6, r4\n\t"                                                                                 \
    "mov r7, r5\n\t" GROUP_LOOP(BODY) DOUBLE                                                         \
    "ldr r8, [r3, #20]\n\t"                                                                          \
    "ldr r12, [r3, #24]\n\t" RQ_PAIR("r4", "r6")                                                     \
    "add r8, r8, r12\n\t" RQ_PAIR("r5", "r7")                                                        \
    "add r8, r8, r12\n\t"                                                                            \
    "str r8, [r3, #20]\n\t"                                                                          \
    "ldrd r9, r10, [r3, #28]\n\t"                                                                    \
    "strb r4, [r9]\n\t"                                                                              \
    "strb r5, [r9, #1]\n\t"                                                                          \
    "add r9, r9, #2\n\t"                                                                             \
    "strb r6, [r10]\n\t"                                                                             \
    "strb r7, [r10, #1]\n\t"                                                                         \
    "add r10, r10, #2\n\t"                                                                           \
    "strd r9, r10, [r3, #28]\n\t"                                                                    \
    "ldr r12, [r3, #12]\n\t"                                                                         \
    "subs r12, r12, #1\n\t"                                                                          \
    "str r12, [r3, #12]\n\t"                                                                         \
    "bne 4b\n\t"                                                                                     \
    "str r0, [r3]\n\t"                                                                               \
    "pop {r4-r11, pc}\n\t"

__attribute__((naked, noinline)) void et_dsp_gemm2x2_w8(ET_ARG et_dsp_gemm_ctx *ctx)
{
    __asm__ volatile(GEMM2X2(MM2X2_W8, DOUBLE_ACC));
}

__attribute__((naked, noinline)) void et_dsp_gemm2x2_w16(ET_ARG et_dsp_gemm_ctx *ctx)
{
    __asm__ volatile(GEMM2X2(MM2X2_W16, ""));
}

/* Fused FC: every full quad of rows (et_dsp_fc_ctx), bias in, int8 out (full range only). The context
 * pointer waits on the stack (r3 is the int8 kernel's temporary). */
#define RQ_ROW(a)                                                                                      \
    "ldrd r9, r10, [r8]\n\t"                                                                         \
    "rbit r11, r10\n\t"                                                                              \
    "clz r11, r11\n\t"                                                                               \
    "add r11, r11, #1\n\t" RQ_ONE(a) "add r8, r8, r12\n\t"

#define FC4(BODY, DOUBLE)                                                                              \
    "push {r0, r4-r11, lr}\n"                                                                        \
    "5:\n\t"                                                                                         \
    "ldr r3, [sp]\n\t"                                                                               \
    "ldr r0, [r3]\n\t"                                                                               \
    "ldrd r1, r2, [r3, #4]\n\t"                                                                      \
    "ldr lr, [r3, #16]\n\t"                                                                          \
    "ldm lr!, {r4-r7}\n\t"                                                                           \
    "str lr, [r3, #16]\n\t" GROUP_LOOP(BODY) DOUBLE                                                  \
    "ldr r3, [sp]\n\t"                                                                               \
    "str r0, [r3]\n\t"                                                                               \
    "ldrd r8, r12, [r3, #20]\n\t" RQ_ROW("r4") RQ_ROW("r5") RQ_ROW("r6") RQ_ROW("r7")                \
    "str r8, [r3, #20]\n\t"                                                                          \
    "ldr r9, [r3, #28]\n\t"                                                                          \
    "strb r4, [r9]\n\t"                                                                              \
    "strb r5, [r9, #1]\n\t"                                                                          \
    "strb r6, [r9, #2]\n\t"                                                                          \
    "strb r7, [r9, #3]\n\t"                                                                          \
    "add r9, r9, #4\n\t"                                                                             \
    "str r9, [r3, #28]\n\t"                                                                          \
    "ldr r12, [r3, #12]\n\t"                                                                         \
    "subs r12, r12, #1\n\t"                                                                          \
    "str r12, [r3, #12]\n\t"                                                                         \
    "bne 5b\n\t"                                                                                     \
    "pop {r0, r4-r11, pc}\n\t"

__attribute__((naked, noinline)) void et_dsp_fc4_w8(ET_ARG et_dsp_fc_ctx *ctx)
{
    __asm__ volatile(FC4(MM4X1_W8, DOUBLE_ACC));
}

__attribute__((naked, noinline)) void et_dsp_fc4_w16(ET_ARG et_dsp_fc_ctx *ctx)
{
    __asm__ volatile(FC4(MM4X1_W16, ""));
}

#else

/* Portable: one multiply-accumulate per product on the int16/int8 values in place (the same wrapping sums
 * as the SMLAD pairs, in uint32_t). Group order k0, k2, k1, k3 for int16 data, natural for int8. */
static const int8_t k_order[4] = {0, 2, 1, 3};  /* int16 slot of the group's k-th int8 value */

#define MAC(acc, a, b) ((acc) + (uint32_t)((int32_t)(a) * (int32_t)(b)))

void et_dsp_mm2x2_w8(const void *wv, const int16_t *x, int32_t groups, int32_t *acc)
{
    const int8_t *w = (const int8_t *)wv;
    uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1], a2 = (uint32_t)acc[2], a3 = (uint32_t)acc[3];
    int32_t g, k;
    for (g = 0; g < groups; ++g, w += 8, x += 8) {
        for (k = 0; k < 4; ++k) {
            const int32_t x0 = x[k_order[k]], x1 = x[4 + k_order[k]];
            a0 = MAC(a0, w[k], x0);
            a1 = MAC(a1, w[4 + k], x0);
            a2 = MAC(a2, w[k], x1);
            a3 = MAC(a3, w[4 + k], x1);
        }
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)a1;
    acc[2] = (int32_t)a2;
    acc[3] = (int32_t)a3;
}

void et_dsp_mm2x2_w16(const void *wv, const int16_t *x, int32_t groups, int32_t *acc)
{
    const int16_t *w = (const int16_t *)wv;
    uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1], a2 = (uint32_t)acc[2], a3 = (uint32_t)acc[3];
    int32_t g, k;
    for (g = 0; g < groups; ++g, w += 8, x += 8) {  /* weights and columns in the same slot order */
        for (k = 0; k < 4; ++k) {
            a0 = MAC(a0, w[k], x[k]);
            a1 = MAC(a1, w[4 + k], x[k]);
            a2 = MAC(a2, w[k], x[4 + k]);
            a3 = MAC(a3, w[4 + k], x[4 + k]);
        }
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)a1;
    acc[2] = (int32_t)a2;
    acc[3] = (int32_t)a3;
}

void et_dsp_mm4x1_w8(const void *wv, const int8_t *x, int32_t groups, int32_t *acc)
{
    const int8_t *w = (const int8_t *)wv;
    uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1], a2 = (uint32_t)acc[2], a3 = (uint32_t)acc[3];
    int32_t g, k;
    for (g = 0; g < groups; ++g, w += 16, x += 4) {
        for (k = 0; k < 4; ++k) {
            a0 = MAC(a0, w[k], x[k]);
            a1 = MAC(a1, w[4 + k], x[k]);
            a2 = MAC(a2, w[8 + k], x[k]);
            a3 = MAC(a3, w[12 + k], x[k]);
        }
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)a1;
    acc[2] = (int32_t)a2;
    acc[3] = (int32_t)a3;
}

void et_dsp_mm4x1_w16(const void *wv, const int8_t *x, int32_t groups, int32_t *acc)
{
    const int16_t *w = (const int16_t *)wv;
    uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1], a2 = (uint32_t)acc[2], a3 = (uint32_t)acc[3];
    int32_t g, k;
    for (g = 0; g < groups; ++g, w += 16, x += 4) {
        for (k = 0; k < 4; ++k) {
            const int32_t v = x[k], s = k_order[k];
            a0 = MAC(a0, w[s], v);
            a1 = MAC(a1, w[4 + s], v);
            a2 = MAC(a2, w[8 + s], v);
            a3 = MAC(a3, w[12 + s], v);
        }
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)a1;
    acc[2] = (int32_t)a2;
    acc[3] = (int32_t)a3;
}

#endif
