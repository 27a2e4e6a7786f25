/* One training step of edgetk's DS-CNN (toolkit/nn/dscnn.py) in one call: forward in training mode (BatchNorm on
 * the batch's statistics, running statistics updated as torch does), softmax cross-entropy (label smoothing), and
 * the backward pass into every parameter's gradient, in torch's layouts. The optimizer step stays torch's.
 *
 * Why: the DS-CNN's training step in eager torch is ~100 kernel calls, each a pass over a [N, C, 25, 5]
 * activation; here a layer is one or two passes over channels-last rows of CH floats (one vector register at
 * CH = 16), with no allocation. Deterministic: fixed loop order.
 *
 * Threads (dscnn_train_step's `threads` T, 1..MAXT): the batch's samples are split into T slots, slot t taking
 * samples [N t / T, N (t + 1) / T). The step is a sequence of phases (the code between two BatchNorm reductions);
 * a phase is one segment per slot, each writing only its slot's rows and partials. BatchNorm's batch sums, the loss
 * and every weight gradient are per-slot partials combined in slot order (0, 1, ...), so T gives the same bits run
 * to run whichever thread ran which segment (another T: other rounding in the last bits; T = 1 is the plain loop,
 * no pool). The calling thread (slot 0) and T - 1 workers (created once per process, per library; worker t: slot
 * t) claim a phase's segments in one atomic word: each its own slot first, then any slot still unclaimed once its
 * own is done, so a worker that is not running (a shared core) leaves its segments to the others instead of
 * stalling them; whoever finishes the phase's last segment opens the next. Waits spin a little, then sched_yield;
 * a worker idle ~1 ms sleeps on a condition variable.
 *
 * Network (geo[] below): stem Conv(1 -> CH, KH x KW, stride SH x SW, padding PH x PW, no bias) + BN + ReLU, then
 * `blocks` x [depthwise 3x3 (padding 1) + BN + ReLU, pointwise 1x1 + BN + ReLU], global average pool, Linear(CH ->
 * classes). Activations are channels-last [N, H, W, CH]; the input is [N, 1, H_in, W_in]. CH is fixed at compile
 * time (-DCH=16) so the channel loops vectorize. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifndef CH
#error "compile with -DCH=<channels>"
#endif

enum { G_N, G_HIN, G_WIN, G_KH, G_KW, G_SH, G_SW, G_PH, G_PW, G_BLOCKS, G_CLASSES, G_COUNT };

typedef struct {
    long n, hin, win, kh, kw, sh, sw, ph, pw, h, w, p, blocks, classes, layers, npc;
} Geo;

static Geo geometry(const int32_t *g)
{
    Geo s;
    s.n = g[G_N]; s.hin = g[G_HIN]; s.win = g[G_WIN]; s.kh = g[G_KH]; s.kw = g[G_KW];
    s.sh = g[G_SH]; s.sw = g[G_SW]; s.ph = g[G_PH]; s.pw = g[G_PW];
    s.blocks = g[G_BLOCKS]; s.classes = g[G_CLASSES];
    s.h = (s.hin + 2 * s.ph - s.kh) / s.sh + 1;
    s.w = (s.win + 2 * s.pw - s.kw) / s.sw + 1;
    s.p = s.h * s.w;
    s.layers = 1 + 2 * s.blocks;
    s.npc = s.n * s.p * CH;
    return s;
}

#define MAXT 8                                     /* most threads a step may use */

/* Floats of one thread's weight-gradient partials (threads 1..T-1; thread 0 writes the gradients themselves):
 * stem [KH*KW][CH], per block dw [9][CH] and pw [CH][CH], classifier [classes][CH] + [classes]. */
static long grad_floats(const Geo *s)
{
    return s->kh * s->kw * CH + s->blocks * (9 * CH + CH * CH) + s->classes * (CH + 1);
}

/* Floats of workspace a step on `threads` threads needs: per layer its normalized conv output and its activation,
 * two gradient buffers, pooled features, probabilities, per-layer mean and 1/std, transposed stem weights, padded
 * input, the gradient partials of threads 1..T-1. */
long dscnn_work_floats(const int32_t *g, int32_t threads)
{
    Geo s = geometry(g);
    return 2 * s.layers * s.npc + 2 * s.npc + s.n * CH + s.n * s.classes + 2 * s.layers * CH + s.kh * s.kw * CH +
           s.n * ((s.h - 1) * s.sh + s.kh) * ((s.w - 1) * s.sw + s.kw) + (threads - 1) * grad_floats(&s);
}

int dscnn_max_threads(void) { return MAXT; }

/* Rows of CH floats as NV vectors of VW lanes (GCC vector extensions: the compiler's own loop vectorizer leaves
 * most of these loops scalar once it has unrolled the CH-long channel loops). Loads and stores go through memcpy:
 * no alignment is assumed. */
#if CH % 16 == 0
#define VW 16
#elif CH % 8 == 0
#define VW 8
#elif CH % 4 == 0
#define VW 4
#else
#define VW 1
#endif
#define NV (CH / VW)
typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VW * sizeof(int32_t))));
#define CHUNK 64                                   /* rows summed in float before a double accumulator takes them */

