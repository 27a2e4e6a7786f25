"""`edgetk validate` exit codes and `edgetk profile` verdicts, on a real exported bundle and MLPerf models.

Every run builds the real firmware and runs it on QEMU or the host simulator; the failing cases are
made by editing copies of a good bundle: golden outputs off by 1 LSB, a corrupted classifier against
the good model's golden outputs (a real accuracy drop on the device), a board that is not attached.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from toolkit.cli import main
from toolkit.hil.bundle import record_files
from toolkit.hil.checks import FAIL, PASS, SKIP, WARN, Limits, evaluate
from toolkit.hil.runner import unavailable_reason
from toolkit.hil.source import ModelSource, open_bundle
from toolkit.targets import get_target

AD = "mlperf_tiny/benchmark/training/anomaly_detection/trained_models/ad01_int8.tflite"
HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"
KWS_FLOAT = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model_float32.tflite"


def qemu() -> None:
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")


@pytest.fixture(scope="module")
def imu(exported_bundle) -> Path:
    return Path(exported_bundle("imu-motions"))


def _copy(bundle: Path, dst: Path) -> Path:
    shutil.copytree(bundle, dst, ignore=shutil.ignore_patterns("profile-*", "c"))
    return dst


def _validate(capsys, *argv: str) -> tuple[int, dict]:
    rc = main(["validate", *argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def _checks(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for c in doc["checks"]}


def test_good_bundle_passes_on_qemu_and_host_sim(imu, tmp_path, capsys):
    qemu()
    rc, doc = _validate(capsys, str(imu), "--target", "qemu-m4", "--samples", "all", "-o", str(tmp_path / "q"))
    c = _checks(doc)
    assert rc == 0 and doc["verdict"] == "pass" and doc["ran_on"] == "qemu-m4" and doc["samples"] == 40, doc
    assert {k: v["verdict"] for k, v in c.items()} == {
        "target": PASS, "device": PASS, "features": PASS, "outputs_vs_golden": PASS, "outputs_vs_tflm": PASS,
        "accuracy": PASS}  # imu-motions runs its C frontend: raw windows in, features compared
    assert c["outputs_vs_golden"]["measured"] == 0 and c["accuracy"]["measured"] == 0
    assert "top-1 from the device outputs" in c["accuracy"]["detail"]
    rc, doc = _validate(capsys, str(imu), "--target", "host-sim", "--samples", "8", "-o", str(tmp_path / "h"))
    assert rc == 0 and doc["ran_on"] == "host-sim" and doc["samples"] == 8


def test_golden_outputs_off_by_one_lsb_fail(imu, tmp_path, capsys):
    qemu()
    bad = _copy(imu, tmp_path / "bundle")
    gold = np.load(bad / "test_out_int8.npy")
    gold[3, 0] = gold[3, 0] + 1 if gold[3, 0] < 127 else gold[3, 0] - 1
    np.save(bad / "test_out_int8.npy", gold)
    record_files(bad)  # changed on purpose: recorded, or the manifest's sha256 would refuse the bundle
    rc, doc = _validate(capsys, str(bad), "--target", "qemu-m4", "--samples", "10", "-o", str(tmp_path / "v"))
    c = _checks(doc)
    assert rc == 1 and doc["verdict"] == "fail"
    assert c["outputs_vs_golden"]["verdict"] == FAIL and c["outputs_vs_golden"]["measured"] == 1
    assert "1 of 10 samples differ" in c["outputs_vs_golden"]["detail"]
    assert c["outputs_vs_tflm"]["verdict"] == PASS  # the device is right; the golden file was changed
    assert main(["validate", str(bad), "--target", "qemu-m4", "--samples", "10", "--max-lsb", "1",
                 "-o", str(tmp_path / "v1")]) == 0
    assert "validate: PASS" in capsys.readouterr().out
    # profile measures the same and exits 1: the outputs are not bit-exact with the golden ones
    assert main(["profile", str(bad), "--target", "qemu-m4", "--samples", "10", "-o", str(tmp_path / "p")]) == 1
    out = capsys.readouterr().out
    assert "FAIL outputs_vs_golden" in out and "max 1 LSB apart, 1 of 10 samples differ" in out
    rep = json.loads((tmp_path / "p" / "report.json").read_text())
    assert [c["verdict"] for c in rep["checks"] if c["name"] == "outputs_vs_golden"] == [FAIL]
    assert "## Checks" in (tmp_path / "p" / "report.md").read_text()
    assert "<h2>Checks</h2>" in (tmp_path / "p" / "report.html").read_text()
    rows = [json.loads(ln) for ln in (tmp_path / "p" / "results.jsonl").read_text().splitlines()]
    labels = np.load(imu / "test_y.npy")[:10].tolist()
    assert [r["label"] for r in rows] == labels and [r["max_lsb_diff_golden"] for r in rows].count(1) == 1


def test_absent_board_fails_unless_fallback_allowed(imu, tmp_path, capsys, monkeypatch):
    qemu()
    monkeypatch.delenv("EDGETK_REQUIRE_HW", raising=False)
    if unavailable_reason(get_target("nucleo-l4r5zi")) is None:
        pytest.skip("a NUCLEO-L4R5ZI is attached here: the fallback case needs it absent")
    args = [str(imu), "--target", "nucleo-l4r5zi", "--samples", "5"]
    rc, doc = _validate(capsys, *args, "-o", str(tmp_path / "a"))
    c = _checks(doc)
    assert rc == 1 and doc["ran_on"] == "qemu-m4" and c["target"]["verdict"] == FAIL
    assert c["target"]["measured"] == "qemu-m4" and c["target"]["limit"] == "nucleo-l4r5zi"
    assert "not nucleo-l4r5zi's" in c["target"]["detail"] and "--allow-fallback" in c["target"]["detail"]
    assert [k for k, v in c.items() if v["verdict"] == FAIL] == ["target"]
    assert main(["validate", *args, "--allow-fallback", "-o", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "WARN target" in out and "FALLBACK: nucleo-l4r5zi did not run" in out and "validate: PASS" in out
    # profile reports the fallback loudly but exits 0: validate is the gate for it
    assert main(["profile", *args, "-o", str(tmp_path / "p")]) == 0
    md = (tmp_path / "p" / "report.md").read_text()
    assert "every figure below comes from qemu-m4, not from nucleo-l4r5zi" in md and "| target | WARN |" in md


def _roll_classifier(tflite: Path) -> bytes:
    """The model with its last CONV_2D's output channels rotated by one (weights and biases): a
    deployment whose classifier rows no longer match the labels."""
    from toolkit.tflite import read_model

    g = read_model(tflite)
    data = tflite.read_bytes()
    last = [op for op in g.operators if op.op == "CONV_2D"][-1]
    for t in (g.tensor(last.inputs[1]), g.tensor(last.inputs[2])):
        old = t.data.tobytes()
        assert data.count(old) == 1
        data = data.replace(old, np.roll(t.data, 1, axis=0).tobytes())
    return data


def test_accuracy_drop_on_the_device_fails(imu, tmp_path, capsys):
    """The device runs a corrupted classifier; the bundle's golden outputs are the good model's."""
    qemu()
    bad = _copy(imu, tmp_path / "bundle")
    (bad / "model_int8.tflite").write_bytes(_roll_classifier(imu / "model_int8.tflite"))
    record_files(bad)
    rc, doc = _validate(capsys, str(bad), "--target", "qemu-m4", "--samples", "all", "--max-lsb", "255",
                        "--max-drop", "0.05", "-o", str(tmp_path / "v"))
    c = _checks(doc)
    assert rc == 1 and [k for k, v in c.items() if v["verdict"] == FAIL] == ["accuracy"], c
    assert c["accuracy"]["measured"] > 0.5 and c["accuracy"]["limit"] == 0.05  # measured: top-1 1.0 -> 0.0
    assert "golden test_out_int8.npy" in c["accuracy"]["detail"]
    # labels permuted: device and reference are scored on the same wrong labels, so there is no drop
    perm = _copy(imu, tmp_path / "permuted")
    y = np.load(perm / "test_y.npy")
    np.save(perm / "test_y.npy", np.random.default_rng(0).permutation(y))
    record_files(perm)
    rc, doc = _validate(capsys, str(perm), "--target", "host-sim", "--samples", "all", "-o", str(tmp_path / "w"))
    assert rc == 0 and _checks(doc)["accuracy"]["verdict"] == PASS
    acc = json.loads(Path(doc["report"]).read_text())["accuracy"]
    assert acc["device"] == acc["reference"] < 0.6 and acc["drop"] == 0


def _kill_emulator_after(rows: Path, n: int) -> threading.Thread:
    """Kill this process's QEMU child once `rows` (results.jsonl) holds n lines: the device dies mid-run."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if rows.is_file() and len(rows.read_text().splitlines()) >= n:
                for stat in Path("/proc").glob("[0-9]*/stat"):
                    try:
                        fields = stat.read_text().split()
                    except OSError:
                        continue
                    if fields[1] == "(qemu-system-arm)" and int(fields[3]) == os.getpid():
                        os.kill(int(fields[0]), signal.SIGKILL)
                return
            time.sleep(0.005)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_device_dying_mid_run_fails_with_what_was_measured(imu, tmp_path, capsys):
    qemu()
    watcher = _kill_emulator_after(tmp_path / "v" / "results.jsonl", 3)
    rc, doc = _validate(capsys, str(imu), "--target", "qemu-m4", "--samples", "all", "-o", str(tmp_path / "v"))
    watcher.join()
    c = _checks(doc)
    assert rc == 1 and c["device"]["verdict"] == FAIL and "closed" in c["device"]["detail"], c["device"]
    assert c["target"]["verdict"] == PASS and c["outputs_vs_tflm"]["verdict"] == PASS and doc["samples"] == 40
    rep = json.loads((tmp_path / "v" / "report.json").read_text())
    done = len((tmp_path / "v" / "results.jsonl").read_text().splitlines())
    assert 3 <= done < 40 and rep["comparisons"][0]["samples"] == done and rep["fidelity"]["bit_exact"]
    assert f"after {done} of 40 raw windows" in c["device"]["detail"]  # imu-motions: raw windows through its frontend


