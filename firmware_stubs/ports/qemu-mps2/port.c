/* QEMU mps2 port (an386 Cortex-M4, an500 Cortex-M7): CMSDK APB UART0 and SysTick.
 * Under `-icount shift=0` one instruction advances virtual time by 1 ns, so SysTick counts are
 * deterministic and measure instructions, not real cycles. QEMU has no DWT cycle counter. */
#include <stdint.h>

#include "port.h"
#include "systick.h"

#ifndef PORT_BOARD
#define PORT_BOARD "qemu-mps2"
#endif
#ifndef PORT_TICK_HZ
#define PORT_TICK_HZ 25000000u
#endif

#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u

extern uint32_t __stack_limit, __StackTop;

void port_init(void)
{
    UART_BAUDDIV = PORT_TICK_HZ / 115200u;
    UART_CTRL = 0x3u; /* TX and RX enable */
    systick_start();
}

void port_putc(uint8_t c)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = c;
}

int port_getc(void)
{
    while (!(UART_STATE & STATE_RX_FULL)) {
    }
    return (int)(UART_DATA & 0xFFu);
}

int port_getc_timeout(uint32_t timeout_ms)
{
    uint64_t limit = port_ticks() + (uint64_t)timeout_ms * (PORT_TICK_HZ / 1000u);
    while (!(UART_STATE & STATE_RX_FULL)) {
        if (port_ticks() > limit) {
            return -1;
        }
    }
    return (int)(UART_DATA & 0xFFu);
}

uint64_t port_ticks(void) { return systick_ticks(); }
uint32_t port_tick_hz(void) { return PORT_TICK_HZ; }
uint32_t port_cycles(void) { return 0; }
int port_has_cycles(void) { return 0; }
uintptr_t port_stack_lo(void) { return (uintptr_t)&__stack_limit; }
uintptr_t port_stack_hi(void) { return (uintptr_t)&__StackTop; }
const char *port_board(void) { return PORT_BOARD; }
const char *port_timer(void) { return "systick-icount"; }