static inline vf ld(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf relu_mask(vf v, vf gate) { return (vf)((vi)v & (gate > (vf){0})); }   /* v where gate > 0 */

/* sum over rows [0, m) of `expr` (a vf of row r, vector j) into double[CH]: in float over CHUNK rows with four
 * independent accumulators (one would make every add wait for the one before), then into the doubles. */
#define ROW_SUM(out, m, expr)                                                     \
    do {                                                                          \
        for (long r0 = 0; r0 < (m); r0 += CHUNK) {                                \
            long r1 = r0 + CHUNK < (m) ? r0 + CHUNK : (m), r = r0;                \
            vf acc_[4][NV];                                                       \
            memset(acc_, 0, sizeof acc_);                                         \
            for (; r + 4 <= r1; r += 4)                                           \
                for (int u = 0; u < 4; u++) {                                     \
                    r += u;                                                       \
                    for (int j = 0; j < NV; j++) acc_[u][j] += (expr);            \
                    r -= u;                                                       \
                }                                                                 \
            for (; r < r1; r++)                                                   \
                for (int j = 0; j < NV; j++) acc_[0][j] += (expr);                \
            for (int j = 0; j < NV; j++)                                          \
                for (int k = 0; k < VW; k++)                                      \
                    (out)[j * VW + k] += (acc_[0][j][k] + acc_[1][j][k]) + (acc_[2][j][k] + acc_[3][j][k]); \
        }                                                                         \
    } while (0)

/* ---- threads: a persistent pool of workers that claim the step's segments, phase by phase ---- */

typedef struct Job Job;
static void segment(Job *job, int t, long p);

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#define SPINS 2000                                 /* pause-spins before a waiting thread starts to sched_yield */
#define IDLE_NS 1000000L                           /* a worker idle this long sleeps on the condition variable */
#define PHASE_BITS 12                              /* a claim: (gen << PHASE_BITS | phase) << 16 | slot bits */

static void backoff(unsigned *spins)
{
    if (*spins < SPINS) {
        ++*spins;
        cpu_relax();
    } else {
        sched_yield();
    }
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static struct {
    pthread_mutex_t step;                          /* one step at a time on the pool */
    pthread_mutex_t lock;                          /* with wake: sleeping workers */
    pthread_cond_t wake;
    int workers, sleepers, threads;
    long phases;
    unsigned gen;                                  /* bumped per step: the workers' signal to run */
    unsigned start_gen[MAXT];
    Job *job;
    uint64_t claim __attribute__((aligned(64)));   /* the open phase (tagged with gen) and its slots claimed */
    int done __attribute__((aligned(64)));         /* the open phase's segments finished */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, {0}, 0, 0,
          0};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* In the child of a fork(): no workers (the parent's are not copied), fresh locks. */
static void pool_after_fork(void)
{
    pthread_mutex_init(&pool.step, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pool.workers = pool.sleepers = 0;
}

static void pool_init(void) { pthread_atfork(NULL, NULL, pool_after_fork); }

static uint64_t ticket(unsigned gen, long phase) { return ((uint64_t)gen << PHASE_BITS | (uint64_t)phase) << 16; }

/* Claim and run segments of step `gen` until its last phase is done (or, for a late worker, the step is over): the
 * thread's own slot `home` first (its rows stay in its core's cache phase after phase), then any slot nobody has
 * claimed by the time it is done with its own (a thread that is not running). A segment claimed under the step's
 * tag keeps the step (and its Job) alive until it is counted done. */
static void execute(unsigned gen, int home)
{
    unsigned spins = 0;
    for (;;) {
        uint64_t c = __atomic_load_n(&pool.claim, __ATOMIC_ACQUIRE);
        if (c >> (16 + PHASE_BITS) != gen) return;  /* another step's: this one is over */
        const long p = (long)((c >> 16) & ((1u << PHASE_BITS) - 1));
        const int threads = __atomic_load_n(&pool.threads, __ATOMIC_RELAXED);   /* the next step's, for a late */
        const unsigned taken = (unsigned)(c & 0xffff), all = (1u << threads) - 1;
        if (p >= __atomic_load_n(&pool.phases, __ATOMIC_RELAXED)) return;     /* worker: its claim then fails */
        if (taken == all) {                        /* every segment of the phase taken: wait for it to close */
            backoff(&spins);
            continue;
        }
        const int t = home < threads && !(taken >> home & 1) ? home : __builtin_ctz(~taken & all);
        if (!__atomic_compare_exchange_n(&pool.claim, &c, c | 1u << t, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        spins = 0;
        segment(pool.job, t, p);
        if (__atomic_add_fetch(&pool.done, 1, __ATOMIC_ACQ_REL) == threads) {   /* the phase's last: open the next */
            __atomic_store_n(&pool.done, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&pool.claim, ticket(gen, p + 1), __ATOMIC_RELEASE);
        }
    }
}

/* Wait until pool.gen moves past *seen: spin, yield, then sleep once idle for IDLE_NS. */
static void wait_step(unsigned *seen)
{
    unsigned spins = 0;
    long start = now_ns();
    for (long polls = 0; __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) == *seen; polls++) {
        if (spins < SPINS || polls % 64 || now_ns() - start < IDLE_NS) {
            backoff(&spins);
            continue;
        }
        pthread_mutex_lock(&pool.lock);
        __atomic_add_fetch(&pool.sleepers, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&pool.gen, __ATOMIC_SEQ_CST) == *seen) pthread_cond_wait(&pool.wake, &pool.lock);
        __atomic_sub_fetch(&pool.sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&pool.lock);
    }
    *seen = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
}

static void *worker(void *arg)
{
    unsigned seen = pool.start_gen[(intptr_t)arg];
    for (;;) {
        wait_step(&seen);
        execute(seen, (int)(intptr_t)arg);
    }
    return NULL;
}

/* Workers 1..threads-1 started (once per process; a forked child starts its own), pool.step held. Returns the
 * threads usable. */
static int pool_ready(int threads)
{
    while (pool.workers < threads - 1) {
        const int t = pool.workers + 1;
        pthread_t tid;
        pool.start_gen[t] = pool.gen;
        if (pthread_create(&tid, NULL, worker, (void *)(intptr_t)t) != 0) break;
        pthread_detach(tid);
        pool.workers = t;
    }
    return pool.workers + 1;
}

/* The threads a step on `threads` threads gets (fewer if the workers could not be started); FusedDSCNN asks once. */
int dscnn_threads_ready(int32_t threads)
{
    if (threads <= 1) return 1;
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool.step);
    int got = pool_ready(threads < MAXT ? threads : MAXT);
    pthread_mutex_unlock(&pool.step);
    return got < threads ? got : threads;
}

/* One step's shared state. Phase p's segments write their partials to red[p % 2][slot] and read (combined in slot
 * order) red[(p - 1) % 2]: set p % 2 was last read in phase p - 1, which is closed before phase p opens. */
struct Job {
    Geo s;
    float momentum, eps, smooth;
    float *const *params, *const *grads, *const *stats;
    int64_t *const *tracked;
    const float *x;
    const int64_t *y;
    float *xhat, *act, *ga, *gb, *pooled, *prob, *mean, *invstd, *tw, *xp, *part;
    int threads;
    double loss[MAXT];
    double red[2][MAXT][2 * CH];
};

/* out[0..w*CH) = the slots' partials of phase p - 1 summed in slot order. */
static void combine(const Job *jb, long p, int w, double *out)
{
    const long k = (p - 1) & 1;
    memcpy(out, jb->red[k][0], sizeof(double) * w * CH);
    for (int t = 1; t < jb->threads; t++)
        for (int i = 0; i < w * CH; i++) out[i] += jb->red[k][t][i];
}

/* Phase p, slot t: the slot's partial BatchNorm sum of its `rows` rows of z. */
static void bn_sum(Job *jb, int t, long p, const float *restrict z, long rows)
{
    double part[CH] = {0};
    ROW_SUM(part, rows, ld(z + r * CH + j * VW));
    memcpy(jb->red[p & 1][t], part, sizeof part);
}

/* The batch mean of layer l (slot 0 keeps it in jb->mean), then the slot's partial sum of squared deviations. */
static void bn_var(Job *jb, int t, long p, long l, const float *restrict z, long rows)
{
    double s[CH], part[CH] = {0};
    float mean[CH];
    vf mu[NV];
    combine(jb, p, 1, s);
    for (int k = 0; k < CH; k++) mean[k] = (float)(s[k] / (double)(jb->s.n * jb->s.p));
    if (t == 0) memcpy(jb->mean + l * CH, mean, sizeof mean);
    for (int j = 0; j < NV; j++) mu[j] = ld(mean + j * VW);
    ROW_SUM(part, rows, (ld(z + r * CH + j * VW) - mu[j]) * (ld(z + r * CH + j * VW) - mu[j]));
    memcpy(jb->red[p & 1][t], part, sizeof part);
}

/* BatchNorm (batch statistics) + ReLU over the slot's rows of layer l: z becomes x_hat, a = max(0, gamma x_hat +
 * beta). Slot 0 writes 1/std and the running statistics. */
static void bn_norm(Job *jb, int t, long p, long l, float *restrict z, float *restrict a, long rows)
{
    const long m = jb->s.n * jb->s.p;
    const float momentum = jb->momentum, *gamma = jb->params[3 * l + 1], *beta = jb->params[3 * l + 2];
    const float *mean = jb->mean + l * CH;
    double v[CH];
    float invstd[CH];
    vf mu[NV], is[NV], g[NV], b[NV];
    combine(jb, p, 1, v);
    for (int k = 0; k < CH; k++) invstd[k] = (float)(1.0 / sqrt(v[k] / (double)m + jb->eps));
    if (t == 0) {
        float *rmean = jb->stats[2 * l], *rvar = jb->stats[2 * l + 1];
        memcpy(jb->invstd + l * CH, invstd, sizeof invstd);
        for (int k = 0; k < CH; k++) {
            rmean[k] = (1.0f - momentum) * rmean[k] + momentum * mean[k];
            rvar[k] = (1.0f - momentum) * rvar[k] + momentum * (float)(v[k] / (double)(m > 1 ? m - 1 : 1));
        }
        *jb->tracked[l] += 1;
    }
    for (int j = 0; j < NV; j++) {
        mu[j] = ld(mean + j * VW);
        is[j] = ld(invstd + j * VW);
        g[j] = ld(gamma + j * VW);
        b[j] = ld(beta + j * VW);
    }
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < NV; j++) {
            vf xh = (ld(z + r * CH + j * VW) - mu[j]) * is[j];
            vf y = g[j] * xh + b[j];
            st(z + r * CH + j * VW, xh);
            st(a + r * CH + j * VW, relu_mask(y, y));
        }
}

/* The slot's partial sums for ReLU + BatchNorm backward: sum(dy), sum(dy x_hat) over its rows (dy: da masked by
 * the ReLU). */
static void bn_back_sums(Job *jb, int t, long p, const float *restrict da, const float *restrict a,
                         const float *restrict xhat, long rows)
{
    double part[2 * CH] = {0};
    ROW_SUM(part, rows, relu_mask(ld(da + r * CH + j * VW), ld(a + r * CH + j * VW)));
    ROW_SUM(part + CH, rows,
            relu_mask(ld(da + r * CH + j * VW), ld(a + r * CH + j * VW)) * ld(xhat + r * CH + j * VW));
    memcpy(jb->red[p & 1][t], part, sizeof part);
}

/* ReLU + BatchNorm backward of layer l over the slot's rows, in place: da (the gradient at the ReLU's output)
 * becomes the gradient at the conv's output; slot 0 writes the affine parameters' gradients. */
static void bn_back(Job *jb, int t, long p, long l, float *restrict da, const float *restrict a,
                    const float *restrict xhat, long rows)
{
    const long m = jb->s.n * jb->s.p;
    const float *gamma = jb->params[3 * l + 1], *invstd = jb->invstd + l * CH;
    double sums[2 * CH], *sd = sums, *sdx = sums + CH;
    combine(jb, p, 2, sums);
    float k[CH], mb[CH], mg[CH];
    for (int c = 0; c < CH; c++) {
        if (t == 0) {
            jb->grads[3 * l + 1][c] = (float)sdx[c];
            jb->grads[3 * l + 2][c] = (float)sd[c];
        }
        k[c] = gamma[c] * invstd[c];
        mb[c] = (float)(sd[c] / (double)m);
        mg[c] = (float)(sdx[c] / (double)m);
    }
    vf kv[NV], mbv[NV], mgv[NV];
    for (int j = 0; j < NV; j++) {
        kv[j] = ld(k + j * VW);
        mbv[j] = ld(mb + j * VW);
        mgv[j] = ld(mg + j * VW);
    }
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < NV; j++) {
            vf dy = relu_mask(ld(da + r * CH + j * VW), ld(a + r * CH + j * VW));
            st(da + r * CH + j * VW, kv[j] * (dy - mbv[j] - ld(xhat + r * CH + j * VW) * mgv[j]));
        }
}

/* The input zero-padded to [N][HP][WP] (HP = (H - 1) SH + KH, WP = (W - 1) SW + KW: every tap reads inside it). */
static void pad_input(const Geo *s, long n0, long n1, const float *restrict x, float *restrict xp)
{
    const long hp = (s->h - 1) * s->sh + s->kh, wp = (s->w - 1) * s->sw + s->kw;
    for (long n = n0; n < n1; n++)
        for (long i = 0; i < hp; i++)
            for (long j = 0; j < wp; j++) {
                long ih = i - s->ph, iw = j - s->pw;
                xp[(n * hp + i) * wp + j] = ih >= 0 && ih < s->hin && iw >= 0 && iw < s->win ?
                    x[(n * s->hin + ih) * s->win + iw] : 0.0f;
            }
}

/* `cols` (a constant where inlined: 4, or 1 for the rest) adjacent output columns of the stem from the padded
 * input rows at xrow (row stride wp), each with its own accumulator. */
static inline __attribute__((always_inline)) void stem_cols(const Geo *s, const float *restrict xrow, long wp,
                                                           const float *restrict wt, float *restrict out, const int cols)
{
    vf acc[4][NV];
    memset(acc, 0, sizeof acc);
    for (long kh = 0; kh < s->kh; kh++)
        for (long kw = 0; kw < s->kw; kw++) {
            const float *w = wt + (kh * s->kw + kw) * CH;
            for (int b = 0; b < cols; b++) {
                float xv = xrow[kh * wp + b * s->sw + kw];
                for (int j = 0; j < NV; j++) acc[b][j] += xv * ld(w + j * VW);
            }
        }
    for (int b = 0; b < cols; b++)
        for (int j = 0; j < NV; j++) st(out + b * CH + j * VW, acc[b][j]);
}

/* The stem conv on the padded input (samples [n0, n1)), four output columns at a time. */
static void stem_forward(const Geo *s, long n0, long n1, const float *restrict xp, const float *restrict wt,
                         float *restrict z)
{
    const long hp = (s->h - 1) * s->sh + s->kh, wp = (s->w - 1) * s->sw + s->kw;
    for (long n = n0; n < n1; n++)
        for (long oh = 0; oh < s->h; oh++) {
            const float *xrow = xp + (n * hp + oh * s->sh) * wp;
            float *out = z + (n * s->h + oh) * s->w * CH;
            long ow = 0;
            for (; ow + 4 <= s->w; ow += 4) stem_cols(s, xrow + ow * s->sw, wp, wt, out + ow * CH, 4);
            for (; ow < s->w; ow++) stem_cols(s, xrow + ow * s->sw, wp, wt, out + ow * CH, 1);
        }
}

/* The stem's weight gradient over samples [n0, n1) into dw_t [KH*KW][CH]: position by position. */
static void stem_backward(const Geo *s, long n0, long n1, const float *restrict xp, const float *restrict dz,
                          float *restrict dw_t)
{
    const long hp = (s->h - 1) * s->sh + s->kh, wp = (s->w - 1) * s->sw + s->kw, taps = s->kh * s->kw;
    memset(dw_t, 0, sizeof(float) * taps * CH);
    for (long n = n0; n < n1; n++)
        for (long oh = 0; oh < s->h; oh++)
            for (long ow = 0; ow < s->w; ow++) {
                vf d[NV];
                for (int j = 0; j < NV; j++) d[j] = ld(dz + ((n * s->h + oh) * s->w + ow) * CH + j * VW);
                for (long kh = 0; kh < s->kh; kh++) {
                    const float *row = xp + (n * hp + oh * s->sh + kh) * wp + ow * s->sw;
                    for (long kw = 0; kw < s->kw; kw++) {
                        float *w = dw_t + (kh * s->kw + kw) * CH;
                        for (int j = 0; j < NV; j++) st(w + j * VW, ld(w + j * VW) + row[kw] * d[j]);
                    }
                }
            }
}

/* Depthwise 3x3, padding 1, stride 1, samples [n0, n1); wt is [9][CH] (tap-major). */
static void dw_forward(const Geo *s, long n0, long n1, const float *restrict a, const float *restrict wt,
                       float *restrict z)
{
    vf k[9][NV];
    for (int t = 0; t < 9; t++)
        for (int j = 0; j < NV; j++) k[t][j] = ld(wt + t * CH + j * VW);
    for (long n = n0; n < n1; n++)
        for (long h = 0; h < s->h; h++)
            for (long w = 0; w < s->w; w++) {
                vf acc[NV] = {0};
                for (long kh = 0; kh < 3; kh++) {
                    long hh = h + kh - 1;
                    if (hh < 0 || hh >= s->h) continue;
                    for (long kw = 0; kw < 3; kw++) {
                        long ww = w + kw - 1;
                        if (ww < 0 || ww >= s->w) continue;
                        const float *in = a + ((n * s->h + hh) * s->w + ww) * CH;
                        for (int j = 0; j < NV; j++) acc[j] += ld(in + j * VW) * k[kh * 3 + kw][j];
                    }
                }
                float *out = z + ((n * s->h + h) * s->w + w) * CH;
                for (int j = 0; j < NV; j++) st(out + j * VW, acc[j]);
            }
}

/* Depthwise backward over samples [n0, n1): the input's gradient (the same taps, mirrored) and the weights'
 * ([9][CH]). */
static void dw_backward(const Geo *s, long n0, long n1, const float *restrict a, const float *restrict dz,
                        const float *restrict wt, float *restrict da, float *restrict dw_t)
{
    vf k[9][NV], acc_w[9][NV];
    for (int t = 0; t < 9; t++)
        for (int j = 0; j < NV; j++) {
            k[t][j] = ld(wt + t * CH + j * VW);
            acc_w[t][j] = (vf){0};
        }
    for (long n = n0; n < n1; n++)
        for (long h = 0; h < s->h; h++)
            for (long w = 0; w < s->w; w++) {
                vf acc[NV] = {0}, in[NV];
                for (int j = 0; j < NV; j++) in[j] = ld(a + ((n * s->h + h) * s->w + w) * CH + j * VW);
                for (long kh = 0; kh < 3; kh++) {
                    long hh = h - kh + 1;                 /* the output row that read (h, w) through tap kh */
                    if (hh < 0 || hh >= s->h) continue;
                    for (long kw = 0; kw < 3; kw++) {
                        long ww = w - kw + 1;
                        if (ww < 0 || ww >= s->w) continue;
                        const float *d = dz + ((n * s->h + hh) * s->w + ww) * CH;
                        for (int j = 0; j < NV; j++) {
                            vf dv = ld(d + j * VW);
                            acc[j] += dv * k[kh * 3 + kw][j];
                            acc_w[kh * 3 + kw][j] += dv * in[j];
                        }
                    }
                }
                float *out = da + ((n * s->h + h) * s->w + w) * CH;
                for (int j = 0; j < NV; j++) st(out + j * VW, acc[j]);
            }
    for (int t = 0; t < 9; t++)
        for (int j = 0; j < NV; j++) st(dw_t + t * CH + j * VW, acc_w[t][j]);
}

/* `nb` rows (a constant where inlined: 4, or 1 for the rest) of the pointwise conv, each its own accumulator. */
static inline __attribute__((always_inline)) void pw_rows(const float *restrict a, vf wv[CH][NV], float *restrict z,
                                                         const int nb)
{
    vf acc[4][NV];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < CH; i++)
        for (int b = 0; b < nb; b++) {
            float v = a[b * CH + i];
            for (int j = 0; j < NV; j++) acc[b][j] += v * wv[i][j];
        }
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < NV; j++) st(z + b * CH + j * VW, acc[b][j]);
}

