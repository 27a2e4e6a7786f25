/* edgetk bare-metal harness for QEMU mps2 (Cortex-M): semihosting output and exit, instruction markers.
 * A program defines etb_main(); the harness's dut_main (called by ports/cortexm/startup.c) runs it
 * and exits QEMU with its return value. The QEMU TCG plugin (firmware_stubs/qemu-plugin) counts the
 * instructions between each edgetk_mark_start() / edgetk_mark_stop() pair. */
#ifndef ETB_HARNESS_H
#define ETB_HARNESS_H

#include <stddef.h>
#include <stdint.h>

int etb_main(void);
void edgetk_mark_start(void);
void edgetk_mark_stop(void);
/* Writes a NUL-terminated string to the host's stdout. */
void etb_puts(const char *s);
/* Writes "<tag> <hex bytes>\n". */
void etb_hex(const char *tag, const void *data, size_t n);

#endif
