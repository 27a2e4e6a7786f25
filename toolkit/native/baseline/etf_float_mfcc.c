/* edgetk: straightforward float MFCC (see etf_float_mfcc.h). */
#include "etf_float_mfcc.h"

#include <math.h>

static void frame_mfcc(const etf_float_mfcc_params *p, const int16_t *x, float *out, float *work)
{
    int32_t n = p->n_fft / 2, i, k, s, j;
    float *z = work, *power = work + p->n_fft, *mel = power + n + 1;
    const float *w;
    for (i = 0; i < n; i++) { /* complex z[m] = v[2m] + i v[2m+1], stored bit-reversed */
        int32_t r = p->bitrev[i];
        z[2 * r] = 2 * i < p->frame_len ? x[2 * i] * (1.0f / 32768.0f) * p->window[2 * i] : 0.0f;
        z[2 * r + 1] = 2 * i + 1 < p->frame_len ? x[2 * i + 1] * (1.0f / 32768.0f) * p->window[2 * i + 1] : 0.0f;
    }
    for (s = 2; s <= n; s <<= 1) { /* radix-2 DIT */
        int32_t half = s >> 1, step = n / s;
        for (k = 0; k < n; k += s) {
            for (j = 0; j < half; j++) {
                float wr = p->tw[2 * j * step], wi = p->tw[2 * j * step + 1];
                float *a = z + 2 * (k + j), *b = a + 2 * half;
                float tr = b[0] * wr - b[1] * wi, ti = b[0] * wi + b[1] * wr;
                b[0] = a[0] - tr;
                b[1] = a[1] - ti;
                a[0] += tr;
                a[1] += ti;
            }
        }
    }
    for (k = 0; k <= n; k++) { /* X[k] = (Z[k] + Z*[N-k]) / 2 - i W^k (Z[k] - Z*[N-k]) / 2 */
        const float *a = z + 2 * (k % n), *b = z + 2 * ((n - k) % n), *w = p->split_tw + 2 * k;
        float sr = 0.5f * (a[0] + b[0]), si = 0.5f * (a[1] - b[1]), dr = 0.5f * (a[0] - b[0]), di = 0.5f * (a[1] + b[1]);
        float xr = sr + di * w[0] + dr * w[1], xi = si + di * w[1] - dr * w[0];
        power[k] = xr * xr + xi * xi;
    }
    for (i = 0, w = p->fb_w; i < p->n_mels; w += p->fb_len[i], i++) {
        const float *pw = power + p->fb_start[i];
        float acc = 0.0f;
        for (j = 0; j < p->fb_len[i]; j++) {
            acc += w[j] * pw[j];
        }
        mel[i] = logf(acc + p->log_floor);
    }
    for (k = 0; k < p->n_mfcc; k++) {
        float acc = 0.0f;
        for (i = 0; i < p->n_mels; i++) {
            acc += p->dct[k * p->n_mels + i] * mel[i];
        }
        out[k] = acc;
    }
}

void etf_float_mfcc(const etf_float_mfcc_params *p, const int16_t *pcm, float *out, float *work)
{
    int32_t t;
    for (t = 0; t < p->n_frames; t++) {
        frame_mfcc(p, pcm + t * p->hop, out + t * p->n_mfcc, work);
    }
}
