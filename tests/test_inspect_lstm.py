"""`edgetk inspect` counts an LSTM's parameters and MACs: all gate matrices, biases, peephole, projection,
MACs per time step x steps x batches (hand counts)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from toolkit.commands.inspect import inspect_tflite
from toolkit.tflite.build import OpSpec as O
from toolkit.tflite.build import TensorSpec as T
from toolkit.tflite.build import build_model

DATA = Path(__file__).parent / "data"


def test_inspect_counts_the_keras_lstm_model():
    """LSTM(32) over [1, 30, 40] -> Dense(10): made by scripts/make_lstm_model.py."""
    info = inspect_tflite(DATA / "lstm_fsdd_int8.tflite", arena=False)
    lstm_params = 4 * 32 * 40 + 4 * 32 * 32 + 4 * 32    # 4 input + 4 recurrent matrices, 4 biases
    dense_params = 32 * 10 + 10
    assert info["params"] == lstm_params + dense_params == 9674
    lstm_macs = 30 * (4 * 32 * 40 + 4 * 32 * 32)         # per time step, 30 steps
    assert info["macs"] == lstm_macs + 32 * 10 == 276_800
    assert info["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1


def test_inspect_cli_json_on_lstm_model():
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "inspect", "--json", "--no-arena",
                           str(DATA / "lstm_fsdd_int8.tflite")], capture_output=True, text=True, check=True)
    info = json.loads(proc.stdout)
    assert (info["params"], info["macs"]) == (9674, 276_800)


def _w(shape):
    return T(shape, scale=(0.01,), data=np.ones(shape, np.int8))


def test_inspect_counts_peephole_projection_cifg_time_major(tmp_path):
    """CIFG (no input gate), peephole, projection 6 -> 4, time-major [3 steps, 2 batches, 5 inputs]."""
    n_in, n_cell, n_out, steps, batches = 5, 6, 4, 3, 2
    t = [T((steps, batches, n_in), scale=(0.1,))]                                      # 0
    t += [_w((n_cell, n_in)) for _ in range(3)]                                        # 1-3: forget/cell/output
    t += [_w((n_cell, n_out)) for _ in range(3)]                                       # 4-6: recurrent
    t += [T((n_cell,), "int16", scale=(0.01,), data=np.ones(n_cell, np.int16)) for _ in range(2)]  # 7-8 peephole
    t += [T((n_cell,), "int32", scale=(0.001,), data=np.ones(n_cell, np.int32)) for _ in range(3)]  # 9-11 bias
    t += [_w((n_out, n_cell)), T((n_out,), "int32", scale=(0.001,), data=np.ones(n_out, np.int32))]  # 12-13
    t += [T((batches, n_out), scale=(0.1,), variable=True), T((batches, n_cell), "int16", scale=(2 ** -11,), variable=True),
          T((steps, batches, n_out), scale=(0.1,))]                                    # 14-16
    ins = (0, -1, 1, 2, 3, -1, 4, 5, 6, -1, 7, 8, -1, 9, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(build_model(t, [O("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, (16,), dict(time_major=True))], [0], [16]))
    info = inspect_tflite(path, arena=False)
    per_step = 3 * n_cell * n_in + 3 * n_cell * n_out + 2 * n_cell + n_out * n_cell
    assert info["macs"] == steps * batches * per_step == 6 * (90 + 72 + 12 + 24)
    assert info["params"] == 3 * 30 + 3 * 24 + 2 * 6 + 3 * 6 + 24 + 4 == 220  # state variables are not parameters
