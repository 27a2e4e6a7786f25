/* Device-under-test runtime: the MLPerf Tiny DUT protocol plus edgetk's own commands.
 *
 * MLPerf Tiny commands: name, profile, timestamp, db load N, db <hex>, db print, infer N W, results.
 * edgetk commands (replies closed by m-sum-<crc32 of the reply lines> before m-ready):
 *   info            build info: board, model sha256, sizes, arena, MACs, timer and its rate
 *   mem             arena bytes, stack size, stack high-water mark since boot (stack painting)
 *   bload N CRC     binary upload: m-bload-ready, then N raw bytes, checked against CRC (crc32, hex)
 *   run N W         W warm-up and N timed inferences: ticks, cycles, stack, outputs as hex + crc32
 * With a frontend in the library (EDGETK_HAS_FRONTEND, edgetk_frontend.h), raw samples in:
 *   rload N CRC     binary upload of one raw window: N = EDGETK_RAW_SIZE * 2 bytes, int16 little-endian
 *   rrun N W        W warm-up and N timed raw inferences, each the frontend (features into the model's
 *                   input buffer) then the network, each between its own marker pair: frontend and network
 *                   ticks/cycles, stack, features as hex + crc32, outputs as hex + crc32
 * Firmware built without a frontend answers both with e-[no frontend in this build].
 *
 * Every checksummed reply starts with m-cmd-[<the command as received>], sent as soon as the command
 * arrives, so the host knows at once that its command got through, and exactly which one ran.
 * Limits: N and W of infer/run/rrun are at most EDGETK_MAX_RUNS; a byte arriving on the link between
 * two inferences stops a run (the host gave up waiting and is resynchronising). Control bytes in a
 * command separate its words like spaces.
 */
#include <stddef.h>
#include <stdint.h>

#include "crc32.h"
#include "dut.h"
#include "edgetk_model.h"
#include "port.h"

#ifndef EDGETK_MODEL_SHA256
#define EDGETK_MODEL_SHA256 "unknown"
#endif
#ifndef EDGETK_ARENA_SIZE
#define EDGETK_ARENA_SIZE 0
#endif
#ifndef EDGETK_MODEL_MACS
#define EDGETK_MODEL_MACS 0
#endif
#ifndef EDGETK_OUTPUT_SCALE
#define EDGETK_OUTPUT_SCALE 1.0f
#endif
#ifndef EDGETK_OUTPUT_ZERO_POINT
#define EDGETK_OUTPUT_ZERO_POINT 0
#endif

#ifndef EDGETK_MAX_RUNS
#define EDGETK_MAX_RUNS 10000u /* N and W of infer, run, rrun (toolkit/hil/protocol.py MAX_RUNS) */
#endif

#define CMD_MAX 80
#define LINE_MAX 96
#define PAINT 0xA5u
#define PAINT_MARGIN 128u
#define BLOAD_GAP_MS 2000u
#define PROTOCOL_VERSION 2u

static int8_t g_input[EDGETK_INPUT_SIZE];
static int8_t g_output[EDGETK_OUTPUT_SIZE];
#ifdef EDGETK_HAS_FRONTEND
static int16_t g_raw[EDGETK_RAW_SIZE];
static uint32_t g_raw_loaded; /* bytes of g_raw received and CRC-checked */
static uint32_t g_raw_crc;    /* crc32 of those bytes as they came over the link */
#endif
static uint32_t g_expect;
static uint32_t g_loaded;
static int g_have_output;

static char g_cmd[CMD_MAX];  /* the command being received */
static char g_echo[CMD_MAX]; /* the command as received, for m-cmd-[..] */
static uint32_t g_cmd_len;
static int g_cmd_overflow;

static char g_line[LINE_MAX];
static uint32_t g_len;
static int g_summing;
static uint32_t g_sum;

/* ---- reply lines ---------------------------------------------------------------------------- */

