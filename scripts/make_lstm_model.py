"""Make the LSTM test models in tests/data/ (a Keras LSTM trained briefly on FSDD, full-integer int8).

TensorFlow is NOT an edgetk dependency. Run this in a separate virtual environment:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0
    /tmp/tfvenv/bin/python scripts/make_lstm_model.py            # uses ../shared/data/fsdd

What it writes (all from the same trained weights):
  tests/data/lstm_fsdd_int8.tflite      int8 in, int8 out (UNIDIRECTIONAL_SEQUENCE_LSTM + STRIDED_SLICE
                                        + FULLY_CONNECTED + SOFTMAX; int16 cell state)
  tests/data/lstm_fsdd_float_io.tflite  the same int8 graph with float32 I/O (QUANTIZE at the input,
                                        DEQUANTIZE at the output)
  tests/data/lstm_fsdd_float.tflite     the float32 model (no quantization), for reference
  tests/data/lstm_fsdd_calib.npy        20 real float32 inputs [20, 30, 40] from the held-out speakers

Model: input [1, 30, 40] (30 frames of 40 log band energies of a spoken digit, 8 kHz FSDD audio),
LSTM(32) -> Dense(10) -> softmax; 15 epochs of Adam on 5 speakers' recordings (seeded, CPU).
The representative dataset for the int8 conversion is 200 training inputs.
Keras 2 (tf-keras, TF_USE_LEGACY_KERAS=1): with Keras 3 the TF 2.21 converter's calibrator crashes
(segmentation fault in calibrator._feed_tensors) on the fused LSTM; the Keras 2 path converts it.
"""
from __future__ import annotations

import argparse
import os
import wave
from pathlib import Path

import numpy as np

FRAMES, BANDS, UNITS, CLASSES = 30, 40, 32, 10
SAMPLES, WIN, HOP = 8000, 256, 264  # 1 s at 8 kHz; (8000 - 256) // 264 + 1 = 30 frames
TEST_SPEAKERS = ("theo",)


def features(path: Path) -> np.ndarray:
    """[30, 40] log band energies of one recording (zero-padded or cut to 1 s)."""
    with wave.open(str(path), "rb") as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    x = np.zeros(SAMPLES, np.float32)
    x[:min(len(raw), SAMPLES)] = raw[:SAMPLES]
    frames = np.stack([x[i * HOP:i * HOP + WIN] for i in range(FRAMES)]) * np.hanning(WIN).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2            # [30, 129]
    edges = np.linspace(1, power.shape[1], BANDS + 1).astype(int)
    bands = np.stack([power[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    return np.log(bands + 1e-6).astype(np.float32)


def load(fsdd: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/test features and labels (test: the speakers in TEST_SPEAKERS), normalised per band."""
    files = sorted((fsdd / "recordings").glob("*.wav"))
    if not files:
        raise SystemExit(f"no FSDD recordings under {fsdd}/recordings")
    x = np.stack([features(f) for f in files])
    y = np.array([int(f.name.split("_")[0]) for f in files], np.int64)
    test = np.array([f.name.split("_")[1] in TEST_SPEAKERS for f in files])
    mean, std = x[~test].mean(axis=(0, 1)), x[~test].std(axis=(0, 1)) + 1e-6
    x = ((x - mean) / std).astype(np.float32)
    return x[~test], y[~test], x[test], y[test]


def build(tf):  # noqa: ANN001, ANN201 - TensorFlow lives in another environment
    """LSTM(32) -> Dense(10) -> softmax on [1, 30, 40]."""
    inp = tf.keras.Input(shape=(FRAMES, BANDS), batch_size=1)
    h = tf.keras.layers.LSTM(UNITS)(inp)
    out = tf.keras.layers.Dense(CLASSES, activation="softmax")(h)
    return tf.keras.Model(inp, out)


def convert(tf, model, calib: np.ndarray, *, int8: bool, int8_io: bool) -> bytes:  # noqa: ANN001
    """TFLite bytes: float, or full-integer int8 with int8 or float32 I/O."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fsdd", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data")
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    x_tr, y_tr, x_te, y_te = load(args.fsdd)
    model = build(tf)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # the model has batch size 1 (as deployed); train a batch-64 twin that shares its layers
    trainer = tf.keras.Model(*_batch_free(tf, model))
    trainer.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    trainer.fit(x_tr, y_tr, batch_size=64, epochs=args.epochs, verbose=2, shuffle=True)
    _, acc = trainer.evaluate(x_te, y_te, verbose=0)
    print(f"float test accuracy on held-out speaker(s) {TEST_SPEAKERS}: {acc:.3f} ({len(x_te)} recordings)")
    calib = x_tr[np.random.default_rng(0).permutation(len(x_tr))[:200]]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, kw in (("lstm_fsdd_int8", dict(int8=True, int8_io=True)),
                     ("lstm_fsdd_float_io", dict(int8=True, int8_io=False)),
                     ("lstm_fsdd_float", dict(int8=False, int8_io=False))):
        data = convert(tf, model, calib, **kw)
        (args.out / f"{name}.tflite").write_bytes(data)
        print(f"wrote {args.out / (name + '.tflite')} ({len(data)} bytes)")
    np.save(args.out / "lstm_fsdd_calib.npy", x_te[:20])


def _batch_free(tf, model):  # noqa: ANN001, ANN202
    """Inputs/outputs of a model without the fixed batch size, reusing model's layers (same weights)."""
    inp = tf.keras.Input(shape=(FRAMES, BANDS))
    h = inp
    for layer in model.layers[1:]:
        h = layer(h)
    return inp, h


if __name__ == "__main__":
    main()