/* Pointwise 1x1: z[r][o] = sum_i a[r][i] w[o][i]; wt is [i][o]. Four rows at a time. */
static void pw_forward(long rows, const float *restrict a, const float *restrict wt, float *restrict z)
{
    vf wv[CH][NV];
    for (int i = 0; i < CH; i++)
        for (int j = 0; j < NV; j++) wv[i][j] = ld(wt + i * CH + j * VW);
    long r = 0;
    for (; r + 4 <= rows; r += 4) pw_rows(a + r * CH, wv, z + r * CH, 4);
    for (; r < rows; r++) pw_rows(a + r * CH, wv, z + r * CH, 1);
}

/* Pointwise backward: da[r][i] = sum_o dz[r][o] w[o][i]; dw[o][i] = sum_r dz[r][o] a[r][i] (torch's layout). */
static void pw_backward(long rows, const float *restrict a, const float *restrict dz, const float *restrict w,
                        float *restrict da, float *restrict dw)
{
    vf wv[CH][NV], acc_w[CH][NV];
    for (int o = 0; o < CH; o++)
        for (int j = 0; j < NV; j++) {
            wv[o][j] = ld(w + o * CH + j * VW);
            acc_w[o][j] = (vf){0};
        }
    for (long r = 0; r < rows; r++) {
        vf acc[NV] = {0}, in[NV];
        for (int j = 0; j < NV; j++) in[j] = ld(a + r * CH + j * VW);
        for (int o = 0; o < CH; o++) {
            float d = dz[r * CH + o];
            for (int j = 0; j < NV; j++) {
                acc[j] += d * wv[o][j];
                acc_w[o][j] += d * in[j];
            }
        }
        for (int j = 0; j < NV; j++) st(da + r * CH + j * VW, acc[j]);
    }
    for (int o = 0; o < CH; o++)
        for (int j = 0; j < NV; j++) st(dw + o * CH + j * VW, acc_w[o][j]);
}


