"""toolkit.hil.profile end to end: fallback from an absent board to QEMU, reports, JSONL, linux-local."""
from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import require_tool
from toolkit.cli import main
from toolkit.codegen import build_model as plan_model
from toolkit.errors import EdgetkError
from toolkit.hil import profile
from toolkit.hil.bundle import bundle_from_tflite
from toolkit.hil.linux_local import profile_linux_local
from toolkit.hil.runner import estimate
from toolkit.targets import get_target

KWS = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite"
HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"


@pytest.fixture(scope="module")
def kws_bundle(external, tmp_path_factory):
    return bundle_from_tflite(external / KWS, tmp_path_factory.mktemp("kws"), samples=3)


def test_absent_board_falls_back_to_qemu_with_sources_named(kws_bundle, tmp_path, monkeypatch):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    monkeypatch.delenv("EDGETK_REQUIRE_HW", raising=False)
    res = profile(kws_bundle.path, "nucleo-l4r5zi", samples=3, out_dir=tmp_path / "out", build_dir=tmp_path / "b")
    rep = res.report
    assert rep["ran_on"] == "qemu-m4" and rep["fallbacks"][0]["target"] == "nucleo-l4r5zi"
    assert "no board attached" in rep["fallbacks"][0]["reason"]
    assert rep["fidelity"]["bit_exact"] and rep["fidelity"]["samples"] == 3
    assert rep["fidelity"]["top1_agreement"] == 1.0 and rep["fidelity"]["max_lsb_diff"] == 0
    assert "-icount shift=0" in rep["latency"]["source"] and "instructions" in rep["instructions"]["source"]
    # the target's kernel set (dsp) at optimize=size: measured 1.50 instructions/MAC (fast 7.08, TFLM + CMSIS-NN 2.90)
    assert rep["codegen"]["kernels"] == "dsp" and rep["codegen"]["optimize"] == "size"
    assert 1.0 < rep["instructions"]["per_mac"] < 2.9, rep["instructions"]
    assert rep["instructions"]["per_mac"] == pytest.approx(rep["instructions"]["per_inference"] / 2_656_768)
    # the board's latency is estimated from the instruction classes the emulator counted (the plugin's classes add
    # up to the exact count), priced by the Cortex-M4 table and the NUCLEO's [cycles] memory, labelled an estimate
    from toolkit.hil import cycles as C

    est, classes = rep["board_estimate"], rep["instructions"]["classes"]
    assert classes["insns"] == pytest.approx(rep["instructions"]["per_inference"])
    assert est["method"] == "instruction classes" and est["source"].startswith("estimate") and "not measured" in est["source"]
    mem = C.MemoryModel(flash_wait_states=5, art=False, fetch_stall_per_line=2.73)
    want = C.estimate(classes, C.core_costs("cortex-m4"), mem).ms(120e6)
    assert est["latency_ms"] == pytest.approx(want) and 1.2 < est["cycles"] / classes["insns"] < 4.0, est
    md = (tmp_path / "out" / "report.md").read_text()
    assert "latency on nucleo-l4r5zi (estimate)" in md and "classified QEMU instructions" in md
    assert "EDGETK_PROFILE_LAYERS=0" in rep["layers"]["skipped"] and "## Per layer: not run" in md  # conftest
    mem = rep["memory"]
    assert mem["arena_bytes"] == plan_model(kws_bundle.tflite, kernels="dsp")[2].arena_size > 0  # the planner's arena for the target's kernel set
    assert 0 < mem["stack_high_water_bytes"] < 32768 and mem["flash_bytes"] > 20000
    rows = [json.loads(ln) for ln in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["sample"] for r in rows] == [0, 1, 2] and all(r["max_lsb_diff"] == 0 for r in rows)
    html = res.html_path.read_text()
    assert "data:image/png;base64," in html and "QEMU virtual time" in html
    assert "| instructions per MAC |" in (tmp_path / "out" / "report.md").read_text()
    assert "name-dut" in (tmp_path / "out" / "transcript.log").read_text()
    assert "ran on: qemu-m4" in res.summary()


def test_require_hw_turns_fallback_into_failure(kws_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETK_REQUIRE_HW", "1")
    with pytest.raises(EdgetkError, match="EDGETK_REQUIRE_HW=1"):
        profile(kws_bundle.path, "nucleo-l4r5zi", samples=1, out_dir=tmp_path)


def test_estimate_is_labelled_as_one(kws_bundle):
    b = dataclasses.replace(kws_bundle, manifest={"macs": 2_656_768})
    rep = estimate(get_target("nucleo-l4r5zi"), b)
    assert rep["ran_on"] == "estimate" and rep["latency"]["source"].startswith("estimate:")
    assert rep["latency"]["per_inference_ms"] == pytest.approx(2_656_768 * 8.0 / 120e6 * 1e3)


def test_linux_local_litert_latency_and_rss(kws_bundle, tmp_path):
    spec = dataclasses.replace(get_target("linux-local"), runtime="litert")
    rep = profile_linux_local(spec, kws_bundle, tmp_path, samples=3)
    lat = rep["latency"]
    assert 0 < lat["median_ms"] <= lat["p90_ms"] <= lat["p99_ms"] and len(lat["samples_ms"]) == 3
    assert rep["memory"]["peak_rss_bytes"] > 10 * 2**20
    # LiteRT's default XNNPACK kernels are not bit-exact with TFLM (up to 15 LSB on this softmax)
    assert rep["fidelity"]["top1_agreement"] == 1.0 and rep["fidelity"]["cosine"] > 0.99
    assert "subprocess" in lat["source"]


def test_cli_build_and_profile_on_host_sim(external, tmp_path, capsys):
    require_tool("gcc")
    b = bundle_from_tflite(external / HELLO, tmp_path / "bundle", samples=4)
    assert main(["build", str(b.path), "--target", "host-sim", "-o", str(tmp_path / "build")]) == 0
    assert main(["profile", str(b.path), "--target", "host-sim", "--samples", "4", "-o", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "ran on: host-sim" in out and "bit-exact (4 samples)" in out and "report:" in out
    assert main(["profile", str(b.path), "--target", "qemu-m5"]) == 2
    assert "did you mean 'qemu-m" in capsys.readouterr().err


def test_cli_flash_on_qemu_m4(external, tmp_path, capsys):
    """`edgetk flash` boots the emulator and names the model it runs (skips through require_tool, not silently)."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    b = bundle_from_tflite(external / HELLO, tmp_path / "bundle", samples=1)
    assert main(["flash", str(b.path), "--target", "qemu-m4"]) == 0
    assert "runs model " + b.sha256[:16] in capsys.readouterr().out


def test_zoo_bundle_on_linux_local_and_host_sim(exported_bundle, tmp_path):
    """A real exported bundle (imu-motions): ONNX Runtime within 1 LSB of TFLM, generated C bit-exact."""
    require_tool("gcc")
    bundle = exported_bundle("imu-motions")
    local = profile(bundle, "linux-local", samples=10, out_dir=tmp_path / "local").report
    assert local["ran_on"] == "linux-local" and local["memory"]["peak_rss_bytes"] > 0
    assert local["fidelity"]["max_lsb_diff"] <= 1 and local["fidelity"]["top1_agreement"] >= 0.9
    sim = profile(bundle, "host-sim", samples=10, out_dir=tmp_path / "sim", build_dir=tmp_path / "b").report
    assert sim["ran_on"] == "host-sim" and sim["fidelity"]["bit_exact"] and sim["fidelity"]["samples"] == 10
