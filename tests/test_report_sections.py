"""What the profile reports say: header (model, hash, target, date, version, commit, compiler, clock), honest
latency (an emulator's ms only as a labelled estimate), per layer on QEMU, accuracy against the labels with a
confusion matrix, flash/RAM against the target's capacity, failed checks shown as failed, the history section."""
from __future__ import annotations

import json
import re

import pytest

from conftest import require_tool
from toolkit.hil import profile
from toolkit.hil.bundle import bundle_from_tflite
from toolkit.hil.report import capacity, html_page, markdown
from toolkit.targets import get_target

HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"


@pytest.fixture(scope="module")
def hello_qemu(external, tmp_path_factory):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    d = tmp_path_factory.mktemp("hello")
    b = bundle_from_tflite(external / HELLO, d / "bundle", samples=3)
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGETK_HISTORY", str(d / "history.sqlite"))
    try:
        return profile(b.path, "qemu-m4", samples=3, out_dir=d / "out", build_dir=d / "b", layers=True), b
    finally:
        mp.undo()


def _ms_lines(text):
    return [ln for ln in text.splitlines() if re.search(r"\d ms\b", ln)]


def test_header_and_honest_latency_on_qemu(hello_qemu):
    res, b = hello_qemu
    rep, h = res.report, res.report["header"]
    assert h["model"] == "hello_world_int8" and h["bundle_sha256"] == b.sha256
    assert h["target"] == h["ran_on"] == "qemu-m4" and h["clock_hz"] == 25_000_000
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", h["date_utc"])
    assert re.match(r"[0-9a-f]{40}(\+dirty)?$|unknown$", h["git_commit"]), h["git_commit"]
    assert h["compiler"]["cc"] == "arm-none-eabi-gcc" and "-mcpu=cortex-m4" in h["compiler"]["cflags"]
    assert "arm-none-eabi-gcc" in h["compiler"]["version"]
    lat = rep["latency"]
    assert lat["measured"] is False and "per_inference_ms" in lat  # the field stays, flagged
    insns = rep["instructions"]["per_inference"]
    assert lat["estimate_ms"] == pytest.approx(insns / 25e6 * 1e3)
    md = (res.out_dir / "report.md").read_text()
    for text in (md, res.summary()):
        lines = _ms_lines(text)
        assert lines and all("estimate" in ln or "(est.)" in ln for ln in lines), lines
    for key in ("task", "model", "bundle sha256", "requested target", "ran on", "date", "edgetk", "compiler",
                "core clock"):
        assert f"| {key} |" in md


def test_layers_capacity_history_sections_on_qemu(hello_qemu):
    res, _ = hello_qemu
    rep = res.report
    lay = rep["layers"]
    assert [r["op"] for r in lay["ops"]] == ["FULLY_CONNECTED"] * 3
    assert abs(lay["difference_pct"]) < 1.0 and lay["sum"] == sum(r["instructions"] for r in lay["ops"])
    print(f"hello_world: per-op sum {lay['sum']:,} vs whole {lay['whole_inference']:,}; firmware run "
          f"{rep['instructions']['per_inference']:,.0f}")
    cap = rep["capacity"]
    assert cap["flash"]["limit"] == 4_194_304 and cap["flash"]["fits"] and cap["ram"]["fits"]
    mem = rep["memory"]
    assert cap["ram"]["used"] == mem["static_ram_bytes"] + mem["stack_reserved_bytes"]  # arena inside .bss
    hist = rep["history"]
    assert hist["id"] >= 1 and hist["runs"][-1]["id"] == hist["id"]
    assert hist["runs"][-1]["instructions"] == pytest.approx(rep["instructions"]["per_inference"])
    html = res.html_path.read_text()
    for sec in ("header", "figures", "checks", "layers", "memory-map", "accuracy", "capacity", "history"):
        assert f"<section id='{sec}'>" in html, sec
    assert html.count("<rect") >= 3 + 1 and "arena memory map" in html
    assert "no labels" in html and json.loads((res.out_dir / "report.json").read_text())["layers"]["sum"] == lay["sum"]


def test_failed_check_and_over_capacity_are_red(hello_qemu):
    """The same report with a failed outputs check and a board too small: status text and red, no plain bar."""
    res, _ = hello_qemu
    rep = json.loads(json.dumps(res.report, default=str))
    rep["checks"] = [dict(c, verdict="fail") if c["name"] == "outputs_vs_tflm" else c for c in rep["checks"]]
    rep["fidelity_stages"] = {"int8": {"top1_agreement": 1.0}}
    small = capacity(rep, get_target("nucleo-l4r5zi").__class__(**{**get_target("nucleo-l4r5zi").__dict__,
                                                                       "flash_bytes": 1000}))
    rep["capacity"] = small
    assert small["flash"]["fits"] is False and small["ram"]["fits"] is True
    html, md = html_page(rep), markdown(rep)
    assert "<td class='fail'>FAIL</td>" in html and "| outputs_vs_tflm | FAIL |" in md
    assert "OVER THE LIMIT" in html and "OVER THE LIMIT" in md
    assert "fill='#c62828'" in html  # the flash bar over the limit is red


def test_accuracy_confusion_and_side_by_side_on_labelled_zoo_bundle(exported_bundle, tmp_path, monkeypatch):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    monkeypatch.setenv("EDGETK_HISTORY", str(tmp_path / "h.sqlite"))
    bundle = exported_bundle("imu-motions")
    rep = profile(bundle, "qemu-m4", samples=12, out_dir=tmp_path / "out", build_dir=tmp_path / "b", layers=True).report
    acc = rep["accuracy_table"]
    assert acc["labels"] and acc["samples"] == 12 and acc["fp32_host"] is not None
    assert acc["int8_device"] == rep["accuracy"]["device"] and acc["int8_host"] == rep["accuracy"]["reference"]
    assert abs(rep["layers"]["difference_pct"]) < 1.0, rep["layers"]  # per layer adds up on this zoo model too
    cm = acc["confusion"]
    assert len(cm["matrix"]) == len(cm["labels"]) == 4 and sum(map(sum, cm["matrix"])) == 12
    assert sum(cm["matrix"][i][i] for i in range(4)) / 12 == pytest.approx(acc["int8_device"])
    print(f"imu-motions on qemu-m4: fp32 {acc['fp32_host']:.4f}, int8 host {acc['int8_host']:.4f}, "
          f"int8 device {acc['int8_device']:.4f} ({acc['metric']}, {acc['samples']} samples); per layer "
          f"{rep['layers']['sum']:,} vs {rep['layers']['whole_inference']:,}")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| int8 on the device (" in md and "| fp32 on the host (" in md and "Confusion matrix" in md