/* The forward conv of layer l (1..L-1) over samples [n0, n1). */
static void conv_forward(const Job *j, long l, long n0, long n1)
{
    const Geo *s = &j->s;
    const float *w = j->params[3 * l], *in = j->act + (l - 1) * s->npc;
    float *z = j->xhat + l * s->npc;
    float wt[CH * CH > 9 * CH ? CH * CH : 9 * CH];             /* dw [9][CH] or pw [CH_in][CH_out] */
    if (l % 2 == 1) {                                         /* depthwise */
        for (int k = 0; k < 9; k++)
            for (int c = 0; c < CH; c++) wt[k * CH + c] = w[c * 9 + k];
        dw_forward(s, n0, n1, in, wt, z);
    } else {                                                  /* pointwise */
        for (int i = 0; i < CH; i++)
            for (int o = 0; o < CH; o++) wt[i * CH + o] = w[o * CH + i];
        pw_forward((n1 - n0) * s->p, in + n0 * s->p * CH, wt, z + n0 * s->p * CH);
    }
}

/* Pooling, classifier, loss (into j->loss[t]) and the classifier's backward over samples [n0, n1): its weight
 * gradients (slot 0: the gradients; others: their partials at fc) and the gradient at the last activation (ga). */
static void head(Job *j, int t, long n0, long n1, float *fc)
{
    const Geo *s = &j->s;
    const long L = s->layers, K = s->classes;
    const float smooth = j->smooth, *last = j->act + (L - 1) * s->npc, *fw = j->params[3 * L];
    const float *fb = j->params[3 * L + 1];
    float *pooled = j->pooled, *prob = j->prob;
    float *gfw = fc ? fc : j->grads[3 * L], *gfb = fc ? fc + K * CH : j->grads[3 * L + 1];
    double loss = 0.0;
    for (long n = n0; n < n1; n++) {
        double pool_[CH] = {0};
        for (long p = 0; p < s->p; p++)
            for (int c = 0; c < CH; c++) pool_[c] += last[(n * s->p + p) * CH + c];
        for (int c = 0; c < CH; c++) pooled[n * CH + c] = (float)(pool_[c] / (double)s->p);
        double mx = -INFINITY, z = 0.0, lg[K];
        for (long k = 0; k < K; k++) {
            double v = fb[k];
            for (int c = 0; c < CH; c++) v += (double)fw[k * CH + c] * pooled[n * CH + c];
            lg[k] = v;
            mx = v > mx ? v : mx;
        }
        for (long k = 0; k < K; k++) z += exp(lg[k] - mx);
        double lse = mx + log(z), sum_logp = 0.0;
        for (long k = 0; k < K; k++) {
            prob[n * K + k] = (float)exp(lg[k] - lse);
            sum_logp += lg[k] - lse;
        }
        loss += -(1.0 - smooth) * (lg[j->y[n]] - lse) - smooth / (double)K * sum_logp;
    }
    j->loss[t] = loss;
    memset(gfw, 0, sizeof(float) * K * CH);
    memset(gfb, 0, sizeof(float) * K);
    for (long n = n0; n < n1; n++) {
        float dp[CH] = {0};
        for (long k = 0; k < K; k++) {
            float q = (float)(smooth / (double)K) + (k == j->y[n] ? (float)(1.0 - smooth) : 0.0f);
            float d = (prob[n * K + k] - q) / (float)s->n;
            gfb[k] += d;
            for (int c = 0; c < CH; c++) {
                gfw[k * CH + c] += d * pooled[n * CH + c];
                dp[c] += d * fw[k * CH + c];
            }
        }
        for (int c = 0; c < CH; c++) dp[c] /= (float)s->p;
        for (long p = 0; p < s->p; p++) memcpy(j->ga + (n * s->p + p) * CH, dp, sizeof dp);
    }
}

