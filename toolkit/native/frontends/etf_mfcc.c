/* edgetk frontends: fixed-point log-mel / MFCC (design and number formats: etf_mfcc.h). */
#include "etf_mfcc.h"

#include "etf_fixed.h"

/* round(65536 * log2(1 + i / 64)), i = 0..64 */
static const int32_t k_log2_tab[65] = {
    0,     1466,  2909,  4331,  5732,  7112,  8473,  9814,  11136, 12440, 13727, 14996, 16248,
    17484, 18704, 19909, 21098, 22272, 23433, 24579, 25711, 26830, 27936, 29029, 30109, 31178,
    32234, 33279, 34312, 35334, 36346, 37346, 38336, 39316, 40286, 41246, 42196, 43137, 44068,
    44990, 45904, 46809, 47705, 48593, 49472, 50344, 51207, 52063, 52911, 53751, 54584, 55410,
    56229, 57040, 57845, 58643, 59434, 60219, 60997, 61769, 62534, 63294, 64047, 64794, 65536,
};

int32_t etf_log2_q16(uint64_t y)
{
    int32_t n = etf_bitlen64(y) - 1; /* floor(log2 y), y >= 1 */
    uint32_t m, f, t;
    int32_t idx, lo;
    if (n < 0) {
        return 0;
    }
    m = n >= 31 ? (uint32_t)etf_shr64(y, n - 31) : (uint32_t)y << (31 - n); /* [2^31, 2^32) */
    f = m & 0x7FFFFFFFu;
    idx = (int32_t)(f >> 25);
    t = (f >> 9) & 0xFFFFu;
    lo = k_log2_tab[idx];
    return n * 65536 + lo + (int32_t)(((uint32_t)(k_log2_tab[idx + 1] - lo) * t) >> 16);
}

/* Step 1-2: block exponent, window, pack into the complex buffer; returns ls, sets *energy. */
static int32_t window_frame(const etf_mfcc_params *p, const int16_t *x, int32_t *z, int32_t n_complex,
                            uint64_t *energy)
{
    int32_t peak = 0, ls, n, up, down;
    uint64_t e = 0;
    for (n = 0; n < p->frame_len; n++) {
        int32_t a = x[n] < 0 ? -(int32_t)x[n] : x[n];
        peak = a > peak ? a : peak;
    }
    ls = 15 - etf_bitlen32((uint32_t)peak);
    ls = ls < 0 ? 0 : ls;
    up = ls > p->in_shift ? ls - p->in_shift : 0;
    down = ls > p->in_shift ? 0 : p->in_shift - ls;
    for (n = 0; n < p->frame_len; n++) {
        int32_t prod = (int32_t)x[n] * p->window[n]; /* |x| * 2^ls <= 2^15: |prod * 2^ls| < 2^30 */
        int32_t v = up ? prod * (1 << up) : prod >> down;
        z[n] = v;
        e += (uint64_t)((int64_t)v * v);
    }
    for (; n < 2 * n_complex; n++) {
        z[n] = 0;
    }
    *energy = e;
    return ls;
}

/* (ur + i ui) * (wr + i wi) / 4 with Q30 twiddles, one SMMULR rounding per product. */
#define CMUL_Q30(outr, outi, ur, ui, w)                                                                            \
    do {                                                                                                           \
        (outr) = etf_smmlsr(etf_smmulr((ur), (w)[0]), (ui), (w)[1]);                                              \
        (outi) = etf_smmlar(etf_smmulr((ur), (w)[1]), (ui), (w)[0]);                                              \
    } while (0)

/* Step 3: in-place DIF FFT of n complex values, every stage scaled (radix-4: 1/4, radix-2: 1/2). */
static void cfft_dif(int32_t *z, int32_t n, int32_t n_radix4, int32_t radix2, const int32_t *tw)
{
    int32_t len = n, step = 1, st, base, j;
    for (st = 0; st < n_radix4; st++) {
        int32_t q = len >> 2;
        for (base = 0; base < n; base += len) {
            for (j = 0; j < q; j++) {
                int32_t *a = z + 2 * (base + j), *b = a + 2 * q, *c = b + 2 * q, *d = c + 2 * q;
                int32_t t0r = a[0] + c[0], t0i = a[1] + c[1], t1r = a[0] - c[0], t1i = a[1] - c[1];
                int32_t t2r = b[0] + d[0], t2i = b[1] + d[1], t3r = b[0] - d[0], t3i = b[1] - d[1];
                int32_t u1r = t1r + t3i, u1i = t1i - t3r; /* t1 - i t3 */
                int32_t u2r = t0r - t2r, u2i = t0i - t2i; /* t0 - t2 */
                int32_t u3r = t1r - t3i, u3i = t1i + t3r; /* t1 + i t3 */
                a[0] = (t0r + t2r + 2) >> 2;
                a[1] = (t0i + t2i + 2) >> 2;
                if (j == 0) { /* W^0 = 1: smmulr(u, 2^30) == (u + 2) >> 2 */
                    b[0] = (u1r + 2) >> 2;
                    b[1] = (u1i + 2) >> 2;
                    c[0] = (u2r + 2) >> 2;
                    c[1] = (u2i + 2) >> 2;
                    d[0] = (u3r + 2) >> 2;
                    d[1] = (u3i + 2) >> 2;
                } else {
                    CMUL_Q30(b[0], b[1], u1r, u1i, tw + 2 * (j * step));
                    CMUL_Q30(c[0], c[1], u2r, u2i, tw + 2 * (2 * j * step));
                    CMUL_Q30(d[0], d[1], u3r, u3i, tw + 2 * (3 * j * step));
                }
            }
        }
        len = q;
        step <<= 2;
    }
    if (radix2) {
        for (j = 0; j < 2 * n; j += 4) {
            int32_t ar = z[j], ai = z[j + 1], br = z[j + 2], bi = z[j + 3];
            z[j] = (ar + br + 1) >> 1;
            z[j + 1] = (ai + bi + 1) >> 1;
            z[j + 2] = (ar - br + 1) >> 1;
            z[j + 3] = (ai - bi + 1) >> 1;
        }
    }
}

