/* edgetk frontends: fixed-point log-mel and MFCC features of int16 PCM (C99, integers only, no libc,
 * no malloc, no static state: tables and scratch come from the caller, normally the generated
 * edgetk_frontend.c, whose tables Python computed from the recipe's [frontend] parameters).
 *
 * One frame (frame_len samples x[n], int16, value/32768 is the float signal):
 *  1. peak    ls = 15 - bitlen(max |x|), clamped to [0, 15]: the frame's block exponent, so quiet
 *             frames use the full range (block floating point; undone in the log domain, step 5).
 *  2. window  v[n] = (x[n] * 2^ls * w[n]) >> (16 + in_shift), w = periodic Hann in Q31 (x * 2^ls fits
 *             in 16 bits: SMULWB on the DSP path): |v| <= 2^(30 - in_shift) (2^27 for n_fft = 512).
 *             energy = sum v^2 (uint64; Python picks in_shift so it cannot overflow).
 *             The real n_fft-point FFT is an N = n_fft/2-point complex FFT of z[n] = v[2n] + i v[2n+1]
 *             (zero beyond frame_len: zero padding).
 *  3. FFT     radix-4 decimation in frequency (+ one radix-2 stage when N = 2 * 4^k), each stage
 *             scaled by 1/4 (1/2) with floor: twiddles in Q30, each product floor(u * w / 2^32) (SMMUL),
 *             so (u * w) / 4 costs no extra shift and W = 1 gives exactly u >> 2. Components grow at most
 *             sqrt(2) per stage (rotation); Python's in_shift keeps every sum below 2^31. Output
 *             Z[k] = DFT_N(z)[k] / N at buffer position fft_pos[k] (digit-reversed order). The first
 *             stage reads the samples through the window and skips the zero padding.
 *  4. split   X[k] = (Z[k] + Z*[N-k]) / 4 - i W^k (Z[k] - Z*[N-k]) / 4, W = exp(-i pi k / N) in Q30, bins
 *             k and N-k from one pair of loads: X = DFT_{n_fft}(v)[k] / n_fft. Power P[k] = X.re^2 + X.im^2
 *             (uint64, < 2^60), brought to 48 bits by s2 = bitlen(energy / n_fft) + 1 - 48 (>= 0): by
 *             Parseval the one-sided power spectrum sums to at most energy / n_fft, so sum_k P48[k] < 2^48.
 *  5. mel     HTK triangles between consecutive mel points: a bin in segment j (between points j
 *             and j+1) feeds the rising edge of filter j with weight u (Q15, mel_up) and the falling
 *             edge of filter j-1 with 1 - u. Per segment: S = sum P48, U = sum P48 * u (uint64),
 *             mel[f] = U[f] + (S[f+1] << 15) - U[f+1] < 2^63, in units of 2^-E of the float mel energy,
 *             E = 2 (30 - in_shift + ls - log2 n_fft) - s2 + 15: about 140 dB of range below the frame's
 *             energy, so bands far down a line spectrum keep their value.
 *  6. log     y = mel + floor * 2^E (floor = floor_q / 2^floor_shift, brought to the same scale; when
 *             E > floor_shift the mel energy is shifted down instead), L = log2(y) - E in Q16
 *             (CLZ + 64-entry table, linear interpolation: error < 2e-5).
 *  7. output  logmel: row[f] = round(L[f] * ln2) in Q(out_frac), coef[0] = ln2 in Q22;
 *             mfcc: row[c] = round(sum_f L[f] * coef[c][f]) with coef = orthonormal DCT-II * ln2 in Q22;
 *             rounding shift out_shift = 16 + 22 - out_frac (< 32), saturated to int16.
 *
 * Cores: with the DSP extension (__ARM_FEATURE_DSP, Thumb-2: Cortex-M4/M7/M33) the windowing, the peak
 * search and the radix-4 loops use DSP instructions and hand-scheduled Thumb-2 loops computing the same
 * integers as the portable C (tests compare a QEMU Cortex-M4 run with the host bit for bit); no libc and
 * no libgcc helper is needed there. ARMv6-M (Cortex-M0/M0+) has no 32x32->64 multiply or CLZ: link libgcc.
 *
 * Precision vs the float64 numpy reference (toolkit/data/mfcc.py) on the 300 FSDD test clips: MFCC SNR
 * 82.9 dB, max |err| 0.005 (the Q7 output rounding); log-mel 94.8 dB, max 0.005; full-scale square waves,
 * DC and clipped sines within 0.03. Each run records its own figure in Frontend.info["float_reference_distance"]. */
