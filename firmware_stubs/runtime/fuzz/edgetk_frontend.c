/* The stand-in frontend (edgetk_frontend.h). */
#include "edgetk_frontend.h"

int edgetk_features(const int16_t *raw, int8_t *features)
{
    for (int i = 0; i < EDGETK_FEATURES_SIZE; i++) {
        int32_t v = ((int32_t)raw[2 * i] + (int32_t)raw[2 * i + 1]) / 512;
        features[i] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
    return 0;
}
