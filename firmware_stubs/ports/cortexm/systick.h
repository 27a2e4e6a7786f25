#ifndef EDGETK_SYSTICK_H
#define EDGETK_SYSTICK_H
#include <stdint.h>
void SysTick_Handler(void);
void systick_start(void);
uint64_t systick_ticks(void);
#endif