/* The backward conv of layer l over samples [n0, n1): the gradient at its input (into gin; none for the stem) and
 * its weights' (slot 0: the gradients; others: their partials at pl, [taps][CH] / [CH_out][CH_in]). */
static void conv_backward(const Job *j, long l, long n0, long n1, const float *gout, float *gin, float *pl)
{
    const Geo *s = &j->s;
    const float *w = j->params[3 * l];
    if (l == 0) {                          /* the transposed stem weights are no longer read: slot 0's sum */
        stem_backward(s, n0, n1, j->xp, gout, pl ? pl : j->tw);
        for (long k = 0; !pl && k < s->kh * s->kw; k++)
            for (int c = 0; c < CH; c++) j->grads[0][c * s->kh * s->kw + k] = j->tw[k * CH + c];
    } else if (l % 2 == 1) {
        float wt[9 * CH], dwt[9 * CH];
        for (int k = 0; k < 9; k++)
            for (int c = 0; c < CH; c++) wt[k * CH + c] = w[c * 9 + k];
        dw_backward(s, n0, n1, j->act + (l - 1) * s->npc, gout, wt, gin, pl ? pl : dwt);
        for (int k = 0; !pl && k < 9; k++)
            for (int c = 0; c < CH; c++) j->grads[3 * l][c * 9 + k] = dwt[k * CH + c];
    } else {
        const long r0 = n0 * s->p * CH;
        pw_backward((n1 - n0) * s->p, j->act + (l - 1) * s->npc + r0, gout + r0, w, gin + r0,
                    pl ? pl + 9 * CH : j->grads[3 * l]);
    }
}

