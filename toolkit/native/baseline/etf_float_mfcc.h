/* edgetk: a straightforward float MFCC in C, the baseline bench/frontend.py measures the fixed-point
 * frontend against on the same core (single-precision FPU). Same steps and parameters as
 * toolkit/data/mfcc.py: periodic Hann window, |rfft(n_fft)|^2 via an n_fft/2-point complex radix-2 FFT,
 * HTK mel filters (dense per filter: first bin + weights), logf(mel + floor), DCT-II (orthonormal).
 * Tables come from Python. Not part of any device library. */
#ifndef ETF_FLOAT_MFCC_H
#define ETF_FLOAT_MFCC_H

#include <stdint.h>

typedef struct {
    int32_t frame_len, hop, n_frames, n_fft, n_mels, n_mfcc;
    const float *window;      /* [frame_len] */
    const float *tw;          /* [n_fft/4][2] cos, -sin of 2 pi k / (n_fft/2) */
    const uint16_t *bitrev;   /* [n_fft/2] */
    const float *split_tw;    /* [n_fft/2 + 1][2] cos, -sin of pi k / (n_fft/2) */
    const int16_t *fb_start;  /* [n_mels] first bin of each filter */
    const int16_t *fb_len;    /* [n_mels] bins of each filter */
    const float *fb_w;        /* weights, filter after filter */
    const float *dct;         /* [n_mfcc][n_mels] */
    float log_floor;
} etf_float_mfcc_params;

/* work: n_fft + n_fft/2 + 1 + n_mels floats. out: [n_frames][n_mfcc]. */
void etf_float_mfcc(const etf_float_mfcc_params *p, const int16_t *pcm, float *out, float *work);

#endif