/* Step 4: power of bins [bin_lo, bin_hi) from the complex FFT of the even/odd samples. */
static void split_power(const etf_mfcc_params *p, const int32_t *z, int32_t n, int32_t s2, uint32_t *power,
                        int32_t bin_hi)
{
    int32_t k;
    for (k = p->bin_lo; k < bin_hi; k++) {
        const int32_t *a = z + 2 * p->fft_pos[k == n ? 0 : k];
        const int32_t *b = z + 2 * p->fft_pos[k == 0 ? 0 : n - k];
        const int32_t *w = p->split_tw + 2 * k;
        int32_t sr = a[0] + b[0], si = a[1] - b[1]; /* Z[k] + Z*[N-k] */
        int32_t dr = a[0] - b[0], di = a[1] + b[1]; /* Z[k] - Z*[N-k]; -i d = di - i dr */
        int32_t xr = etf_smmlar(etf_smmlar((sr + 2) >> 2, di, w[0]), dr, w[1]);
        int32_t xi = etf_smmlsr(etf_smmlar((si + 2) >> 2, di, w[1]), dr, w[0]);
        uint64_t pw = (uint64_t)((int64_t)xr * xr) + (uint64_t)((int64_t)xi * xi);
        uint64_t p32 = etf_shr64(pw, s2);
        power[k] = p32 > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)p32;
    }
}

void etf_mfcc_frame(const etf_mfcc_params *p, const int16_t *frame, int16_t *row, const etf_mfcc_scratch *s)
{
    int32_t n = 1 << (p->log2_n_fft - 1), m = p->n_mels, bin_hi = p->seg_end[m];
    int32_t ls, s2, e, j, f, k;
    uint64_t energy;
    ls = window_frame(p, frame, s->fft, n, &energy);
    cfft_dif(s->fft, n, p->n_radix4, p->radix2, p->fft_tw);
    s2 = etf_bitlen64(energy >> p->log2_n_fft) + 1 - 32;
    s2 = s2 < 0 ? 0 : s2;
    split_power(p, s->fft, n, s2, s->power, bin_hi);
    /* step 5: per-segment sums */
    k = p->bin_lo;
    for (j = 0; j <= m; j++) {
        uint64_t sum = 0, up = 0;
        for (; k < p->seg_end[j]; k++) {
            uint32_t pw = s->power[k];
            sum += pw;
            up += (uint64_t)pw * p->mel_up[k - p->bin_lo];
        }
        s->seg[2 * j] = sum;
        s->seg[2 * j + 1] = up;
    }
    /* step 6: log2 of mel + floor, in Q16 units of the float value */
    e = 2 * (30 - p->in_shift + ls - p->log2_n_fft) - s2 + 15;
    for (f = 0; f < m; f++) {
        uint64_t mel = s->seg[2 * f + 1] + (s->seg[2 * (f + 1)] << 15) - s->seg[2 * (f + 1) + 1];
        int32_t ee = e;
        if (e > p->floor_shift) {
            mel = etf_shr64(mel, e - p->floor_shift) + p->floor_q;
            ee = p->floor_shift;
        } else if (p->floor_shift - e < 64) {
            mel += etf_shr64(p->floor_q, p->floor_shift - e);
        }
        s->logs[f] = etf_log2_q16(mel ? mel : 1) - ee * 65536;
    }
    /* step 7 */
    if (p->dct) {
        for (k = 0; k < p->n_out; k++) {
            const int32_t *c = p->coef + k * m;
            int64_t acc = 0;
            for (f = 0; f < m; f++) {
                acc += (int64_t)s->logs[f] * c[f];
            }
            row[k] = etf_sat16(etf_round_shr64(acc, p->out_shift));
        }
    } else {
        for (f = 0; f < m; f++) {
            row[f] = etf_sat16(etf_round_shr64((int64_t)s->logs[f] * p->coef[0], p->out_shift));
        }
    }
}

void etf_mfcc_window(const etf_mfcc_params *p, const int16_t *pcm, int16_t *rows, const etf_mfcc_scratch *s)
{
    int32_t i;
    for (i = 0; i < p->n_frames; i++) {
        etf_mfcc_frame(p, pcm + i * p->hop, rows + i * p->n_out, s);
    }
}

int32_t etf_mfcc_stream_push(const etf_mfcc_params *p, int16_t *hist, int32_t *filled, const int16_t *hop_samples,
                             int16_t *row, const etf_mfcc_scratch *s)
{
    int32_t keep = p->frame_len - p->hop, i;
    for (i = 0; i < keep; i++) {
        hist[i] = hist[i + p->hop];
    }
    for (i = 0; i < p->hop; i++) {
        hist[keep + i] = hop_samples[i];
    }
    if (*filled < p->frame_len) {
        *filled += p->hop;
    }
    if (*filled < p->frame_len) {
        return 0;
    }
    etf_mfcc_frame(p, hist, row, s);
    return 1;
}
