"""Issue #14, item 5 (bundles and targets), each defect reproduced first: a file swapped after export is named at
load (a swapped model_int8.tflite was profiled without a word when the bundle had no c/); a manifest that is a JSON
list or has fields of the wrong type, unreadable / object / wrong-shape / empty test arrays, target templates that
cannot be filled, and a --port given to a target that cannot use it each end in one EdgetkError naming the file and
field, never a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from toolkit.cli import main
from toolkit.errors import EdgetkError
from toolkit.hil import profile
from toolkit.hil.adapters import make_target
from toolkit.hil.bundle import bundle_from_tflite, load_bundle, record_files
from toolkit.targets import get_target, load_targets

HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"
AD = "mlperf_tiny/benchmark/training/anomaly_detection/trained_models/ad01_int8.tflite"


@pytest.fixture(scope="module")
def made(external, tmp_path_factory) -> Path:
    return bundle_from_tflite(external / HELLO, tmp_path_factory.mktemp("b") / "bundle", samples=4).path


@pytest.fixture
def bundle(made, tmp_path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "bundle"))


def test_a_bundle_made_here_lists_its_files_and_loads(bundle):
    files = json.loads((bundle / "manifest.json").read_text())["files"]
    assert {"model_int8.tflite", "test_x_int8.npy", "test_out_int8.npy", "fidelity.json"} <= set(files)
    b = load_bundle(bundle)
    assert b.sha256 == files["model_int8.tflite"]["sha256"] and b.x.shape == (4, 1)


def test_a_swapped_model_is_named_and_never_profiled(bundle, external, tmp_path, capsys):
    """Before: profiled without a word (the runner generated C from whatever model_int8.tflite held)."""
    (bundle / "model_int8.tflite").write_bytes((external / AD).read_bytes())
    with pytest.raises(EdgetkError, match=r"model_int8.tflite is not the file this bundle was exported with "
                                          r"\(\d+ bytes, expected \d+\)") as e:
        load_bundle(bundle)
    assert "re-export the bundle" in e.value.fix
    assert main(["profile", str(bundle), "--target", "host-sim", "--samples", "2", "-o", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "model_int8.tflite is not the file this bundle was exported with" in err and not (tmp_path / "p").exists()


def test_a_file_changed_in_place_is_named_by_its_sha256(bundle):
    data = bytearray((bundle / "test_out_int8.npy").read_bytes())
    data[-1] ^= 1  # same size, one value off by one
    (bundle / "test_out_int8.npy").write_bytes(bytes(data))
    with pytest.raises(EdgetkError, match=r"test_out_int8.npy is not the file this bundle was exported with "
                                          r"\(sha256 [0-9a-f]{12}…, the manifest lists [0-9a-f]{12}…\)"):
        load_bundle(bundle)
    record_files(bundle)  # replaced on purpose: recorded again, then it loads
    assert load_bundle(bundle).reference_out[-1, -1] == np.frombuffer(bytes(data[-1:]), np.int8)[0]


def test_a_listed_file_the_runner_reads_must_be_there(bundle):
    (bundle / "test_out_int8.npy").unlink()
    with pytest.raises(EdgetkError, match="test_out_int8.npy is listed in .*manifest.json but missing"):
        load_bundle(bundle)


def _manifest(bundle: Path, **fields) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    m.update(fields)
    (bundle / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("field, value, said", [
    ("macs", "abc", "field 'macs' is str"), ("macs", -5, "field 'macs' is negative"), ("kind", 3, "field 'kind' is int"),
    ("test_set", [], "field 'test_set' is list"), ("output", {"zero_point": "x"}, "field 'output.zero_point' is str"),
    ("output", {"scale": [0.1], "shape": "1x4"}, "field 'output.shape' is str"), ("inputs", [3], r"field 'inputs\[0\]' is int"),
    ("files", {"model_int8.tflite": "abc"}, "field 'files.model_int8.tflite' must be"), ("labels", {}, "field 'labels' is dict"),
    ("mlperf_key", 5, "field 'mlperf_key' is int"), ("test_set", {"inputs": 7}, "field 'test_set.inputs' is int"),
    ("tflm_arena_bytes", 1.5, "field 'tflm_arena_bytes' is float"),
])
def test_manifest_fields_of_the_wrong_type_are_named(bundle, field, value, said):
    """Before: AttributeError / ValueError deep in the runner (e.g. int('abc') for macs, [].get for test_set)."""
    _manifest(bundle, **{field: value})
    with pytest.raises(EdgetkError, match=f"manifest.json: {said}"):
        load_bundle(bundle)


@pytest.mark.parametrize("text, said", [("[1, 2]", "holds a JSON list, not an object"), ("{", "is not valid JSON"),
                                        ("\"x\"", "holds a JSON str"), (b"\xff\xfe{}", "is not valid JSON")])
def test_a_manifest_that_is_not_a_json_object_is_named(bundle, text, said):
    path = bundle / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(EdgetkError, match=f"manifest.json {said}"):
        load_bundle(bundle)


def _save_object_array(path: Path) -> None:
    np.save(path, np.array([{"a": 1}, None, 3], dtype=object), allow_pickle=True)


CASES = {  # file: [(how to write it, what the error says)]
    "test_x_int8.npy": [
        (lambda p: p.write_bytes(p.read_bytes()[:-3]), "is not a readable .npy array"),
        (_save_object_array, "is not a readable .npy array .*Object arrays cannot be loaded"),
        (lambda p: np.save(p, np.zeros((4, 3), np.int8)), r"has shape \[4, 3\]: expected at least one sample of 1"),
        (lambda p: np.save(p, np.zeros((0, 1), np.int8)), r"has shape \[0, 1\]"),
        (lambda p: np.save(p, np.zeros((4, 1), np.float32)), "has dtype float32, expected int8"),
        (lambda p: np.save(p, np.int8(3)), r"has shape \[\]"),
        (lambda p: p.write_bytes(b"not numpy at all"), "is not a readable .npy array")],
    "test_out_int8.npy": [
        (lambda p: p.write_bytes(p.read_bytes()[:-2]), "is not a readable .npy array"),
        (lambda p: np.save(p, np.zeros((4, 2), np.int8)), r"has shape \[4, 2\]: expected .*the model's output \[1\]"),
        (lambda p: np.save(p, np.zeros((3, 1), np.int8)), "holds 3 rows of int8; the bundle has 4 test inputs"),
        (_save_object_array, "is not a readable .npy array .*Object arrays cannot be loaded")],
    "test_y.npy": [
        (lambda p: np.save(p, np.zeros((4, 2), np.int64)), "must hold one finite number per test input"),
        (lambda p: np.save(p, np.array(["a", "b", "c", "d"])), "must hold one finite number per test input"),
        (lambda p: np.save(p, np.array([0.0, np.nan, 1.0, 1.0])), "must hold one finite number per test input"),
        (lambda p: np.save(p, np.zeros(5, np.int64)), "holds 5 rows"),
        (_save_object_array, "is not a readable .npy array .*Object arrays cannot be loaded")],
}


@pytest.mark.parametrize("name, case", [(n, i) for n, cs in CASES.items() for i in range(len(cs))])
def test_unreadable_or_misshapen_test_arrays_are_named(bundle, name, case):
    """Each array is first caught by its sha256 (changed after export); recorded again, by its content."""
    write, said = CASES[name][case]
    listed = (bundle / name).is_file()  # the bundle has no labels: test_y.npy is new, so not listed yet
    if not listed:
        np.save(bundle / name, np.zeros(4, np.int64))
        record_files(bundle)
    write(bundle / name)
    with pytest.raises(EdgetkError, match=f"{name} is not the file this bundle was exported with"):
        load_bundle(bundle)
    record_files(bundle)
    with pytest.raises(EdgetkError, match=f"{name} {said}"):
        load_bundle(bundle)


def test_raw_windows_must_have_the_frontends_shape(bundle):
    (bundle / "frontend.json").write_text(json.dumps({"type": "imu", "raw": {"shape": [16, 2]}}))
    np.save(bundle / "test_raw_int16.npy", np.zeros((4, 5), np.int16))
    record_files(bundle)
    with pytest.raises(EdgetkError, match=r"test_raw_int16.npy has shape \[4, 5\]: expected .* of 32 values "
                                          r"\(the frontend's raw window \[16, 2\]\)"):
        load_bundle(bundle)
    np.save(bundle / "test_raw_int16.npy", np.zeros((4, 32), np.int16))
    record_files(bundle)
    assert load_bundle(bundle).raw.shape == (4, 16, 2)


# ---- targets ------------------------------------------------------------------------------------------------


@pytest.fixture
def targets(tmp_path) -> Path:
    from toolkit.paths import repo_dir

    return Path(shutil.copytree(repo_dir("targets"), tmp_path / "targets"))


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / f"{name}.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("name, old, new, said", [
    ("host-sim", 'url = "{pty}"', 'url = "{port}"', r"host-sim.toml: field 'connection.url': '\{port\}' uses \{port\}"),
    ("host-sim", 'url = "{pty}"', 'url = "/dev/pts/3"', r"'connection.url': '/dev/pts/3' lacks \{pty\}"),
    ("qemu-m4", '"-kernel", "{elf}"', '"-kernel", "{elf"', r"qemu-m4.toml: field 'emulator.command\[\d+\]': "
                                                            r"'\{elf' is not a valid template"),
    ("qemu-m4", '"-kernel", "{elf}"', '"-kernel", "{elf}}"', r"'emulator.command\[\d+\]': '\{elf\}\}' is not a valid"),
    ("qemu-m4", '"-kernel", "{elf}"', '"-kernel", "{firmware}"', r"uses \{firmware\}"),
    ("qemu-m4", 'url = "socket://127.0.0.1:{port}"', 'url = "socket://127.0.0.1:{port:d}"', r"uses \{port:d\}"),
    ("qemu-m7", 'url = "socket://127.0.0.1:{port}"', 'url = "socket://127.0.0.1:4444"', r"lacks \{port\}"),
    ("nucleo-l4r5zi", '"{bin}"', '"{bin.name}"', r"'flash.command\[\d\]': '\{bin.name\}' uses \{bin.name\}"),
    ("nucleo-l4r5zi", 'url = ""', 'url = "/dev/{tty}"', r"'connection.url': '/dev/\{tty\}' uses \{tty\}"),
])
def test_target_templates_are_checked_on_load(targets, name, old, new, said):
    """Before: KeyError / IndexError / ValueError when the adapter filled the template, after the build."""
    _edit(targets, name, old, new)
    with pytest.raises(EdgetkError, match=said) as e:
        load_targets(targets)
    assert "template" in e.value.fix or "{" in e.value.fix


def test_the_shipped_targets_pass_the_template_checks():
    assert set(load_targets()) >= {"host-sim", "linux-local", "nucleo-l4r5zi", "qemu-m4", "qemu-m7", "qemu-m3"}


@pytest.mark.parametrize("target", ["qemu-m4", "host-sim", "linux-local"])
def test_port_is_refused_where_it_cannot_be_used(made, target, tmp_path, capsys):
    """Before: --port was silently ignored (the figures came from an emulator the user did not point at)."""
    with pytest.raises(EdgetkError, match=f"--port /dev/ttyACM0 given for {target}, which cannot use it") as e:
        profile(made, target, port="/dev/ttyACM0", samples=1, out_dir=tmp_path / "p")
    assert "drop --port" in e.value.fix
    assert main(["profile", str(made), "--target", target, "--port", "/dev/ttyACM0", "-o", str(tmp_path / "c")]) == 2
    assert "which cannot use it" in capsys.readouterr().err
    if target != "linux-local":
        with pytest.raises(EdgetkError, match="which cannot use it"):
            make_target(get_target(target), port="socket://127.0.0.1:1")


def test_port_still_reaches_a_board():
    assert make_target(get_target("nucleo-l4r5zi"), port="/dev/ttyEDGETK0").port == "/dev/ttyEDGETK0"
