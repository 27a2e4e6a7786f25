/* Data movement with precomputed index arithmetic: TRANSPOSE and STRIDED_SLICE (one strided gather)
 * and RESIZE_NEAREST_NEIGHBOR (row/column maps computed at generation time as TFLite-Micro does). */
#include "et_kernels.h"

void et_gather_s8(const et_gather_params *p, const int8_t *in, int8_t *out)
{
    int32_t idx[ET_DIMS];
    int32_t total = 1, k, d;
    int32_t src = p->base;
    for (d = 0; d < ET_DIMS; ++d) {
        idx[d] = 0;
        total *= p->out_shape[d];
    }
    for (k = 0; k < total; ++k) {
        out[k] = in[src];
        for (d = ET_DIMS - 1; d >= 0; --d) {
            if (++idx[d] < p->out_shape[d]) {
                src += p->stride[d];
                break;
            }
            src -= p->stride[d] * (p->out_shape[d] - 1);
            idx[d] = 0;
        }
    }
}

void et_resize_nearest_s8(const et_resize_params *p, const int8_t *in, int8_t *out)
{
    int32_t b, y, x, c;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = in + (size_t)b * p->in_h * p->in_w * p->channels;
        for (y = 0; y < p->out_h; ++y) {
            for (x = 0; x < p->out_w; ++x) {
                const int8_t *src = img + ((size_t)p->y_map[y] * p->in_w + p->x_map[x]) * p->channels;
                for (c = 0; c < p->channels; ++c) {
                    *out++ = src[c];
                }
            }
        }
    }
}
