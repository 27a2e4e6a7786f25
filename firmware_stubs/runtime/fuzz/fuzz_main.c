/* A standalone driver for fuzz_dut.c where libFuzzer is not available (gcc with ASan/UBSan): seeded
 * random mutations of the corpus files (bit flips, byte inserts and deletes, command words, splices,
 * cuts), or a replay of the files when no -runs/-max_total_time is given. A failing input (a sanitizer
 * report with abort_on_error=1, or a protocol violation) is written to <out>/crash-<seed>-<index> first.
 *
 *   fuzz_main [-seed=S] [-runs=N] [-max_total_time=SECONDS] [-out=DIR] FILE...
 *
 * Prints "fuzz_main: inputs N, slowest #I T ms, seed S" at the end. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEDS 256
#define MAX_INPUT 4096

static uint8_t *g_seed[MAX_SEEDS];
static size_t g_seed_len[MAX_SEEDS];
static int g_nseeds;
static uint8_t g_cur[MAX_INPUT];
static size_t g_cur_len;
static char g_crash_path[512];

static const char *const WORDS[] = {"name%", "profile%", "timestamp%", "db load ", "db print%", "db ", "infer ",
                                    "results%", "info%", "mem%", "bload ", "run ", "rload ", "rrun ", "%",
                                    " ", "\r\n", "10000", "10001", "4294967295", "4294967296", "0", "ffffffff",
                                    "-1", "\x00", "\x7f", "\xff"};

static uint64_t g_rng;

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return n ? (uint32_t)(g_rng % n) : 0u;
}

static void on_abort(int sig)
{
    int fd = open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, g_cur, g_cur_len);
        (void)w;
        close(fd);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void insert(const uint8_t *p, size_t n, size_t at)
{
    if (g_cur_len + n > MAX_INPUT) {
        return;
    }
    memmove(g_cur + at + n, g_cur + at, g_cur_len - at);
    memcpy(g_cur + at, p, n);
    g_cur_len += n;
}

static void mutate(void)
{
    int k = g_nseeds ? (int)rnd((uint32_t)g_nseeds) : 0;
    g_cur_len = g_nseeds ? g_seed_len[k] : 0u;
    memcpy(g_cur, g_seed[k], g_cur_len);
    for (uint32_t m = 1 + rnd(4); m > 0; m--) {
        size_t at = g_cur_len ? rnd((uint32_t)g_cur_len + 1u) : 0u;
        uint8_t b = (uint8_t)rnd(256);
        switch (rnd(6)) {
        case 0:
            if (g_cur_len) {
                g_cur[at % g_cur_len] ^= (uint8_t)(1u << rnd(8));
            }
            break;
        case 1:
            insert(&b, 1, at);
            break;
        case 2:
            if (at < g_cur_len) {
                memmove(g_cur + at, g_cur + at + 1, g_cur_len - at - 1);
                g_cur_len--;
            }
            break;
        case 3: {
            const char *w = WORDS[rnd(sizeof WORDS / sizeof WORDS[0])];
            insert((const uint8_t *)w, w[0] ? strlen(w) : 1u, at);
            break;
        }
        case 4: {
            int j = (int)rnd((uint32_t)g_nseeds);
            if (g_nseeds) {
                insert(g_seed[j], g_seed_len[j], at);
            }
            break;
        }
        default:
            g_cur_len = at;
            break;
        }
    }
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(MAX_INPUT);
    if (f == NULL || buf == NULL) {
        fprintf(stderr, "fuzz_main: cannot read %s\n", path);
        exit(2);
    }
    *n = fread(buf, 1, MAX_INPUT, f);
    fclose(f);
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    unsigned long seed = 1, runs = 0, i;
    double seconds = 0.0, t0, slowest = 0.0;
    unsigned long slowest_i = 0;
    const char *out = ".";
    for (int a = 1; a < argc; a++) {
        if (strncmp(argv[a], "-seed=", 6) == 0) {
            seed = strtoul(argv[a] + 6, NULL, 10);
        } else if (strncmp(argv[a], "-runs=", 6) == 0) {
            runs = strtoul(argv[a] + 6, NULL, 10);
        } else if (strncmp(argv[a], "-max_total_time=", 16) == 0) {
            seconds = strtod(argv[a] + 16, NULL);
        } else if (strncmp(argv[a], "-out=", 5) == 0) {
            out = argv[a] + 5;
        } else if (g_nseeds < MAX_SEEDS) {
            g_seed[g_nseeds] = slurp(argv[a], &g_seed_len[g_nseeds]);
            g_nseeds++;
        }
    }
    g_rng = seed * 0x9E3779B97F4A7C15ull + 1u;
    signal(SIGABRT, on_abort);
    t0 = now_s();
    for (i = 0;; i++) {
        double t;
        if (runs == 0 && seconds <= 0.0) {
            if (i >= (unsigned long)g_nseeds) {
                break;
            }
            g_cur_len = g_seed_len[i];
            memcpy(g_cur, g_seed[i], g_cur_len);
        } else {
            if ((runs && i >= runs) || (seconds > 0.0 && now_s() - t0 >= seconds)) {
                break;
            }
            mutate();
        }
        snprintf(g_crash_path, sizeof g_crash_path, "%s/crash-%lu-%lu", out, seed, i);
        t = now_s();
        LLVMFuzzerTestOneInput(g_cur, g_cur_len);
        t = now_s() - t;
        if (t > slowest) {
            slowest = t;
            slowest_i = i;
        }
    }
    printf("fuzz_main: inputs %lu, slowest #%lu %.3f ms, seed %lu\n", i, slowest_i, slowest * 1e3, seed);
    return 0;
}
