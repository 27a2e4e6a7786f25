/* What an STM32 Nucleo port.c provides to stm32_port.c: the serial link's USART/LPUART base address and the core
 * clock (SysTick counts it). stm32_port.c implements the rest of port.h for every such board. */
#ifndef EDGETK_STM32_PORT_H
#define EDGETK_STM32_PORT_H
#include <stdint.h>

extern const uint32_t stm32_uart_base;
extern const uint32_t stm32_sysclk_hz;

/* Enable the DWT cycle counter (unlock: write the lock access register first, as the Cortex-M7 needs). */
void stm32_dwt_start(int unlock);

#endif