/* Phases of a step with L layers: 0: stem + its sum; layer l: 2l + 1 (variance), 2l + 2 (normalize, then the next
 * layer's conv and sum, or after the last layer the head and its backward sums); then the backward of layer
 * L - 1 - i as phase 2L + 1 + i (BatchNorm backward, conv backward, the next layer's backward sums). */
static long phases(const Geo *s) { return 3 * s->layers + 1; }

/* Phase p of slot t: samples [N t / T, N (t + 1) / T). Slot 0 writes the weight gradients themselves, the others
 * their partials in j->part (dscnn_train_step adds those in slot order). */
static void segment(Job *j, int t, long p)
{
    const Geo *s = &j->s;
    const long L = s->layers, n0 = s->n * t / j->threads, n1 = s->n * (t + 1) / j->threads;
    const long rows = (n1 - n0) * s->p, r0 = n0 * s->p * CH;
    float *part = t == 0 ? NULL : j->part + (t - 1) * grad_floats(s);   /* stem, blocks, classifier */
    if (p == 0) {
        pad_input(s, n0, n1, j->x, j->xp);
        stem_forward(s, n0, n1, j->xp, j->tw, j->xhat);
        bn_sum(j, t, p, j->xhat + r0, rows);
    } else if (p <= 2 * L) {
        const long l = (p - 1) / 2;
        float *z = j->xhat + l * s->npc + r0, *a = j->act + l * s->npc + r0;
        if (p % 2 == 1) {
            bn_var(j, t, p, l, z, rows);
        } else {
            bn_norm(j, t, p, l, z, a, rows);
            if (l + 1 < L) {
                conv_forward(j, l + 1, n0, n1);
                bn_sum(j, t, p, j->xhat + (l + 1) * s->npc + r0, rows);
            } else {
                head(j, t, n0, n1, part ? part + grad_floats(s) - s->classes * (CH + 1) : NULL);
                bn_back_sums(j, t, p, j->ga + r0, a, z, rows);
            }
        }
    } else {
        const long l = L - 1 - (p - 2 * L - 1);
        float *gout = (L - 1 - l) % 2 == 0 ? j->ga : j->gb, *gin = gout == j->ga ? j->gb : j->ga;
        float *pl = part ? part + s->kh * s->kw * CH + (l - 1) / 2 * (9 * CH + CH * CH) : NULL;   /* block */
        bn_back(j, t, p, l, gout + r0, j->act + l * s->npc + r0, j->xhat + l * s->npc + r0, rows);
        conv_backward(j, l, n0, n1, gout, gin, l == 0 ? part : pl);
        if (l > 0)
            bn_back_sums(j, t, p, gin + r0, j->act + (l - 1) * s->npc + r0, j->xhat + (l - 1) * s->npc + r0, rows);
    }
}


