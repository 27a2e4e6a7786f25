/* The protocol loop of runtime/dut.c: a port's main calls dut_main(); a fuzz harness drives
 * dut_boot() and dut_feed() itself (runtime/fuzz/). */
#ifndef EDGETK_DUT_H
#define EDGETK_DUT_H

/* Boot banner and power-on state. */
void dut_boot(void);
/* One byte received on the link (c < 0: nothing). */
void dut_feed(int c);
/* dut_boot(), then every byte from port_getc() through dut_feed(), forever. */
void dut_main(void);

#endif