static void put_bytes(const char *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        port_putc((uint8_t)s[i]);
    }
    if (g_summing) {
        g_sum = crc32_update(g_sum, (const uint8_t *)s, n);
    }
}

static void lb_str(const char *s)
{
    while (*s != '\0' && g_len < LINE_MAX - 2u) {
        g_line[g_len++] = *s++;
    }
}

static void lb_char(char c)
{
    if (g_len < LINE_MAX - 2u) {
        g_line[g_len++] = c;
    }
}

static void lb_u64(uint64_t v)
{
    char tmp[21];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        lb_char(tmp[--n]);
    }
}

static void lb_i32(int32_t v)
{
    if (v < 0) {
        lb_char('-');
        lb_u64((uint64_t)(-(int64_t)v));
    } else {
        lb_u64((uint64_t)v);
    }
}

static void lb_hex8(uint8_t v)
{
    static const char digits[] = "0123456789abcdef";
    lb_char(digits[v >> 4]);
    lb_char(digits[v & 15u]);
}

static void lb_hex32(uint32_t v)
{
    for (int s = 24; s >= 0; s -= 8) {
        lb_hex8((uint8_t)(v >> s));
    }
}

/* Close a bracketed line with ']' even when the text filled the line (a truncated value, never a lost bracket). */
static void lb_close(void)
{
    if (g_len > LINE_MAX - 3u) {
        g_len = LINE_MAX - 3u;
    }
    g_line[g_len++] = ']';
}

static void lb_start(const char *prefix)
{
    g_len = 0;
    lb_str(prefix);
}

static void lb_end(void)
{
    g_line[g_len++] = '\r';
    g_line[g_len++] = '\n';
    put_bytes(g_line, g_len);
    g_len = 0;
}

/* data as hex lines of 32 bytes: <prefix><64 hex digits> */
static void lb_hex_lines(const char *prefix, const int8_t *data, uint32_t n)
{
    for (uint32_t i = 0; i < n; i += 32u) {
        lb_start(prefix);
        for (uint32_t j = i; j < i + 32u && j < n; j++) {
            lb_hex8((uint8_t)data[j]);
        }
        lb_end();
    }
}

static void line(const char *s)
{
    lb_start(s);
    lb_end();
}

static void line_u64(const char *prefix, uint64_t v)
{
    lb_start(prefix);
    lb_u64(v);
    lb_end();
}

static void error(const char *msg, const char *detail)
{
    lb_start("e-[");
    lb_str(msg);
    lb_str(detail);
    lb_close();
    lb_end();
}

/* Start a checksummed reply with the command as the device received it. */
static void begin_sum(void)
{
    g_summing = 1;
    g_sum = 0;
    lb_start("m-cmd-[");
    lb_str(g_echo);
    lb_close();
    lb_end();
}

static void ready(void)
{
    if (g_summing) {
        g_summing = 0;
        lb_start("m-sum-");
        lb_hex32(g_sum);
        lb_end();
    }
    line("m-ready");
}

/* ---- parsing --------------------------------------------------------------------------------- */

static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > 0xFFFFFFFFu) {
            return 0;
        }
    }
    *out = (uint32_t)v;
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int parse_hex32(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    int n = 0;
    if (s == NULL) {
        return 0;
    }
    for (; *s != '\0'; s++, n++) {
        int d = hex_digit(*s);
        if (d < 0 || n >= 8) {
            return 0;
        }
        v = (v << 4) | (uint32_t)d;
    }
    *out = v;
    return n > 0;
}