def test_profile_mlperf_tflite_with_random_inputs(external, tmp_path, capsys):
    qemu()
    assert main(["profile", str(external / AD), "--target", "qemu-m4", "--samples", "2",
                 "-o", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "inputs: random inputs (uniform int8, seed 0, 2 samples): not data" in out
    assert "m-model-[ad01]" in out and "bit-exact (2 samples)" in out and "SKIP accuracy" in out
    rep = json.loads((tmp_path / "p" / "report.json").read_text())
    assert rep["random_inputs"] and rep["mlperf"] == {"key": "ad01", "source": "bundle manifest (mlperf_key)",
                                                      "firmware_answered": "ad01"}
    assert "random inputs" in (tmp_path / "p" / "report.html").read_text()


def test_model_inputs_and_errors(external, imu, tmp_path, capsys):
    """--inputs (float, quantized with the model's input scale; labels from an .npz); .onnx and float .tflite refused."""
    x = np.load(imu / "test_x_int8.npy")
    q = json.loads((imu / "manifest.json").read_text())["input"]
    xf = (x.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])
    np.savez(tmp_path / "in.npz", x=xf, y=np.load(imu / "test_y.npy"))
    b = open_bundle(ModelSource(imu / "model_int8.tflite", inputs=tmp_path / "in.npz", cache=tmp_path / "c"))
    np.testing.assert_array_equal(b.x, x)
    assert b.y is not None and b.inputs_label.startswith("inputs from") and not b.random_inputs
    imported = dataclasses.replace(b, manifest={"data": {"test": {"source": "random", "description": "seeded random inputs, seed 1"}}})
    assert imported.random_inputs and imported.inputs_label == "random inputs (seeded random inputs, seed 1): not data"
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\x08\x07")
    assert main(["validate", str(onnx), "--target", "host-sim"]) == 2
    assert "edgetk import" in capsys.readouterr().err
    assert main(["profile", str(external / KWS_FLOAT), "--target", "host-sim"]) == 2
    assert "full-int8" in capsys.readouterr().err
    assert main(["validate", str(imu), "--target", "host-sim", "--inputs", str(tmp_path / "in.npz")]) == 2
    assert "brings its own test set" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["validate", str(imu), "--target", "host-sim", "--samples", "0"])
    assert e.value.code == 2