/* The gradients = slot 0's + the partials of slots 1..T-1, in that order (torch's layouts from the partials'). */
static void add_partials(const Job *job)
{
    const Geo *s = &job->s;
    const long taps = s->kh * s->kw, K = s->classes, L = s->layers;
    for (int t = 1; t < job->threads; t++) {
        const float *part = job->part + (t - 1) * grad_floats(s);
        for (long k = 0; k < taps; k++)
            for (int c = 0; c < CH; c++) job->grads[0][c * taps + k] += part[k * CH + c];
        part += taps * CH;
        for (long l = 1; l < L; l += 2, part += 9 * CH + CH * CH) {
            for (int k = 0; k < 9; k++)
                for (int c = 0; c < CH; c++) job->grads[3 * l][c * 9 + k] += part[k * CH + c];
            for (int i = 0; i < CH * CH; i++) job->grads[3 * (l + 1)][i] += part[9 * CH + i];
        }
        for (long i = 0; i < K * CH; i++) job->grads[3 * L][i] += part[i];
        for (long k = 0; k < K; k++) job->grads[3 * L + 1][k] += part[K * CH + k];
    }
}


/* params (torch's tensors, contiguous): stem.w [CH,1,KH,KW], stem.gamma, stem.beta, then per block dw.w [CH,1,3,3],
 * gamma, beta, pw.w [CH,CH,1,1], gamma, beta; then fc.w [classes, CH], fc.b [classes]. grads: the same list.
 * stats: per BatchNorm running_mean, running_var; tracked: per BatchNorm num_batches_tracked. y: int64 labels.
 * fgeo: momentum, eps, label smoothing. threads: as dscnn_threads_ready returned; work: dscnn_work_floats(g,
 * threads) floats. Returns the batch's mean loss. */