#ifndef ETF_MFCC_H
#define ETF_MFCC_H

#include <stdint.h>

typedef struct {
    int32_t frame_len;        /* samples per frame: even, n_fft/4 <= frame_len <= n_fft */
    int32_t hop;              /* samples between frame starts */
    int32_t n_frames;         /* frames per window */
    int32_t log2_n_fft;       /* n_fft = 2^log2_n_fft, the real FFT size */
    int32_t n_radix4;         /* radix-4 stages of the N = n_fft/2-point complex FFT */
    int32_t radix2;           /* 1: one final radix-2 stage (N = 2 * 4^n_radix4) */
    int32_t in_shift;         /* step 2: |v| <= 2^(30 - in_shift) */
    int32_t n_mels;           /* mel filters */
    int32_t bin_lo;           /* first FFT bin with a mel weight */
    int32_t n_out;            /* values per row: n_mfcc, or n_mels for log-mel */
    int32_t dct;              /* 1: MFCC (DCT of the log mel energies); 0: log mel energies */
    int32_t out_shift;        /* step 7: (L * coef) >> out_shift, 0 < out_shift < 32 */
    int32_t floor_shift;      /* step 6: log floor = floor_q / 2^floor_shift */
    uint64_t floor_q;         /* < 2^63 */
    const int32_t *window;    /* [frame_len] Q31 */
    const int32_t *fft_tw;    /* per radix-4 stage, j = 1..q-1: Q30 (cos, -sin) of W^(j s), W^(2 j s), W^(3 j s) */
    const uint16_t *fft_pos;  /* [N] buffer position of Z[k] after the DIF stages */
    const int32_t *split_tw;  /* [N/2][2] Q30 cos(pi k/N), -sin(pi k/N), k = 1..N/2 */
    const uint16_t *seg_end;  /* [n_mels+1] segment j covers bins [seg_end[j-1], seg_end[j]) (seg -1 ends at bin_lo) */
    const uint16_t *mel_up;   /* [seg_end[n_mels] - bin_lo] Q15 rising-edge weight of each bin, in [0, 32768] */
    const int32_t *coef;      /* mfcc: [n_out][n_mels] Q22 DCT-II (orthonormal) * ln2; log-mel: [1] Q22 ln2 */
} etf_mfcc_params;

/* Caller-owned scratch (N = n_fft/2). */
typedef struct {
    int32_t *fft;             /* [2N] complex FFT buffer */
    uint64_t *power;          /* [N+1] 48-bit power spectrum */
    uint64_t *seg;            /* [2 (n_mels+1)] per-segment sums S, U */
    int32_t *logs;            /* [n_mels] Q16 log2 mel energies */
} etf_mfcc_scratch;

/* One frame of frame_len samples -> n_out int16 values. */
void etf_mfcc_frame(const etf_mfcc_params *p, const int16_t *frame, int16_t *row, const etf_mfcc_scratch *s);

/* A window of (n_frames - 1) * hop + frame_len samples -> [n_frames][n_out] rows. */
void etf_mfcc_window(const etf_mfcc_params *p, const int16_t *pcm, int16_t *rows, const etf_mfcc_scratch *s);

/* Streaming (frame_len a multiple of hop): hist[frame_len] and *filled are the caller's state
 * (zeros to start). Appends hop samples; returns 1 and writes one row once a whole frame is
 * buffered: row i of the stream equals row i of etf_mfcc_window over the same samples. */
int32_t etf_mfcc_stream_push(const etf_mfcc_params *p, int16_t *hist, int32_t *filled, const int16_t *hop_samples,
                             int16_t *row, const etf_mfcc_scratch *s);

/* Q16 log2 of y >= 1. */
int32_t etf_log2_q16(uint64_t y);

#endif
