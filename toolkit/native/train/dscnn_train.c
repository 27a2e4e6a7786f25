/* One training step of edgetk's DS-CNN (toolkit/nn/dscnn.py) in one call: forward in training mode (BatchNorm on
 * the batch's statistics, running statistics updated as torch does), softmax cross-entropy (label smoothing), and
 * the backward pass into every parameter's gradient, in torch's layouts. The optimizer step stays torch's.
 *
 * Why: the DS-CNN's training step in eager torch is ~100 kernel calls, each a pass over a [N, C, 25, 5]
 * activation; here a layer is one or two passes over channels-last rows of CH floats (one vector register at
 * CH = 16), with no allocation. Deterministic: fixed loop order, one thread.
 *
 * Network (geo[] below): stem Conv(1 -> CH, KH x KW, stride SH x SW, padding PH x PW, no bias) + BN + ReLU, then
 * `blocks` x [depthwise 3x3 (padding 1) + BN + ReLU, pointwise 1x1 + BN + ReLU], global average pool, Linear(CH ->
 * classes). Activations are channels-last [N, H, W, CH]; the input is [N, 1, H_in, W_in]. CH is fixed at compile
 * time (-DCH=16) so the channel loops vectorize. */
#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* Floats of workspace a step needs: per layer its normalized conv output and its activation, two gradient
 * buffers, pooled features, probabilities, per-layer mean and 1/std, transposed stem weights, padded input. */
long dscnn_work_floats(const int32_t *g)
{
    Geo s = geometry(g);
    return 2 * s.layers * s.npc + 2 * s.npc + s.n * CH + s.n * s.classes + 2 * s.layers * CH + s.kh * s.kw * CH +
           s.n * ((s.h - 1) * s.sh + s.kh) * ((s.w - 1) * s.sw + s.kw);
}

int dscnn_channels(void) { return CH; }

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

/* BatchNorm (batch statistics) + ReLU over M rows of CH: z becomes x_hat, a = max(0, gamma x_hat + beta). */
static void bn_relu_forward(float *restrict z, float *restrict a, const float *restrict gamma,
                            const float *restrict beta, float *restrict rmean, float *restrict rvar,
                            int64_t *tracked, float *restrict mean_out, float *restrict invstd_out, long m,
                            float momentum, float eps)
{
    double s[CH] = {0}, v[CH] = {0};
    vf mu[NV], is[NV], g[NV], b[NV];
    ROW_SUM(s, m, ld(z + r * CH + j * VW));
    for (int c = 0; c < CH; c++) mean_out[c] = (float)(s[c] / (double)m);
    for (int j = 0; j < NV; j++) mu[j] = ld(mean_out + j * VW);
    ROW_SUM(v, m, (ld(z + r * CH + j * VW) - mu[j]) * (ld(z + r * CH + j * VW) - mu[j]));
    for (int c = 0; c < CH; c++) {
        invstd_out[c] = (float)(1.0 / sqrt(v[c] / (double)m + eps));
        rmean[c] = (1.0f - momentum) * rmean[c] + momentum * mean_out[c];
        rvar[c] = (1.0f - momentum) * rvar[c] + momentum * (float)(v[c] / (double)(m > 1 ? m - 1 : 1));
    }
    *tracked += 1;
    for (int j = 0; j < NV; j++) {
        is[j] = ld(invstd_out + j * VW);
        g[j] = ld(gamma + j * VW);
        b[j] = ld(beta + j * VW);
    }
    for (long r = 0; r < m; r++)
        for (int j = 0; j < NV; j++) {
            vf xh = (ld(z + r * CH + j * VW) - mu[j]) * is[j];
            vf y = g[j] * xh + b[j];
            st(z + r * CH + j * VW, xh);
            st(a + r * CH + j * VW, relu_mask(y, y));
        }
}

/* ReLU + BatchNorm backward, in place: da (the gradient at the ReLU's output) becomes the gradient at the conv's
 * output; the affine parameters' gradients go to dgamma, dbeta. */