static int streq(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static int tokenize(char *s, char **tok, int max)
{
    int n = 0;
    while (*s != '\0' && n < max) {
        while (*s == ' ') {
            *s++ = '\0';
        }
        if (*s == '\0') {
            break;
        }
        tok[n++] = s;
        while (*s != '\0' && *s != ' ') {
            s++;
        }
    }
    return n;
}

/* ---- timing and memory ----------------------------------------------------------------------- */

/* Microseconds, modulo 2^32 (the host takes differences modulo 2^32), without overflowing ticks * 10^6. */
static uint32_t ticks_to_us(uint64_t ticks)
{
    uint64_t hz = port_tick_hz();
    return (uint32_t)((ticks / hz) * 1000000u + (ticks % hz) * 1000000u / hz);
}

static void paint_stack(void)
{
    volatile uint8_t *p = (volatile uint8_t *)port_stack_lo();
    uintptr_t sp = (uintptr_t)&p;
    if (p == NULL) {
        return;
    }
    while ((uintptr_t)p + PAINT_MARGIN < sp) {
        *p++ = PAINT;
    }
}

static uint32_t stack_high_water(void)
{
    const volatile uint8_t *p = (const volatile uint8_t *)port_stack_lo();
    uintptr_t hi = port_stack_hi();
    if (p == NULL) {
        return 0;
    }
    while ((uintptr_t)p < hi && *p == PAINT) {
        p++;
    }
    return (uint32_t)(hi - (uintptr_t)p);
}

/* ---- MLPerf Tiny commands ---------------------------------------------------------------------- */

static void cmd_name(void)
{
    lb_start("m-name-dut-[edgetk ");
    lb_str(port_board());
    lb_close();
    lb_end();
}

/* The MLPerf Tiny benchmark key of the model (kws01, vww01, ic01, ad01, sww01): the MLCommons runner
 * picks its test script by it. Set at build time (toolkit/hil/build.py); "edgetk" for other models. */
#ifndef EDGETK_MLPERF_MODEL
#define EDGETK_MLPERF_MODEL "edgetk"
#endif

static void cmd_profile(void)
{
    line("m-profile-[ULPMark for tinyML Firmware V0.0.1]");
    lb_start("m-model-[");
    lb_str(EDGETK_MLPERF_MODEL);
    lb_close();
    lb_end();
}

static void cmd_timestamp(void)
{
    line_u64("m-lap-us-", ticks_to_us(port_ticks()));
}

static void db_load(const char *arg)
{
    uint32_t n;
    if (!parse_u32(arg, &n) || n > sizeof g_input) {
        lb_start("e-[db load size out of range, max ");
        lb_u64(sizeof g_input);
        lb_close();
        lb_end();
        return;
    }
    g_expect = n;
    g_loaded = 0;
    lb_start("m-[Expecting ");
    lb_u64(n);
    lb_str(" bytes]");
    lb_end();
}

static void db_hex(const char *hex)
{
    const char *p = hex;
    for (; p[0] != '\0'; p += 2) {
        int hi = hex_digit(p[0]);
        int lo = p[1] == '\0' ? -1 : hex_digit(p[1]);
        if (p[1] == '\0') {
            error("Insufficent number of hex digits", "");
            return;
        }
        if (hi < 0 || lo < 0) {
            char bad[3] = {p[0], p[1], '\0'};
            error("Invalid hex digit '", bad);
            return;
        }
        if (g_loaded < g_expect) {
            g_input[g_loaded++] = (int8_t)((hi << 4) | lo);
        }
    }
    if (g_expect > 0u && g_loaded == g_expect) {
        line("m-load-done");
    }
}

static void db_print(void)
{
    for (uint32_t i = 0; i < g_loaded; i += 8u) {
        lb_start("m-buffer");
        for (uint32_t j = i; j < i + 8u && j < g_loaded; j++) {
            lb_char('-');
            lb_hex8((uint8_t)g_input[j]);
        }
        lb_end();
    }
}

static void cmd_db(char **tok, int n)
{
    if (n >= 3 && streq(tok[1], "load")) {
        db_load(tok[2]);
    } else if (n >= 2 && streq(tok[1], "print")) {
        db_print();
    } else if (n >= 2) {
        db_hex(tok[1]);
    } else {
        error("Missing db argument", "");
    }
}

/* A float with 3 decimals (what the MLCommons runner parses); beyond 2^32 as d.ddde+NN; nan, inf. */
static void lb_float3(float f)
{
    uint64_t milli;
    int exp10 = 0;
    if (f != f) {
        lb_str("nan");
        return;
    }
    if (f < 0.0f) {
        lb_char('-');
        f = -f;
    }
    if (f > 3.4e38f) {
        lb_str("inf");
        return;
    }
    while (f >= 4294967296.0f) {
        f /= 10.0f;
        exp10++;
    }
    if (exp10 > 0) {
        while (f >= 10.0f) {
            f /= 10.0f;
            exp10++;
        }
    }
    milli = (uint64_t)(f * 1000.0f + 0.5f);
    lb_u64(milli / 1000u);
    lb_char('.');
    lb_char((char)('0' + (int)((milli / 100u) % 10u)));
    lb_char((char)('0' + (int)((milli / 10u) % 10u)));
    lb_char((char)('0' + (int)(milli % 10u)));
    if (exp10 > 0) {
        lb_str("e+");
        lb_u64((uint64_t)exp10);
    }
}

#ifdef EDGETK_OUTPUT_FLOAT32
/* Float32 outputs (a model ending in DEQUANTIZE): 4 little-endian bytes per value, printed as they are. */
#define RESULT_COUNT (sizeof g_output / 4u)
static float result_value(uint32_t i)
{
    union {
        uint32_t u;
        float f;
    } v;
    const uint8_t *b = (const uint8_t *)g_output + 4u * i;
    v.u = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    return v.f;
}
#else
/* int8 outputs, dequantized with the output's scale and zero point. */
#define RESULT_COUNT (sizeof g_output)
static float result_value(uint32_t i)
{
    return (float)((int32_t)g_output[i] - (int32_t)EDGETK_OUTPUT_ZERO_POINT) * (float)EDGETK_OUTPUT_SCALE;
}
#endif

static void print_results(void)
{
    uint32_t i;
    lb_start("m-results-[");
    for (i = 0; i < RESULT_COUNT; i++) {
        if (g_len > LINE_MAX - 20u) { /* room for "," and the longest value, "-4294967295.999" */
            /* One line however long (the MLCommons runner matches ^m-results-\[...\]$): send what
             * the buffer holds and keep going, without a line break. */
            put_bytes(g_line, g_len);
            g_len = 0;
        }
        if (i > 0u) {
            lb_char(',');
        }
        lb_float3(result_value(i));
    }
    lb_close();
    lb_end();
}

/* Empty, never inlined: an instruction counter (the QEMU TCG plugin) counts between these two. */
void edgetk_mark_start(void);
void edgetk_mark_stop(void);

__attribute__((noinline)) void edgetk_mark_start(void)
{
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void edgetk_mark_stop(void)
{
    __asm__ volatile("" ::: "memory");
}

/* 1 when a byte has arrived on the link (it is consumed): the host gave up on this command and is
 * resynchronising, so a long run stops instead of holding the link. Polled between inferences only. */
static int link_interrupt(void)
{
    return port_getc_timeout(0u) >= 0;
}

/* Up to n inferences, each between the instruction-counter markers when `marked`, stopping at the first
 * failure or at a byte on the link (polled between two inferences). Returns the status of the last one and
 * the number attempted in *done (done < n with status 0: interrupted). */
static int invoke_n(uint32_t n, int marked, uint32_t *done)
{
    int rc = 0;
    uint32_t i = 0;
    while (i < n && rc == 0) {
        if (i > 0u && link_interrupt()) {
            break;
        }
        if (marked) {
            edgetk_mark_start();
        }
        rc = edgetk_invoke(g_input, g_output);
        if (marked) {
            edgetk_mark_stop();
        }
        i++;
    }
    if (i > 0u) {
        g_have_output = (rc == 0);
    }
    *done = i;
    return rc;
}

/* e-[<cmd> aborted by a byte on the link after K of N] */
static void aborted(const char *cmd, uint32_t done, uint32_t n)
{
    lb_start("e-[");
    lb_str(cmd);
    lb_str(" aborted by a byte on the link after ");
    lb_u64(done);
    lb_str(" of ");
    lb_u64(n);
    lb_close();
    lb_end();
}

/* "<cmd> [N [W]]": N in 1..EDGETK_MAX_RUNS (default 1), W in 0..EDGETK_MAX_RUNS (default default_warm);
 * otherwise the error reply and 0. */
static int parse_nw(const char *cmd, char **tok, int n, uint32_t *runs, uint32_t *warm, uint32_t default_warm)
{
    *runs = 1;
    *warm = default_warm;
    if ((n < 2 || parse_u32(tok[1], runs)) && (n < 3 || parse_u32(tok[2], warm)) && *runs > 0u &&
        *runs <= EDGETK_MAX_RUNS && *warm <= EDGETK_MAX_RUNS) {
        return 1;
    }
    lb_start("e-[");
    lb_str(cmd);
    lb_str(" expects: ");
    lb_str(cmd);
    lb_str(" N W, N 1..");
    lb_u64(EDGETK_MAX_RUNS);
    lb_str(", W 0..");
    lb_u64(EDGETK_MAX_RUNS);
    lb_close();
    lb_end();
    return 0;
}

static void cmd_infer(char **tok, int n)
{
    uint32_t runs, warm, done;
    uint64_t t0, t1;
    int rc;
    if (!parse_nw("infer", tok, n, &runs, &warm, 10u)) {
        return;
    }
    line_u64("m-warmup-start-", warm);
    rc = invoke_n(warm, 0, &done);
    if (rc == 0 && done < warm) {
        aborted("infer", done, warm);
        return;
    }
    line("m-warmup-done");
    line_u64("m-infer-start-", runs);
    t0 = port_ticks();
    line_u64("m-lap-us-", ticks_to_us(t0));
    rc = rc != 0 ? rc : invoke_n(runs, 0, &done);
    if (rc != 0) {
        error("edgetk_invoke failed", "");
        return;
    }
    if (done < runs) {
        aborted("infer", done, runs);
        return;
    }
    t1 = port_ticks();
    line_u64("m-lap-us-", ticks_to_us(t1));
    line("m-infer-done");
    print_results();
}

/* ---- edgetk commands --------------------------------------------------------------------------- */

static void line_tagged(const char *prefix, const char *value)
{
    lb_start(prefix);
    lb_char('[');
    lb_str(value);
    lb_close();
    lb_end();
}

static void cmd_info(void)
{
    begin_sum();
    line_u64("m-info-protocol-", PROTOCOL_VERSION);
    line_tagged("m-info-board-", port_board());
    line_tagged("m-info-sha256-", EDGETK_MODEL_SHA256);
    line_u64("m-info-in-", EDGETK_INPUT_SIZE);
    line_u64("m-info-out-", EDGETK_OUTPUT_SIZE);
    line_u64("m-info-arena-", EDGETK_ARENA_SIZE);
    line_u64("m-info-macs-", EDGETK_MODEL_MACS);
    line_tagged("m-info-timer-", port_timer());
    line_u64("m-info-tick-hz-", port_tick_hz());
    line_u64("m-info-cycles-", (uint64_t)port_has_cycles());
#ifdef EDGETK_HAS_FRONTEND
    line_tagged("m-info-frontend-", EDGETK_FRONTEND_TYPE);
    line_u64("m-info-raw-", sizeof g_raw);
#endif
}

static void cmd_mem(void)
{
    begin_sum();
    line_u64("m-mem-arena-", EDGETK_ARENA_SIZE);
    line_u64("m-mem-stack-size-", port_stack_hi() - port_stack_lo());
    line_u64("m-mem-stack-hwm-", stack_high_water());
}

/* A binary upload after "<cmd> N CRC%": m-<cmd>-ready, then N bytes (each through `store`, CRC over the bytes
 * as they came), m-<cmd>-crc-XXXXXXXX, then m-load-done or an error. Returns 1 when the CRC matched. */
static int receive(const char *cmd, uint32_t n, uint32_t want, void (*store)(uint32_t i, uint8_t b))
{
    uint32_t got = 0;
    uint32_t crc = 0;
    lb_start("m-");
    lb_str(cmd);
    lb_str("-ready");
    lb_end();
    for (; got < n; got++) {
        int c = port_getc_timeout(BLOAD_GAP_MS);
        uint8_t b = (uint8_t)c;
        if (c < 0) {
            break;
        }
        store(got, b);
        crc = crc32_update(crc, &b, 1u);
    }
    if (got < n) {
        lb_start("e-[");
        lb_str(cmd);
        lb_str(" timeout after ");
        lb_u64(got);
        lb_str(" bytes]");
        lb_end();
        return 0;
    }
    lb_start("m-");
    lb_str(cmd);
    lb_str("-crc-");
    lb_hex32(crc);
    lb_end();
    if (crc != want) {
        error(cmd, " crc mismatch");
        return 0;
    }
    line("m-load-done");
    return 1;
}

static void store_input(uint32_t i, uint8_t b)
{
    g_input[i] = (int8_t)b;
}

/* The arguments of "<cmd> N CRC%": 1 and the CRC when N is `size`, else the error reply and 0. */
static int upload_args(const char *cmd, char **tok, int n, uint32_t size, uint32_t *crc)
{
    uint32_t len;
    if (n < 3 || !parse_u32(tok[1], &len) || !parse_hex32(tok[2], crc)) {
        lb_start("e-[");
        lb_str(cmd);
        lb_str(" expects: ");
        lb_str(cmd);
        lb_str(" N CRC32HEX]");
        lb_end();
        return 0;
    }
    if (len != size) {
        lb_start("e-[");
        lb_str(cmd);
        lb_str(" size must be ");
        lb_u64(size);
        lb_close();
        lb_end();
        return 0;
    }
    return 1;
}

static void cmd_bload(char **tok, int n)
{
    uint32_t crc;
    begin_sum();
    if (!upload_args("bload", tok, n, sizeof g_input, &crc)) {
        return;
    }
    g_loaded = 0;
    g_expect = sizeof g_input;
    g_have_output = 0;
    if (receive("bload", sizeof g_input, crc, store_input)) {
        g_loaded = sizeof g_input;
    }
}

static void run_report(uint32_t runs, uint64_t ticks, uint32_t cycles, int rc)
{
    line_u64("m-run-n-", runs);
    line_u64("m-ticks-", ticks);
    line_u64("m-cycles-", cycles);
    line_u64("m-stack-", stack_high_water());
    lb_start("m-status-");
    lb_i32(rc);
    lb_end();
    lb_start("m-in-crc-");
    lb_hex32(crc32_update(0, (const uint8_t *)g_input, sizeof g_input));
    lb_end();
    lb_hex_lines("m-out-", g_output, sizeof g_output);
    lb_start("m-out-crc-");
    lb_hex32(crc32_update(0, (const uint8_t *)g_output, sizeof g_output));
    lb_end();
}

static void cmd_run(char **tok, int n)
{
    uint32_t runs, warm, done, c0 = 0, cycles = 0;
    uint64_t t0 = 0, ticks = 0;
    int rc;
    begin_sum();
    if (!parse_nw("run", tok, n, &runs, &warm, 0u)) {
        return;
    }
    if (g_loaded != sizeof g_input) {
        error("no input loaded", "");
        return;
    }
    rc = invoke_n(warm, 0, &done);
    if (rc == 0 && done < warm) {
        aborted("run", done, warm);
        return;
    }
    if (rc == 0) {
        paint_stack();
        c0 = port_cycles();
        t0 = port_ticks();
        rc = invoke_n(runs, 1, &done); /* each inference marked: the plugin writes one count per inference */
        ticks = port_ticks() - t0;
        cycles = port_cycles() - c0;
        if (rc == 0 && done < runs) {
            aborted("run", done, runs);
            return;
        }
    }
    run_report(runs, ticks, cycles, rc);
}

/* ---- raw samples in (a library generated with a frontend) ------------------------------------- */

#ifdef EDGETK_HAS_FRONTEND
static void store_raw(uint32_t i, uint8_t b)
{
    /* little-endian int16 on the wire, assembled the same on any host byte order */
    uint16_t v = (uint16_t)g_raw[i / 2u];
    v = (i & 1u) ? (uint16_t)((v & 0x00FFu) | ((uint16_t)b << 8)) : (uint16_t)((v & 0xFF00u) | b);
    g_raw[i / 2u] = (int16_t)v;
}

static void cmd_rload(char **tok, int n)
{
    uint32_t crc;
    begin_sum();
    if (!upload_args("rload", tok, n, sizeof g_raw, &crc)) {
        return;
    }
    g_raw_loaded = 0;
    if (receive("rload", sizeof g_raw, crc, store_raw)) {
        g_raw_loaded = sizeof g_raw;
        g_raw_crc = crc;
    }
}

/* An rrun stopped by the link after `done` complete raw inferences: their features are the model input now. */
static void rrun_aborted(uint32_t done, uint32_t n)
{
    g_loaded = sizeof g_input;
    g_have_output = 1;
    aborted("rrun", done, n);
}

static void cmd_rrun(char **tok, int n)
{
    uint32_t runs, warm, i, c0, c1, fe_cycles = 0, net_cycles = 0;
    uint64_t t0, t1, fe_ticks = 0, net_ticks = 0;
    int rc = 0;
    begin_sum();
    if (!parse_nw("rrun", tok, n, &runs, &warm, 0u)) {
        return;
    }
    if (g_raw_loaded != sizeof g_raw) {
        error("no raw input loaded", "");
        return;
    }
    for (i = 0; i < warm && rc == 0; i++) {
        if (i > 0u && link_interrupt()) {
            rrun_aborted(i, warm);
            return;
        }
        rc = edgetk_features(g_raw, g_input);
        rc = rc != 0 ? rc : edgetk_invoke(g_input, g_output);
    }
    paint_stack();
    for (i = 0; i < runs && rc == 0; i++) {
        if (i > 0u && link_interrupt()) {
            rrun_aborted(i, runs);
            return;
        }
        c0 = port_cycles();
        t0 = port_ticks();
        edgetk_mark_start();
        rc = edgetk_features(g_raw, g_input);
        edgetk_mark_stop();
        t1 = port_ticks();
        c1 = port_cycles();
        fe_ticks += t1 - t0;
        fe_cycles += c1 - c0;
        if (rc != 0) {
            break;
        }
        edgetk_mark_start();
        rc = edgetk_invoke(g_input, g_output);
        edgetk_mark_stop();
        net_ticks += port_ticks() - t1;
        net_cycles += port_cycles() - c1;
    }
    /* the features are the model input now: `run` and `results` work on them */
    g_loaded = rc == 0 ? sizeof g_input : 0u;
    g_have_output = rc == 0;
    line_u64("m-rrun-n-", runs);
    line_u64("m-fe-ticks-", fe_ticks);
    line_u64("m-fe-cycles-", fe_cycles);
    line_u64("m-net-ticks-", net_ticks);
    line_u64("m-net-cycles-", net_cycles);
    line_u64("m-stack-", stack_high_water());
    lb_start("m-status-");
    lb_i32(rc);
    lb_end();
    lb_start("m-raw-crc-");
    lb_hex32(g_raw_crc);
    lb_end();
    lb_hex_lines("m-feat-", g_input, sizeof g_input);
    lb_start("m-feat-crc-");
    lb_hex32(crc32_update(0, (const uint8_t *)g_input, sizeof g_input));
    lb_end();
    lb_hex_lines("m-out-", g_output, sizeof g_output);
    lb_start("m-out-crc-");
    lb_hex32(crc32_update(0, (const uint8_t *)g_output, sizeof g_output));
    lb_end();
}
#else
static void cmd_rload(char **tok, int n)
{
    (void)tok;
    (void)n;
    begin_sum();
    error("no frontend in this build", "");
}

static void cmd_rrun(char **tok, int n)
{
    cmd_rload(tok, n);
}
#endif

/* ---- dispatch -------------------------------------------------------------------------------- */

static void dispatch(char *cmd)
{
    char *tok[4];
    int n = tokenize(cmd, tok, 4);
    if (n == 0) {
        /* An empty command: just m-ready, used by the host to resynchronise. */
    } else if (streq(tok[0], "name")) {
        cmd_name();
    } else if (streq(tok[0], "profile")) {
        cmd_profile();
    } else if (streq(tok[0], "timestamp")) {
        cmd_timestamp();
    } else if (streq(tok[0], "db")) {
        cmd_db(tok, n);
    } else if (streq(tok[0], "infer")) {
        cmd_infer(tok, n);
    } else if (streq(tok[0], "results")) {
        if (g_have_output) {
            print_results();
        } else {
            error("no results yet", "");
        }
    } else if (streq(tok[0], "info")) {
        cmd_info();
    } else if (streq(tok[0], "mem")) {
        cmd_mem();
    } else if (streq(tok[0], "bload")) {
        cmd_bload(tok, n);
    } else if (streq(tok[0], "run")) {
        cmd_run(tok, n);
    } else if (streq(tok[0], "rload")) {
        cmd_rload(tok, n);
    } else if (streq(tok[0], "rrun")) {
        cmd_rrun(tok, n);
    } else {
        error("Unknown command: ", tok[0]);
    }
    ready();
}

/* Power-on state: nothing loaded, no reply in progress, the boot banner. */
void dut_boot(void)
{
    g_expect = 0;
    g_loaded = 0;
    g_have_output = 0;
    g_len = 0;
    g_summing = 0;
    g_cmd_len = 0;
    g_cmd_overflow = 0;
#ifdef EDGETK_HAS_FRONTEND
    g_raw_loaded = 0;
#endif
    port_init();
    paint_stack();
    line("m-timestamp-mode-performance");
    line_u64("m-lap-us-", ticks_to_us(port_ticks()));
    line("m-init-done");
    line("m-ready");
}

/* One byte from the link: '%' ends a command; CR and LF are dropped; other control bytes separate words
 * like a space (a NUL left in the buffer must not end the command early); bytes above 0x7F become '?',
 * so every reply, echoes included, stays printable ASCII. */
void dut_feed(int c)
{
    if (c == '%') {
        g_cmd[g_cmd_len] = '\0';
        if (g_cmd_overflow) {
            error("Command too long", "");
            ready();
        } else {
            for (uint32_t i = 0; i <= g_cmd_len; i++) {
                g_echo[i] = g_cmd[i];
            }
            dispatch(g_cmd);
        }
        g_cmd_len = 0;
        g_cmd_overflow = 0;
    } else if (c == '\r' || c == '\n' || c < 0) {
        return;
    } else if (g_cmd_len < CMD_MAX - 1u) {
        g_cmd[g_cmd_len++] = (c < 0x20 || c == 0x7F) ? ' ' : c > 0x7F ? '?' : (char)c;
    } else {
        g_cmd_overflow = 1;
    }
}

void dut_main(void)
{
    dut_boot();
    for (;;) {
        dut_feed(port_getc());
    }
}