def test_build_and_flash_take_a_tflite_and_an_mlperf_key(external, tmp_path, capsys):
    qemu()
    assert main(["build", str(external / AD), "--target", "qemu-m4", "-o", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "MLPerf model key ad01 (bundle manifest (mlperf_key))" in out and "flash " in out
    assert '-DEDGETK_MLPERF_MODEL="ad01"' in (tmp_path / "b" / "build.log").read_text()
    assert main(["flash", str(external / HELLO), "--target", "qemu-m4", "--mlperf-key", "vww01"]) == 0
    assert "answers MLPerf model key m-model-[vww01] (--mlperf-key)" in capsys.readouterr().out
    assert main(["build", str(external / HELLO), "--target", "host-sim", "--mlperf-key", "kws01]%"]) == 2
    assert "cannot be compiled into the firmware" in capsys.readouterr().err


def _report(**kw) -> dict:
    base = {"target": "qemu-m4", "ran_on": "qemu-m4", "fallbacks": [], "device_error": None,
            "comparisons": [{"reference": "TFLite-Micro", "max_lsb_diff": 0, "samples": 4, "samples_differing": 0}],
            "accuracy": None, "accuracy_skipped": "no labels"}
    return {**base, **kw}


def test_verdicts_are_pure_functions_of_the_report():
    v = {c.name: c.verdict for c in evaluate(_report(), Limits(need_outputs=True, allow_fallback=False))}
    assert v == {"target": PASS, "device": PASS, "outputs_vs_tflm": PASS, "accuracy": SKIP}
    est = _report(ran_on="estimate", comparisons=[], fallbacks=[{"target": "qemu-m4", "reason": "no qemu"}])
    assert {c.name: c.verdict for c in evaluate(est, Limits())} == {
        "target": WARN, "device": SKIP, "outputs": SKIP, "accuracy": SKIP}  # profile: nothing to compare
    assert {c.name: c.verdict for c in evaluate(est, Limits(allow_fallback=True, need_outputs=True))} == {
        "target": WARN, "device": FAIL, "outputs": FAIL, "accuracy": SKIP}  # validate: nothing validated
    dead = evaluate(_report(device_error="run: no valid reply after 4 attempts"), Limits())
    assert [c.name for c in dead if c.verdict == FAIL] == ["device"]
    acc = {"metric": "top-1", "device": 0.9, "reference": 0.95, "drop": 0.05, "samples": 20,
           "reference_source": "x", "labels": "y"}
    assert [c.verdict for c in evaluate(_report(accuracy=acc), Limits(max_drop=0.05)) if c.name == "accuracy"] == [PASS]
    assert [c.verdict for c in evaluate(_report(accuracy=acc), Limits(max_drop=0.04)) if c.name == "accuracy"] == [FAIL]
