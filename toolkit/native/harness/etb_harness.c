/* edgetk bare-metal harness (see etb_harness.h). */
#include "etb_harness.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

void dut_main(void);
void SysTick_Handler(void);

static int32_t semihost(int32_t op, const void *arg)
{
    register int32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Different bodies, never inlined, so the linker cannot fold them into one address. */
__attribute__((noinline)) void edgetk_mark_start(void)
{
    __asm__ volatile("nop" ::: "memory");
}

__attribute__((noinline)) void edgetk_mark_stop(void)
{
    __asm__ volatile("nop\n nop" ::: "memory");
}

void etb_puts(const char *s)
{
    semihost(SYS_WRITE0, s);
}

void etb_hex(const char *tag, const void *data, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    static char line[2 * 256 + 2];
    const uint8_t *p = (const uint8_t *)data;
    size_t i, k;
    etb_puts(tag);
    etb_puts(" ");
    for (i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256;
        for (k = 0; k < m; k++) {
            line[2 * k] = digits[p[i + k] >> 4];
            line[2 * k + 1] = digits[p[i + k] & 15];
        }
        line[2 * m] = 0;
        etb_puts(line);
    }
    etb_puts("\n");
}

void SysTick_Handler(void)
{
}

void dut_main(void)
{
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)etb_main();
    semihost(SYS_EXIT_EXTENDED, block); /* {reason, exit code} */
    for (;;) {
    }
}
