"""pytest plugin for hardware-in-the-loop tests: `--hil-target`, `--hil-port`, a `dut` fixture,
a `hil` marker with budgets, figures in the JUnit report.

    @pytest.mark.hil(max_latency_ms={"qemu-m4": 50, "nucleo-l4r5zi": 200}, max_ram_kb=64)
    def test_kws_fits(dut, hil_bundle):
        y = dut.infer(hil_bundle.x[0])

Without `--hil-target` the `dut` tests run on every target in `--hil-targets` (default
"qemu-m4,host-sim"); the target name is in the test id. A board that is absent falls back to its
emulator, unless EDGETK_REQUIRE_HW=1 (budgets are per target: a number, or a {target: number}
table, checked against the target that actually ran) (then it fails); EDGETK_REQUIRE_QEMU=1 does the same for QEMU.
Kept light: toolkit.hil is imported only when a `dut` is requested.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

DEFAULT_TARGETS = "qemu-m4,host-sim"
_DEVICES_KEY = pytest.StashKey[dict]()


def skip_without_data(msg: str) -> None:
    """Skip a test whose ../shared data is absent; fail instead in CI (CI=true) or under EDGETK_REQUIRE_DATA=1."""
    if os.environ.get("CI") == "true" or os.environ.get("EDGETK_REQUIRE_DATA") == "1":
        pytest.fail(f"{msg} (CI=true / EDGETK_REQUIRE_DATA=1 turns this skip into a failure)")
    pytest.skip(msg)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the --hil-* options."""
    g = parser.getgroup("edgetk-hil", "hardware-in-the-loop (edgetk)")
    g.addoption("--hil-target", default=None, help="run `dut` tests on this target only (edgetk targets)")
    g.addoption("--hil-targets", default=DEFAULT_TARGETS, help=f"targets when --hil-target is not given "
                f"(default {DEFAULT_TARGETS})")
    g.addoption("--hil-port", default=None, help="serial port / pyserial URL of the board")
    g.addoption("--hil-bundle", default=None, help="bundle folder the `hil_bundle` fixture loads")
    g.addoption("--hil-lab", default=None, help="lab inventory TOML mapping targets to ports (hil/lab.toml)")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker and the per-session device cache."""
    config.addinivalue_line("markers", "hil(max_latency_ms=None, max_ram_kb=None): hardware-in-the-loop test "
                            "with budgets that fail the test when exceeded")
    config.stash[_DEVICES_KEY] = {}


def _targets(config: pytest.Config) -> list[str]:
    one = config.getoption("--hil-target")
    return [one] if one else [t.strip() for t in config.getoption("--hil-targets").split(",") if t.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `dut` tests over the targets; the target name is the test id."""
    if "dut" in metafunc.fixturenames:
        names = _targets(metafunc.config)
        metafunc.parametrize("hil_target", names, ids=names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def hil_target(request: pytest.FixtureRequest) -> str:
    """The target name of this parametrization."""
    return getattr(request, "param", None) or _targets(request.config)[0]


def lab_port(lab_file: str | Path | None, target: str) -> str | None:
    """The port of `target` in a lab inventory ([boards.<id>] target = ..., port = ...)."""
    if not lab_file or not Path(lab_file).is_file():
        return None
    boards = tomllib.loads(Path(lab_file).read_text()).get("boards", {})
    return next((b.get("port") for b in boards.values() if b.get("target") == target and b.get("port")), None)


@pytest.fixture(scope="session")
def hil_bundle(request: pytest.FixtureRequest) -> Any:
    """The bundle from --hil-bundle (override this fixture in a conftest to build one)."""
    path = request.config.getoption("--hil-bundle")
    if not path:
        pytest.skip("no bundle for the HIL tests; fix: pass --hil-bundle BUNDLE or override hil_bundle")
    from toolkit.hil.bundle import load_bundle

    return load_bundle(path)


@pytest.fixture(scope="session")
def _hil_devices(request: pytest.FixtureRequest) -> Any:
    devices = request.config.stash[_DEVICES_KEY]
    yield devices
    for dev in devices.values():
        dev.close()
    devices.clear()


@pytest.fixture
def dut(request: pytest.FixtureRequest, hil_target: str, hil_bundle: Any, _hil_devices: dict,
        tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A booted device running hil_bundle's model (one per target and session), figures recorded."""
    from toolkit.errors import EdgetkError
    from toolkit.hil.device import open_device

    cfg = request.config
    key = (hil_target, str(hil_bundle.path))
    if key not in _hil_devices:
        lab = lab_port(cfg.getoption("--hil-lab") or _default_lab(cfg), hil_target)
        if lab and "://" not in lab and not os.path.exists(lab):
            lab = None  # the lab's board is not plugged in here: fall back along the chain
        port = cfg.getoption("--hil-port") or lab
        try:
            _hil_devices[key] = open_device(hil_target, hil_bundle, tmp_path_factory.mktemp(f"hil-{hil_target}"),
                                            port=port)
        except EdgetkError as e:
            if os.environ.get("EDGETK_REQUIRE_HW") == "1" or os.environ.get("EDGETK_REQUIRE_QEMU") == "1":
                pytest.fail(f"no device for {hil_target}: {e}")
            pytest.skip(f"no device for {hil_target}: {e}")
    dev = _hil_devices[key]
    request.node.user_properties += [("hil_target", hil_target), ("hil_ran_on", dev.source)]
    request.node.stash[_DEVICE_KEY] = dev
    return dev


_DEVICE_KEY = pytest.StashKey[Any]()


def _default_lab(config: pytest.Config) -> Path:
    return Path(config.rootpath) / "hil" / "lab.toml"


def _budget(value: Any, target: str) -> float | None:
    """A budget is a number for every target, or a {target: number} table (absent: no budget there)."""
    return value.get(target) if isinstance(value, dict) else value


def budget_failures(budgets: dict[str, Any], timing: dict[str, Any], memory: dict[str, int],
                    target: str = "") -> list[str]:
    """The budgets a measurement exceeds, as messages (pure)."""
    out = []
    lat, ram = _budget(budgets.get("max_latency_ms"), target), _budget(budgets.get("max_ram_kb"), target)
    if lat is not None and timing["latency_ms"] > lat:
        out.append(f"latency {timing['latency_ms']:.4g} ms > budget {lat} ms ({timing['latency_source']})")
    if ram is not None and memory["ram_bytes"] / 1024 > ram:
        out.append(f"RAM {memory['ram_bytes'] / 1024:.1f} KB > budget {ram} KB (static RAM + stack high-water)")
    return out


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """After a passing `hil`-marked `dut` test: measure, attach figures to the report, check budgets."""
    result = yield
    dev = item.stash.get(_DEVICE_KEY, None)
    marker = item.get_closest_marker("hil")
    if dev is None or marker is None:
        return result
    timing, memory = dev.timed(), dev.memory()
    item.user_properties += [("latency_ms", timing["latency_ms"]), ("latency_source", timing["latency_source"]),
                             *[(k, v) for k, v in memory.items()]]
    if "instructions" in timing:
        item.user_properties.append(("instructions", timing["instructions"]))
    failures = budget_failures(dict(marker.kwargs), timing, memory, dev.source)
    if failures:
        raise AssertionError(f"HIL budget exceeded on {dev.source}: " + "; ".join(failures))
    return result
