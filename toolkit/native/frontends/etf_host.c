/* edgetk frontends: batch entry points for the host build (ctypes). Not part of the device library:
 * each loops over windows and calls the generated entry points, so the host runs the device's code. */
#include <stdint.h>

#include "edgetk_frontend.h"

int32_t etf_host_size(int32_t what);
int32_t etf_host_features(const int16_t *raw, int8_t *out, int32_t n);
int32_t etf_host_stage1(const int16_t *raw, int16_t *out, int32_t n);
int32_t etf_host_stream(const int16_t *raw, int8_t *out, int32_t n);

/* 0: raw values per window, 1: features per window, 2: streaming (0/1), 3: hop, 4: row size */
int32_t etf_host_size(int32_t what)
{
    switch (what) {
    case 0:
        return EDGETK_RAW_SIZE;
    case 1:
        return EDGETK_FEATURES_SIZE;
    case 2:
        return EDGETK_STREAMING;
#if EDGETK_STREAMING
    case 3:
        return EDGETK_HOP;
    case 4:
        return EDGETK_ROW_SIZE;
#endif
    default:
        return -1;
    }
}

/* n windows through fn, outputs of `size` bytes each. */
static int32_t each(int (*fn)(const int16_t *, void *), const int16_t *raw, uint8_t *out, int32_t n, int32_t size)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        if (fn(raw + (int64_t)i * EDGETK_RAW_SIZE, out + (int64_t)i * size) != 0) {
            return -1;
        }
    }
    return 0;
}

static int features(const int16_t *raw, void *out)
{
    return edgetk_features(raw, (int8_t *)out);
}

static int stage1(const int16_t *raw, void *out)
{
    return edgetk_features_stage1(raw, (int16_t *)out);
}

int32_t etf_host_features(const int16_t *raw, int8_t *out, int32_t n)
{
    return each(features, raw, (uint8_t *)out, n, EDGETK_FEATURES_SIZE);
}

int32_t etf_host_stage1(const int16_t *raw, int16_t *out, int32_t n)
{
    return each(stage1, raw, (uint8_t *)out, n, 2 * EDGETK_FEATURES_SIZE);
}

/* Each window pushed hop by hop through a fresh stream; rows written in order (EDGETK_FEATURES_SIZE per window).
 * Returns the rows per window, -1 without streaming. */
int32_t etf_host_stream(const int16_t *raw, int8_t *out, int32_t n)
{
#if EDGETK_STREAMING
    edgetk_stream_t st;
    int32_t i, h, rows = 0;
    for (i = 0; i < n; i++) {
        const int16_t *x = raw + (int64_t)i * EDGETK_RAW_SIZE;
        int8_t *o = out + (int64_t)i * EDGETK_FEATURES_SIZE;
        edgetk_stream_init(&st);
        rows = 0;
        for (h = 0; h + EDGETK_HOP <= EDGETK_RAW_SIZE; h += EDGETK_HOP) {
            if (rows * EDGETK_ROW_SIZE < EDGETK_FEATURES_SIZE && edgetk_stream_push(&st, x + h, o + rows * EDGETK_ROW_SIZE)) {
                rows++;
            }
        }
    }
    return rows;
#else
    (void)raw;
    (void)out;
    (void)n;
    return -1;
#endif
}
