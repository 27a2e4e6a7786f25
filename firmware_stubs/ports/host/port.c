/* Host port: the same runtime compiled with gcc, serving the protocol on a pseudo-terminal.
 * It opens a pty in raw mode, prints "pty <slave path>" on stdout, and talks on the master side;
 * the host runner opens the slave path through pyserial like any serial device. Timing is
 * CLOCK_MONOTONIC (wall time of this machine; functional fallback, not a board figure). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "port.h"

static int g_fd = -1;
static int g_slave = -1;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

void port_init(void)
{
    struct termios tio;
    g_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (g_fd < 0 || grantpt(g_fd) != 0 || unlockpt(g_fd) != 0) {
        die("posix_openpt");
    }
    /* Keep a slave descriptor open so the master never sees EIO between host connections. */
    g_slave = open(ptsname(g_fd), O_RDWR | O_NOCTTY);
    if (g_slave < 0 || tcgetattr(g_slave, &tio) != 0) {
        die("open pty slave");
    }
    cfmakeraw(&tio);
    if (tcsetattr(g_slave, TCSANOW, &tio) != 0) {
        die("tcsetattr");
    }
    printf("pty %s\n", ptsname(g_fd));
    fflush(stdout);
}

void port_putc(uint8_t c)
{
    while (write(g_fd, &c, 1) != 1) {
        if (errno != EINTR && errno != EAGAIN) {
            die("write");
        }
    }
}

int port_getc_timeout(uint32_t timeout_ms)
{
    struct pollfd p = {g_fd, POLLIN, 0};
    uint8_t c;
    int r = poll(&p, 1, timeout_ms == 0xFFFFFFFFu ? -1 : (int)timeout_ms);
    if (r == 0) {
        return -1;
    }
    if (r < 0 || read(g_fd, &c, 1) != 1) {
        if (errno == EINTR || errno == EAGAIN || errno == EIO) {
            return -1;
        }
        die("read");
    }
    return c;
}

int port_getc(void)
{
    return port_getc_timeout(0xFFFFFFFFu);
}

uint64_t port_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t port_tick_hz(void) { return 1000000000u; }
uint32_t port_cycles(void) { return 0; }
int port_has_cycles(void) { return 0; }
uintptr_t port_stack_lo(void) { return 0; }
uintptr_t port_stack_hi(void) { return 0; }
const char *port_board(void) { return "host-sim"; }
const char *port_timer(void) { return "clock_gettime"; }

void dut_main(void);

int main(void)
{
    dut_main();
    return 0;
}
