/* Fuzz harness over the firmware's protocol loop (runtime/dut.c) with a port whose link is the fuzz input.
 *
 * Each input is the byte stream a host sends after boot: commands, binary payloads, noise. The port hands
 * it to dut_feed() one byte at a time (uploads and the between-inference polls read from it too; the end of
 * the input is silence), so every path of the parser runs as on a board. Built with
 * clang -fsanitize=fuzzer,address,undefined (libFuzzer) or with fuzz_main.c under gcc's sanitizers.
 *
 * Besides the sanitizers, every reply is checked as the host would read it, and a violation aborts:
 *   - printable ASCII lines ending in CRLF, none longer than the line buffer (m-results lines excepted);
 *   - every reply closed by m-ready before the input ends;
 *   - a reply that carries m-sum starts with m-cmd-[..] and its sum is the CRC32 of the bytes before it;
 *   - e-[...] lines closed by their bracket.
 * Time is a deterministic counter, so an input replays identically.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "dut.h"
#include "port.h"

#define REPLY_MAX 65536u
#ifndef LINE_LIMIT
#define LINE_LIMIT 94u /* dut.c LINE_MAX - 2; tests build a harness with a smaller one to see it fail */
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *g_in;
static size_t g_in_len;
static size_t g_in_pos;
static uint8_t g_reply[REPLY_MAX];
static size_t g_reply_len;
static uint64_t g_ticks;
static unsigned long g_replies;

static void violation(const char *what)
{
    fprintf(stderr, "edgetk fuzz: protocol violation: %s\nreply (%zu bytes): %.*s\n", what, g_reply_len,
            (int)(g_reply_len < 400u ? g_reply_len : 400u), (const char *)g_reply);
    abort();
}

static int starts(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n >= k && memcmp(p, s, k) == 0;
}

static uint32_t hex32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        int c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            violation("m-sum is not 8 lowercase hex digits");
        }
        v = (v << 4) | (uint32_t)d;
    }
    return v;
}

/* One complete reply (through m-ready) as the host reads it. */
static void check_reply(void)
{
    size_t i = 0, sum_at = (size_t)-1;
    while (i < g_reply_len) {
        size_t start = i;
        while (i < g_reply_len && g_reply[i] != '\r') {
            if (g_reply[i] < 0x20 || g_reply[i] > 0x7E) {
                violation("a byte that is not printable ASCII in a reply line");
            }
            i++;
        }
        if (i + 1 >= g_reply_len || g_reply[i + 1] != '\n') {
            violation("a line not ended by CRLF");
        }
        if (i - start > LINE_LIMIT && !starts(g_reply + start, i - start, "m-results-[")) {
            violation("a line longer than the firmware's line buffer");
        }
        if (starts(g_reply + start, i - start, "e-[") && g_reply[i - 1] != ']') {
            violation("an error line without its closing bracket");
        }
        if (starts(g_reply + start, i - start, "m-sum-")) {
            if (i - start != 14u) {
                violation("an m-sum line of the wrong length");
            }
            sum_at = start;
        }
        i += 2;
    }
    if (sum_at != (size_t)-1) {
        if (g_reply_len - sum_at != 16u + 9u) {
            violation("m-sum is not the line before m-ready");
        }
        if (!starts(g_reply, g_reply_len, "m-cmd-[")) {
            violation("a checksummed reply that does not open with m-cmd-[..]");
        }
        if (crc32_update(0, g_reply, sum_at) != hex32(g_reply + sum_at + 6)) {
            violation("m-sum differs from the CRC32 of the reply bytes");
        }
    }
    g_replies++;
    g_reply_len = 0;
}

void port_init(void) {}

void port_putc(uint8_t c)
{
    if (g_reply_len == REPLY_MAX) {
        violation("a reply longer than 64 KiB");
    }
    g_reply[g_reply_len++] = c;
    if (c == '\n' && g_reply_len >= 9u && memcmp(g_reply + g_reply_len - 9u, "m-ready\r\n", 9u) == 0 &&
        (g_reply_len == 9u || g_reply[g_reply_len - 10u] == '\n')) {
        check_reply();
    }
}

int port_getc_timeout(uint32_t timeout_ms)
{
    (void)timeout_ms;
    return g_in_pos < g_in_len ? g_in[g_in_pos++] : -1;
}

int port_getc(void) { return port_getc_timeout(0u); }
uint64_t port_ticks(void) { return g_ticks += 1000u; }
uint32_t port_tick_hz(void) { return 1000000u; }
uint32_t port_cycles(void) { return (uint32_t)g_ticks; }
int port_has_cycles(void) { return 1; }
uintptr_t port_stack_lo(void) { return 0; }
uintptr_t port_stack_hi(void) { return 0; }
const char *port_board(void) { return "fuzz"; }
const char *port_timer(void) { return "counter"; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_in = data;
    g_in_len = size;
    g_in_pos = 0;
    g_reply_len = 0;
    g_ticks = 0;
    dut_boot();
    while (g_in_pos < g_in_len) {
        dut_feed(g_in[g_in_pos++]);
    }
    if (g_reply_len != 0u) {
        violation("a reply not closed by m-ready");
    }
    return 0;
}
