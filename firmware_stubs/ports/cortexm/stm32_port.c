/* The serial link and timers that every STM32 Nucleo port shares, written from the reference manuals' register
 * maps (no HAL, no CMSIS): the USART/LPUART register block of the STM32L4/L4+/H7 families (ISR 0x1C, ICR 0x20,
 * RDR 0x24, TDR 0x28), SysTick as the tick counter at the core clock and the DWT cycle counter for cycles.
 * The board's port.c sets clocks and pins up, defines stm32_uart_base and stm32_sysclk_hz (stm32_port.h), and
 * implements port_init() and port_board(). */
#include <stdint.h>

#include "port.h"
#include "stm32_port.h"
#include "systick.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART_ISR REG(stm32_uart_base + 0x1Cu)
#define UART_ICR REG(stm32_uart_base + 0x20u)
#define UART_RDR REG(stm32_uart_base + 0x24u)
#define UART_TDR REG(stm32_uart_base + 0x28u)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)
#define DWT_LAR REG(0xE0001FB0u)

extern uint32_t __stack_limit, __StackTop;

void stm32_dwt_start(int unlock)
{
    DEMCR |= 1u << 24;                             /* TRCENA */
    if (unlock) {
        DWT_LAR = 0xC5ACCE55u;
    }
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;                                /* CYCCNTENA */
}

void port_putc(uint8_t c)
{
    while (!(UART_ISR & ISR_TXE)) {
    }
    UART_TDR = c;
}

static int rx_ready(void)
{
    if (UART_ISR & ISR_ORE) {
        UART_ICR = ISR_ORE;                        /* clear overrun; the host's CRC catches the loss */
    }
    return (UART_ISR & ISR_RXNE) != 0u;
}

int port_getc(void)
{
    while (!rx_ready()) {
    }
    return (int)(UART_RDR & 0xFFu);
}

int port_getc_timeout(uint32_t timeout_ms)
{
    uint64_t limit = port_ticks() + (uint64_t)timeout_ms * (stm32_sysclk_hz / 1000u);
    while (!rx_ready()) {
        if (port_ticks() > limit) {
            return -1;
        }
    }
    return (int)(UART_RDR & 0xFFu);
}

uint64_t port_ticks(void) { return systick_ticks(); }
uint32_t port_tick_hz(void) { return stm32_sysclk_hz; }
uint32_t port_cycles(void) { return DWT_CYCCNT; }
int port_has_cycles(void) { return 1; }
uintptr_t port_stack_lo(void) { return (uintptr_t)&__stack_limit; }
uintptr_t port_stack_hi(void) { return (uintptr_t)&__StackTop; }
const char *port_timer(void) { return "systick+dwt"; }
