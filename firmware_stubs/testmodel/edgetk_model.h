/* Hand-written int8 stand-in with the generated library's header contract (ARCHITECTURE.md):
 * one fully-connected layer, 16 -> 4, TFLite integer arithmetic. Used to test the firmware
 * runtime and the HIL runner without a model from the code generator. */
#ifndef EDGETK_MODEL_H
#define EDGETK_MODEL_H

#include <stdint.h>

#define EDGETK_INPUT_SIZE 16
#define EDGETK_OUTPUT_SIZE 4
#define EDGETK_ARENA_SIZE 0
#define EDGETK_INPUT_SCALE 0.05f
#define EDGETK_INPUT_ZERO_POINT (-3)
#define EDGETK_OUTPUT_SCALE 0.1f
#define EDGETK_OUTPUT_ZERO_POINT 5
/* sha256 of the bytes "edgetk-testmodel" (there is no .tflite behind the stand-in) */
#define EDGETK_MODEL_SHA256 "14363759ca825369d9f8476d15735e2873e7b937f13ef28794846b036094d2f9"
#define EDGETK_MODEL_MACS 64

int edgetk_invoke(const int8_t *input, int8_t *output);

#endif
