/* The board port: everything the portable runtime needs from a board. One port per folder. */
#ifndef EDGETK_PORT_H
#define EDGETK_PORT_H

#include <stdint.h>

void port_init(void);
/* Blocking byte I/O on the board's serial link. */
void port_putc(uint8_t c);
int port_getc(void);
/* Like port_getc, but returns -1 when no byte arrives within timeout_ms of the port's clock. */
int port_getc_timeout(uint32_t timeout_ms);
/* A free-running 64-bit tick counter and its rate. */
uint64_t port_ticks(void);
uint32_t port_tick_hz(void);
/* A cycle counter (DWT CYCCNT) or 0 where the core has none; port_has_cycles() says which. */
uint32_t port_cycles(void);
int port_has_cycles(void);
/* The stack region [lo, hi) for painting, or lo == hi == 0 where unknown. */
uintptr_t port_stack_lo(void);
uintptr_t port_stack_hi(void);
/* Board name and the label of the timing source ("systick-icount", "dwt", "clock_gettime"). */
const char *port_board(void);
const char *port_timer(void);

#endif