static void bn_relu_backward(float *restrict da, const float *restrict a, const float *restrict xhat,
                             const float *restrict gamma, const float *restrict invstd, float *restrict dgamma,
                             float *restrict dbeta, long m)
{
    double sd[CH] = {0}, sdx[CH] = {0};
    ROW_SUM(sd, m, relu_mask(ld(da + r * CH + j * VW), ld(a + r * CH + j * VW)));
    ROW_SUM(sdx, m, relu_mask(ld(da + r * CH + j * VW), ld(a + r * CH + j * VW)) * ld(xhat + r * CH + j * VW));
    float k[CH], mb[CH], mg[CH];
    for (int c = 0; c < CH; c++) {
        dgamma[c] = (float)sdx[c];
        dbeta[c] = (float)sd[c];
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
    for (long r = 0; r < m; r++)
        for (int j = 0; j < NV; j++) {
            vf dy = relu_mask(ld(da + r * CH + j * VW), ld(a + r * CH + j * VW));
            st(da + r * CH + j * VW, kv[j] * (dy - mbv[j] - ld(xhat + r * CH + j * VW) * mgv[j]));
        }
}

/* The input zero-padded to [N][HP][WP] (HP = (H - 1) SH + KH, WP = (W - 1) SW + KW: every tap reads inside it). */
static void pad_input(const Geo *s, const float *restrict x, float *restrict xp)
{
    const long hp = (s->h - 1) * s->sh + s->kh, wp = (s->w - 1) * s->sw + s->kw;
    for (long n = 0; n < s->n; n++)
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

/* The stem conv on the padded input, four output columns at a time. */
static void stem_forward(const Geo *s, const float *restrict xp, const float *restrict wt, float *restrict z)
{
    const long hp = (s->h - 1) * s->sh + s->kh, wp = (s->w - 1) * s->sw + s->kw;
    for (long n = 0; n < s->n; n++)
        for (long oh = 0; oh < s->h; oh++) {
            const float *xrow = xp + (n * hp + oh * s->sh) * wp;
            float *out = z + (n * s->h + oh) * s->w * CH;
            long ow = 0;
            for (; ow + 4 <= s->w; ow += 4) stem_cols(s, xrow + ow * s->sw, wp, wt, out + ow * CH, 4);
            for (; ow < s->w; ow++) stem_cols(s, xrow + ow * s->sw, wp, wt, out + ow * CH, 1);
        }
}

/* The stem's weight gradient into dw_t [KH*KW][CH]: position by position, every tap its own accumulator. */
static void stem_backward(const Geo *s, const float *restrict xp, const float *restrict dz, float *restrict dw_t)
{
    const long hp = (s->h - 1) * s->sh + s->kh, wp = (s->w - 1) * s->sw + s->kw, taps = s->kh * s->kw;
    memset(dw_t, 0, sizeof(float) * taps * CH);
    for (long n = 0; n < s->n; n++)
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

/* Depthwise 3x3, padding 1, stride 1; wt is [9][CH] (tap-major). */
static void dw_forward(const Geo *s, const float *restrict a, const float *restrict wt, float *restrict z)
{
    vf k[9][NV];
    for (int t = 0; t < 9; t++)
        for (int j = 0; j < NV; j++) k[t][j] = ld(wt + t * CH + j * VW);
    for (long n = 0; n < s->n; n++)
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

/* Depthwise backward: the input's gradient (the same taps, mirrored) and the weights' ([9][CH]). */
static void dw_backward(const Geo *s, const float *restrict a, const float *restrict dz, const float *restrict wt,
                        float *restrict da, float *restrict dw_t)
{
    vf k[9][NV], acc_w[9][NV];
    for (int t = 0; t < 9; t++)
        for (int j = 0; j < NV; j++) {
            k[t][j] = ld(wt + t * CH + j * VW);
            acc_w[t][j] = (vf){0};
        }
    for (long n = 0; n < s->n; n++)
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

/* params (torch's tensors, contiguous): stem.w [CH,1,KH,KW], stem.gamma, stem.beta, then per block dw.w [CH,1,3,3],
 * gamma, beta, pw.w [CH,CH,1,1], gamma, beta; then fc.w [classes, CH], fc.b [classes]. grads: the same list.
 * stats: per BatchNorm running_mean, running_var; tracked: per BatchNorm num_batches_tracked. y: int64 labels.
 * fgeo: momentum, eps, label smoothing. Returns the batch's mean loss. */
float dscnn_train_step(const int32_t *g, const float *fgeo, float *const *params, float *const *grads,
                       float *const *stats, int64_t *const *tracked, const float *x, const int64_t *y, float *work)
{
    Geo s = geometry(g);
    const float momentum = fgeo[0], eps = fgeo[1], smooth = fgeo[2];
    const long m = s.n * s.p, L = s.layers, K = s.classes;
    float *xhat = work, *act = xhat + L * s.npc, *ga = act + L * s.npc, *gb = ga + s.npc;
    float *pooled = gb + s.npc, *prob = pooled + s.n * CH, *mean = prob + s.n * K, *invstd = mean + L * CH;
    float *tw = invstd + L * CH;                              /* transposed weights: stem [KH*KW][CH] */
    float *xp = tw + s.kh * s.kw * CH;                        /* the input, zero-padded */
    float wt[CH * CH > 9 * CH ? CH * CH : 9 * CH];             /* per layer: dw [9][CH] or pw [CH_in][CH_out] */

    /* forward */
    const float *sw = params[0];
    for (long k = 0; k < s.kh * s.kw; k++)
        for (int c = 0; c < CH; c++) tw[k * CH + c] = sw[c * s.kh * s.kw + k];
    pad_input(&s, x, xp);
    stem_forward(&s, xp, tw, xhat);
    bn_relu_forward(xhat, act, params[1], params[2], stats[0], stats[1], tracked[0], mean, invstd, m, momentum, eps);
    for (long l = 1; l < L; l++) {
        const float *w = params[3 * l];
        float *in = act + (l - 1) * s.npc, *z = xhat + l * s.npc;
        if (l % 2 == 1) {                                     /* depthwise */
            for (int k = 0; k < 9; k++)
                for (int c = 0; c < CH; c++) wt[k * CH + c] = w[c * 9 + k];
            dw_forward(&s, in, wt, z);
        } else {                                              /* pointwise */
            for (int i = 0; i < CH; i++)
                for (int o = 0; o < CH; o++) wt[i * CH + o] = w[o * CH + i];
            pw_forward(m, in, wt, z);
        }
        bn_relu_forward(z, act + l * s.npc, params[3 * l + 1], params[3 * l + 2], stats[2 * l], stats[2 * l + 1],
                        tracked[l], mean + l * CH, invstd + l * CH, m, momentum, eps);
    }
    const float *last = act + (L - 1) * s.npc, *fw = params[3 * L], *fb = params[3 * L + 1];
    double loss = 0.0;
    for (long n = 0; n < s.n; n++) {
        double pool[CH] = {0};
        for (long p = 0; p < s.p; p++)
            for (int c = 0; c < CH; c++) pool[c] += last[(n * s.p + p) * CH + c];
        for (int c = 0; c < CH; c++) pooled[n * CH + c] = (float)(pool[c] / (double)s.p);
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
        loss += -(1.0 - smooth) * (lg[y[n]] - lse) - smooth / (double)K * sum_logp;
    }

    /* backward: classifier */
    float *gfw = grads[3 * L], *gfb = grads[3 * L + 1];
    memset(gfw, 0, sizeof(float) * K * CH);
    memset(gfb, 0, sizeof(float) * K);
    for (long n = 0; n < s.n; n++) {
        float dp[CH] = {0};
        for (long k = 0; k < K; k++) {
            float q = (float)(smooth / (double)K) + (k == y[n] ? (float)(1.0 - smooth) : 0.0f);
            float d = (prob[n * K + k] - q) / (float)s.n;
            gfb[k] += d;
            for (int c = 0; c < CH; c++) {
                gfw[k * CH + c] += d * pooled[n * CH + c];
                dp[c] += d * fw[k * CH + c];
            }
        }
        for (int c = 0; c < CH; c++) dp[c] /= (float)s.p;
        for (long p = 0; p < s.p; p++) memcpy(ga + (n * s.p + p) * CH, dp, sizeof dp);
    }
    /* backward: layers, last to first; ga holds the gradient at the layer's activation */
    for (long l = L - 1; l >= 0; l--) {
        const float *w = params[3 * l];
        bn_relu_backward(ga, act + l * s.npc, xhat + l * s.npc, params[3 * l + 1], invstd + l * CH,
                         grads[3 * l + 1], grads[3 * l + 2], m);
        if (l == 0) {
            stem_backward(&s, xp, ga, tw);
            float *gw = grads[0];
            for (long k = 0; k < s.kh * s.kw; k++)
                for (int c = 0; c < CH; c++) gw[c * s.kh * s.kw + k] = tw[k * CH + c];
        } else if (l % 2 == 1) {
            for (int k = 0; k < 9; k++)
                for (int c = 0; c < CH; c++) wt[k * CH + c] = w[c * 9 + k];
            float dwt[9 * CH];
            dw_backward(&s, act + (l - 1) * s.npc, ga, wt, gb, dwt);
            float *gw = grads[3 * l];
            for (int k = 0; k < 9; k++)
                for (int c = 0; c < CH; c++) gw[c * 9 + k] = dwt[k * CH + c];
        } else {
            pw_backward(m, act + (l - 1) * s.npc, ga, w, gb, grads[3 * l]);
        }
        float *t = ga; ga = gb; gb = t;
    }
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
