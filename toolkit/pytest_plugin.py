"""pytest plugin for hardware-in-the-loop tests: `--hil-target`, `--hil-port`, a `dut` fixture,
a `hil` marker with budgets, figures in the JUnit report.

    @pytest.mark.hil(max_latency_ms={"qemu-m4": 50, "nucleo-l4r5zi": 200}, max_ram_kb=64)
    def test_kws_fits(dut, hil_bundle):
        y = dut.infer(hil_bundle.x[0])

Without `--hil-target` the `dut` tests run on every target in `--hil-targets` (default
"qemu-m4,host-sim"); the target name is in the test id. A board that is absent falls back to its
emulator, unless EDGETK_REQUIRE_HW=1 (budgets are per target: a number, or a {target: number}
table, checked against the target that actually ran) (then it fails); EDGETK_REQUIRE_QEMU=1 does the same for QEMU.
`--hil-lab PLACE|TAG=VALUE` reserves a free place of a labgrid lab (toolkit.hil.lab; the lab file is
`--hil-lab-file`, default hil/lab.toml) at the first `dut`, runs every `dut` test on its board through RFC 2217
and releases it when the session ends (also on failures and Ctrl-C); the target defaults to the place's board.
`--hil-lab FILE.toml` still names a lab inventory of local ports ([boards.<id>] target, port).
Kept light: toolkit.hil is imported only when a `dut` is requested.
"""
from __future__ import annotations

import contextlib
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
    g.addoption("--hil-lab", default=None, help="PLACE|TAG=VALUE: reserve a labgrid place for the session and run "
                "on its board (RFC 2217); or a lab inventory FILE.toml mapping targets to local ports")
    g.addoption("--hil-lab-file", default=None, help="the lab file ([lab] coordinator, [places.*], [boards.*]; "
                "default hil/lab.toml)")
    g.addoption("--hil-lab-wait", default=None, type=float, help="seconds to wait for a busy lab place "
                "(default [lab] wait_s)")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker and the per-session device cache."""
    config.addinivalue_line("markers", "hil(max_latency_ms=None, max_ram_kb=None): hardware-in-the-loop test "
                            "with budgets that fail the test when exceeded")
    config.stash[_DEVICES_KEY] = {}


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the lab place (after the devices closed; runs after failures and Ctrl-C too)."""
    stack = config.stash.get(_LEASE_KEY, None)
    if stack is not None:
        stack.close()


def _lab_spec(config: pytest.Config) -> str | None:
    """--hil-lab when it asks for a lab place (not an inventory file)."""
    value = config.getoption("--hil-lab")
    return value if value and not (value.endswith(".toml") or Path(value).is_file()) else None


def _lab_file(config: pytest.Config) -> Path:
    value = config.getoption("--hil-lab")
    if value and not _lab_spec(config):
        return Path(value)
    return Path(config.getoption("--hil-lab-file") or _default_lab(config))


def _targets(config: pytest.Config) -> list[str]:
    one = config.getoption("--hil-target")
    if not one and _lab_spec(config):
        from toolkit.hil.lab import lab_target, load_lab

        one = lab_target(_lab_spec(config), load_lab(_lab_file(config)), None)
    return [one] if one else [t.strip() for t in config.getoption("--hil-targets").split(",") if t.strip()]


def _lab_port(config: pytest.Config) -> str:
    """The URL of the session's lab place, reserved at the first call (released by pytest_unconfigure)."""
    if _LEASE_KEY not in config.stash:
        from toolkit.hil.lab import lease, load_lab

        stack = config.stash[_LEASE_KEY] = contextlib.ExitStack()
        config.stash[_LEASE_HELD] = stack.enter_context(
            lease(_lab_spec(config), load_lab(_lab_file(config)), config.getoption("--hil-lab-wait")))
    held = config.stash.get(_LEASE_HELD, None)
    if held is None:
        pytest.fail("the lab place could not be reserved (see the first failing test)")
    return held.url


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
        if _lab_spec(cfg):
            try:
                lab = _lab_port(cfg)
            except EdgetkError as e:
                pytest.fail(f"no lab place for {hil_target}: {e}")
        else:
            lab = lab_port(_lab_file(cfg), hil_target)
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
    if cfg.stash.get(_LEASE_HELD, None) is not None:
        request.node.user_properties.append(("hil_lab_place", cfg.stash[_LEASE_HELD].place))
    request.node.stash[_DEVICE_KEY] = dev
    return dev


_DEVICE_KEY = pytest.StashKey[Any]()
_LEASE_KEY = pytest.StashKey[contextlib.ExitStack]()
_LEASE_HELD = pytest.StashKey[Any]()


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
