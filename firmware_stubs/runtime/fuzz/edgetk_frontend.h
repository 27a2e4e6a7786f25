/* A stand-in frontend with the generated frontend's header contract (toolkit/frontends/emit.py), for the
 * firmware's raw-sample path in tests and fuzzing: 16 x 2 int16 samples -> 16 int8 features,
 * feature i = (raw[2i] + raw[2i + 1]) / 512 (C division), clamped to int8. Pairs with firmware_stubs/testmodel. */
#ifndef EDGETK_FRONTEND_H
#define EDGETK_FRONTEND_H

#include <stdint.h>

#define EDGETK_FRONTEND_TYPE "standin"
#define EDGETK_RAW_SIZE 32
#define EDGETK_RAW_SHAPE {16, 2}
#define EDGETK_FEATURES_SIZE 16
#define EDGETK_FEATURES_SHAPE {16, 1}

int edgetk_features(const int16_t *raw, int8_t *features);

#endif
