/* edgetk frontends: a host driver for sanitizer runs. Reads int16 windows (EDGETK_RAW_SIZE each) from
 * stdin; writes per window the stage-1 int16 features, the int8 features and (streaming frontends)
 * the int8 rows of the stream to stdout. */
#include <stdint.h>
#include <stdio.h>

#include "edgetk_frontend.h"

int32_t etf_host_stream(const int16_t *raw, int8_t *out, int32_t n);

static int16_t g_raw[EDGETK_RAW_SIZE];
static int16_t g_stage1[EDGETK_FEATURES_SIZE];
static int8_t g_feat[EDGETK_FEATURES_SIZE];
static int8_t g_stream[EDGETK_FEATURES_SIZE];

int main(void)
{
    while (fread(g_raw, sizeof g_raw[0], EDGETK_RAW_SIZE, stdin) == EDGETK_RAW_SIZE) {
        if (edgetk_features_stage1(g_raw, g_stage1) != 0 || edgetk_features(g_raw, g_feat) != 0) {
            return 3;
        }
        fwrite(g_stage1, sizeof g_stage1[0], EDGETK_FEATURES_SIZE, stdout);
        fwrite(g_feat, 1, EDGETK_FEATURES_SIZE, stdout);
        if (EDGETK_STREAMING) {
            etf_host_stream(g_raw, g_stream, 1);
            fwrite(g_stream, 1, EDGETK_FEATURES_SIZE, stdout);
        }
    }
    return 0;
}