float dscnn_train_step(const int32_t *g, const float *fgeo, float *const *params, float *const *grads,
                       float *const *stats, int64_t *const *tracked, const float *x, const int64_t *y, float *work,
                       int32_t threads)
{
    Job job;
    Geo s = geometry(g);
    const long L = s.layers, K = s.classes;
    job.s = s;
    job.momentum = fgeo[0], job.eps = fgeo[1], job.smooth = fgeo[2];
    job.params = params, job.grads = grads, job.stats = stats, job.tracked = tracked, job.x = x, job.y = y;
    job.xhat = work, job.act = job.xhat + L * s.npc, job.ga = job.act + L * s.npc, job.gb = job.ga + s.npc;
    job.pooled = job.gb + s.npc, job.prob = job.pooled + s.n * CH, job.mean = job.prob + s.n * K;
    job.invstd = job.mean + L * CH;
    job.tw = job.invstd + L * CH;                            /* transposed weights: stem [KH*KW][CH] */
    job.xp = job.tw + s.kh * s.kw * CH;                      /* the input, zero-padded */
    job.part = job.xp + s.n * ((s.h - 1) * s.sh + s.kh) * ((s.w - 1) * s.sw + s.kw);
    job.threads = threads < 1 ? 1 : threads > MAXT ? MAXT : threads;
    const float *sw = params[0];
    for (long k = 0; k < s.kh * s.kw; k++)
        for (int c = 0; c < CH; c++) job.tw[k * CH + c] = sw[c * s.kh * s.kw + k];
    if (job.threads == 1) {
        for (long p = 0; p < phases(&s); p++) segment(&job, 0, p);
    } else {
        pthread_once(&pool_once, pool_init);
        pthread_mutex_lock(&pool.step);
        const int ready = pool_ready(job.threads);
        job.threads = ready < job.threads ? ready : job.threads;
        const unsigned gen = pool.gen + 1;
        pool.job = &job;
        __atomic_store_n(&pool.threads, job.threads, __ATOMIC_RELAXED);
        __atomic_store_n(&pool.phases, phases(&s), __ATOMIC_RELAXED);
        __atomic_store_n(&pool.done, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pool.claim, ticket(gen, 0), __ATOMIC_RELEASE);
        __atomic_store_n(&pool.gen, gen, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&pool.sleepers, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_broadcast(&pool.wake);
            pthread_mutex_unlock(&pool.lock);
        }
        execute(gen, 0);
        add_partials(&job);
        pthread_mutex_unlock(&pool.step);
    }
    double loss = job.loss[0];
    for (int t = 1; t < job.threads; t++) loss += job.loss[t];
    return (float)(loss / (double)s.n);
}


/* torch.optim.AdamW's update (amsgrad off), over `count` tensors in one call: step += 1; p *= 1 - lr wd;
 * m += (1 - b1)(g - m); v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^step) m / (sqrt(v) / sqrt(1 - b2^step) + eps).
 * h: lr, beta1, beta2, eps, weight decay. The state tensors are the torch optimizer's own (its state_dict). */
void adamw_step(int32_t count, const int64_t *sizes, float *const *params, float *const *grads, float *const *m,
                float *const *v, float *const *steps, const double *h)
{
    const double lr = h[0], b1 = h[1], b2 = h[2], eps = h[3], wd = h[4];
    for (int32_t t = 0; t < count; t++) {
        float *restrict p = params[t], *restrict mt = m[t], *restrict vt = v[t];
        const float *restrict g = grads[t];
        double step = (double)(*steps[t] += 1.0f);
        const float decay = (float)(1.0 - lr * wd), a1 = (float)(1.0 - b1), fb2 = (float)b2, a2 = (float)(1.0 - b2);
        const float step_size = (float)(lr / (1.0 - pow(b1, step)));
        const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, step)), feps = (float)eps;
        for (int64_t i = 0; i < sizes[t]; i++) {
            p[i] *= decay;
            mt[i] += a1 * (g[i] - mt[i]);
            vt[i] = fb2 * vt[i] + a2 * g[i] * g[i];
            p[i] -= step_size * mt[i] / (sqrtf(vt[i]) / bc2_sqrt + feps);
        }
    }
}
