"""The pytest plugin, run as users run it: a real pytest subprocess on a small HIL suite."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import require_tool
from toolkit.codegen import build_model as plan_model
from toolkit.pytest_plugin import budget_failures, lab_port

HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"

SUITE = '''
import pytest
from toolkit.hil.bundle import bundle_from_tflite

@pytest.fixture(scope="session")
def hil_bundle(tmp_path_factory):
    return bundle_from_tflite({model!r}, tmp_path_factory.mktemp("b"), samples=2)

@pytest.mark.hil(max_latency_ms=1000, max_ram_kb=4096)
def test_generous(dut, hil_bundle):
    dut.infer(hil_bundle.x[0])

@pytest.mark.hil(max_latency_ms=1e-9)
def test_impossible_latency(dut, hil_bundle):
    dut.infer(hil_bundle.x[1])

@pytest.mark.hil(max_ram_kb=0.001)
def test_impossible_ram(dut, hil_bundle):
    pass
'''


def _pytest(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_s.py"),
                           *args], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, **(env or {})})


def test_budgets_fail_tests_and_figures_reach_junit(external, tmp_path):
    require_tool("gcc")
    (tmp_path / "test_s.py").write_text(SUITE.format(model=str(external / HELLO)))
    junit = tmp_path / "junit.xml"
    proc = _pytest(tmp_path, "--hil-target", "host-sim", f"--junitxml={junit}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout and "2 failed" in proc.stdout
    assert "HIL budget exceeded on host-sim: latency" in proc.stdout
    assert "HIL budget exceeded on host-sim: RAM" in proc.stdout and "> budget 0.001 KB" in proc.stdout
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_generous[host-sim]"].iter("property")}
    assert props["hil_ran_on"] == "host-sim" and float(props["latency_ms"]) > 0 and "host simulator" in props["latency_source"]
    _, _, plan = plan_model(external / HELLO)  # the firmware reports the planner's arena (mem%, via the junit property)
    assert int(props["arena_bytes"]) == plan.arena_size > 0 and int(props["ram_bytes"]) >= plan.arena_size


def test_require_hw_fails_without_a_board(external, tmp_path):
    (tmp_path / "test_s.py").write_text(SUITE.format(model=str(external / HELLO)))
    proc = _pytest(tmp_path, "--hil-target", "nucleo-l4r5zi", "-k", "generous", env={"EDGETK_REQUIRE_HW": "1"})
    assert proc.returncode == 1 and "EDGETK_REQUIRE_HW=1" in proc.stdout, proc.stdout[-2000:]


def test_budget_and_lab_helpers(tmp_path):
    timing = {"latency_ms": 2.0, "latency_source": "x"}
    assert budget_failures({"max_latency_ms": 3}, timing, {"ram_bytes": 10}) == []
    assert "latency 2 ms > budget 1 ms" in budget_failures({"max_latency_ms": 1}, timing, {"ram_bytes": 10})[0]
    assert "RAM 2.0 KB > budget 1 KB" in budget_failures({"max_ram_kb": 1}, timing, {"ram_bytes": 2048})[0]
    per_target = {"max_latency_ms": {"qemu-m4": 1}}
    assert budget_failures(per_target, timing, {"ram_bytes": 1}, "qemu-m4") and \
        not budget_failures(per_target, timing, {"ram_bytes": 1}, "host-sim")
    lab = tmp_path / "lab.toml"
    lab.write_text('[boards.a]\ntarget = "nucleo-l4r5zi"\nport = "/dev/ttyACM7"\n')
    assert lab_port(lab, "nucleo-l4r5zi") == "/dev/ttyACM7" and lab_port(lab, "qemu-m4") is None


@pytest.mark.parametrize("name", ["hil/lab.toml"])
def test_example_lab_inventory_parses(name):
    from toolkit.paths import REPO_ROOT
    from toolkit.targets import load_targets

    port = lab_port(REPO_ROOT / name, "nucleo-l4r5zi")
    assert port and port.startswith("/dev/serial/by-id/") and "nucleo-l4r5zi" in load_targets()
