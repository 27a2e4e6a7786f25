"""`edgetk inspect` on an .onnx with corrupted edgetk metadata or initializers (issue #14 item 2): it raised
JSONDecodeError / TypeError / KeyError / ValueError; now a warning (metadata) or one EdgetkError (tensors)."""
from __future__ import annotations

import subprocess
import sys

import onnx
import pytest

from toolkit.commands.inspect import inspect_onnx
from toolkit.errors import EdgetkError
from toolkit.fuzz import onnx_seeds
from toolkit.paths import REPO_ROOT


def _int8():
    return onnx.load_from_string(onnx_seeds()[1])


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '{"exact_means": "x"}', "null",
                                   '{"exact_means": -1, "add_groups": 0, "dyadic_channels": 1, "inexact_channels": 0}'])
def test_corrupted_requantization_metadata_is_a_warning(tmp_path, value):
    m = _int8()
    next(p for p in m.metadata_props if p.key == "edgetk.requantization.info").value = value
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    info = inspect_onnx(path)
    assert info["requantization"] is None and "edgetk.requantization.info is corrupted" in info["requantization_error"]
    assert info["n_ops"] == 13 and info["inputs"][0]["name"] == "x"   # the rest of the summary stands
    proc = subprocess.run([sys.executable, "-m", "toolkit", "inspect", str(path)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "warning: the model's metadata" in proc.stdout and "Traceback" not in proc.stderr


def test_corrupted_initializer_is_one_error_naming_it(tmp_path):
    m = _int8()
    t = next(t for t in m.graph.initializer if t.name == "fw")
    t.dims[0] = 2          # 48 bytes of data for a [2, 3] float tensor: the ONNX checker lets it through
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(EdgetkError, match=r"initializer 'fw' is corrupted"):
        inspect_onnx(path)
    proc = subprocess.run([sys.executable, "-m", "toolkit", "inspect", str(path)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "initializer 'fw'" in proc.stderr and "Traceback" not in proc.stderr


def test_intact_seed_models_inspect():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        for k, data in enumerate(onnx_seeds()):
            p = Path(d) / f"{k}.onnx"
            p.write_bytes(data)
            info = inspect_onnx(p)
            assert info["params"] > 0 and info.get("requantization_error") is None
    assert info["requantization"]["dyadic_channels"] == 4


def test_invalid_utf8_dimension_name_still_summarizes_to_json(tmp_path):
    """Found by bench/fuzz_onnx.py: protobuf hands an invalid UTF-8 dim_param back as bytes; `inspect --json` raised
    TypeError (bytes are not JSON serializable)."""
    import json

    data = onnx_seeds()[0]
    assert data.count(b"\x12\x01N") == 2          # Dimension.dim_param = "N" (field 2, length 1): input and output
    path = tmp_path / "m.onnx"
    path.write_bytes(data.replace(b"\x12\x01N", b"\x12\x01\xce"))
    info = inspect_onnx(path)
    assert info["inputs"][0]["shape"][0] == "\ufffd"
    json.dumps(info)
    proc = subprocess.run([sys.executable, "-m", "toolkit", "inspect", "--json", str(path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
