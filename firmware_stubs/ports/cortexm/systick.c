/* SysTick as a 64-bit tick counter: 24-bit down-counter at the core clock + overflow count. */
#include <stdint.h>

#include "systick.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu

static volatile uint32_t g_wraps;

void SysTick_Handler(void)
{
    g_wraps++;
}

void systick_start(void)
{
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */
}

uint64_t systick_ticks(void)
{
    uint32_t hi, cv;
    do {
        hi = g_wraps;
        cv = SYST_CVR;
    } while (hi != g_wraps);
    return ((uint64_t)hi << 24) + (uint64_t)(SYST_RELOAD - cv);
}
