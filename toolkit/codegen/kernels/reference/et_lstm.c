/* UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations with int16 gates and cell state, as TFLite-Micro's
 * integer LSTM (lstm_eval): per gate an int8 -> int16 fully connected layer on the input (with bias)
 * plus one on the hidden state, a saturating int16 add, then sigmoid or tanh on Q3.12 (16-bit table
 * interpolation); cell = forget * cell + input * cell_gate (int16), clipped; hidden = tanh(cell) *
 * output (int8). The state starts from zero at every call. */
#include "et_kernels.h"
#include "et_fixedpoint.h"

/* sigmoid(i / 24) in 0.16 fixed point: TFLite's and CMSIS-NN's shared table, needed bit for bit. */
static const uint16_t sigmoid_table[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535
};

enum { GATE_FORGET, GATE_INPUT, GATE_CELL, GATE_OUTPUT };

static int16_t sat16(int32_t v)
{
    return (int16_t)et_clamp(v, INT16_MIN, INT16_MAX);
}

/* int16 logistic of Q3.12 input, Q0.15 output (input multiplier 3, no shift). */
static int16_t sigmoid16(int16_t x)
{
    const int32_t v = (int32_t)x * 3;
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 9;
    uint32_t r;
    if (uh >= 255) {
        r = (uint32_t)0x7FFF << 10;
    } else {
        const uint32_t ua = sigmoid_table[uh];
        const uint32_t ub = sigmoid_table[uh + 1];
        r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
    }
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

/* int16 tanh, Q0.15 output; input scaled by (x * mult + round) >> shift as TFLite's int16 Tanh. */
static int16_t tanh16(int16_t x, int32_t mult, int32_t shift)
{
    const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
    const int32_t v = ((int32_t)x * mult + round) >> shift;
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 8;
    int32_t r;
    if (uh >= 255) {
        r = 0xFFFF << 8;
    } else {
        const uint32_t ua = sigmoid_table[uh];
        const uint32_t ub = sigmoid_table[uh + 1];
        r = (int32_t)((ua << 8) + (a & 0xFFu) * (ub - ua));
    }
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(r >> 8);
}

/* dst[j] = sat16(requant(sum_i (x[i] + offset) * w[j][i] + bias[j])) */
static void fc16(const int8_t *x, int32_t n_in, int32_t offset, const int8_t *w, const int32_t *bias,
                 int32_t n_out, int32_t mult, int32_t shift, int16_t *dst)
{
    int32_t j, i;
    for (j = 0; j < n_out; ++j) {
        const int8_t *row = w + (size_t)j * n_in;
        int32_t acc = 0;
        for (i = 0; i < n_in; ++i) {
            acc += (x[i] + offset) * row[i];
        }
        if (bias) {
            acc += bias[j];
        }
        dst[j] = sat16(et_mbqm(acc, mult, shift));
    }
}

static void gate(const et_lstm_params *p, int g, const int8_t *x, const int8_t *hidden, int16_t *dst,
                 int16_t *tmp)
{
    const int32_t n = p->n_cell;
    int32_t j;
    fc16(x, p->n_input, p->input_offset, p->w_in + (size_t)g * n * p->n_input, p->bias + (size_t)g * n, n,
         p->in_mult[g], p->in_shift[g], dst);
    fc16(hidden, n, p->hidden_offset, p->w_rec + (size_t)g * n * n, NULL, n, p->rec_mult[g], p->rec_shift[g],
         tmp);
    for (j = 0; j < n; ++j) {
        const int16_t s = sat16((int32_t)dst[j] + tmp[j]);
        dst[j] = g == GATE_CELL ? tanh16(s, 3, 0) : sigmoid16(s);
    }
}

static void step(const et_lstm_params *p, const int8_t *x, int8_t *hidden, int16_t *cell, int16_t *buf,
                 int8_t *y)
{
    const int32_t n = p->n_cell;
    int16_t *f = buf, *in = buf + n, *c = buf + 2 * n, *o = buf + 3 * n, *tmp = buf + 4 * n;
    int32_t j;
    gate(p, GATE_FORGET, x, hidden, f, tmp);
    gate(p, GATE_INPUT, x, hidden, in, tmp);
    gate(p, GATE_CELL, x, hidden, c, tmp);
    for (j = 0; j < n; ++j) {
        const int16_t kept = sat16(et_mbqm((int32_t)f[j] * cell[j], p->forget_mult, p->forget_shift));
        const int16_t added = sat16(et_mbqm((int32_t)in[j] * c[j], p->input_mult, p->input_shift));
        int32_t v = (int32_t)kept + added;
        v = et_clamp(v, INT16_MIN, INT16_MAX);
        if (p->cell_clip > 0) {
            v = et_clamp(v, -p->cell_clip, p->cell_clip);
        }
        cell[j] = (int16_t)v;
    }
    gate(p, GATE_OUTPUT, x, hidden, o, tmp);
    for (j = 0; j < n; ++j) {
        const int16_t t = tanh16(cell[j], p->tanh_mult, p->tanh_shift);
        const int32_t h = et_mbqm((int32_t)t * o[j], p->hidden_mult, p->hidden_shift) + p->hidden_zp;
        hidden[j] = (int8_t)et_clamp(h, -128, 127);
        y[j] = hidden[j];
    }
}

void et_lstm_s8(const et_lstm_params *p, const int8_t *in, int8_t *out, int32_t *scratch)
{
    const int32_t n = p->n_cell;
    int16_t *cell = (int16_t *)(void *)scratch;
    int16_t *buf = cell + n;                    /* 5 vectors: forget, input, cell gate, output, tmp */
    int8_t *hidden = (int8_t *)(void *)(buf + 5 * n);
    int32_t b, t, j;
    for (b = 0; b < p->batches; ++b) {
        for (j = 0; j < n; ++j) {
            cell[j] = 0;
            hidden[j] = (int8_t)p->hidden_zp;
        }
        for (t = 0; t < p->steps; ++t) {
            const size_t row = p->time_major ? (size_t)t * p->batches + b : (size_t)b * p->steps + t;
            step(p, in + row * p->n_input, hidden, cell, buf, out + row * n);
        }
    }
}
