/* Cortex-M startup without an SDK: vector table, .data copy, .bss clear, FPU enable. */
#include <stdint.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
void dut_main(void);
void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Default_Handler(void)
{
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &__etext;
    uint32_t *dst = &__data_start__;
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__; dst++) {
        *dst = 0;
    }
#if defined(__ARM_FP)
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n isb");
#endif
    dut_main();
    for (;;) {
    }
}

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) static const vector_t g_vectors[16] = {
    (vector_t)(uintptr_t)&__StackTop, Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler,
    Default_Handler, 0, Default_Handler, SysTick_Handler,
};
