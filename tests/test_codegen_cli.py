"""`edgetk codegen` writes the library ARCHITECTURE.md describes; refusals exit 2 with a fix."""
from __future__ import annotations

import hashlib
import json
import re

from toolkit.cli import main
from toolkit.codegen.parity import EXTERNAL_MODELS
from toolkit.paths import external_model


def test_codegen_cli_writes_library(external, tmp_path, capsys):
    model = external_model(EXTERNAL_MODELS["kws"])
    out = tmp_path / "c"
    assert main(["codegen", str(model), "-o", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"edgetk_model.h", "edgetk_model.c", "plan.json", "kernels/et_kernels.h", "kernels/et_conv.c"} <= set(info["files"])
    h = (out / "edgetk_model.h").read_text()
    assert f'#define EDGETK_MODEL_SHA256 "{hashlib.sha256(model.read_bytes()).hexdigest()}"' in h
    for macro in ("EDGETK_INPUT_SIZE 490", "EDGETK_OUTPUT_SIZE 12", f"EDGETK_ARENA_SIZE {info['arena_size']}",
                  "EDGETK_INPUT_ZERO_POINT 83", "EDGETK_OUTPUT_ZERO_POINT -128", "EDGETK_MODEL_MACS 2656768UL"):
        assert f"#define {macro}" in h
    assert "int edgetk_invoke(const int8_t *input, int8_t *output);" in h
    c = (out / "edgetk_model.c").read_text()
    assert "malloc" not in c and re.search(r"static const int8_t op0_filter\[2560\]", c)
    assert json.loads((out / "plan.json").read_text())["arena_size"] == info["arena_size"]


def test_codegen_cli_refuses_float_model(external, tmp_path, capsys):
    model = external / "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_float.tflite"
    assert main(["codegen", str(model), "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "float32" in err and "fix:" in err and not (tmp_path / "c").exists()


def test_codegen_cli_bundle_folder_default_output(external, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model_int8.tflite").write_bytes(external_model(EXTERNAL_MODELS["hello_world"]).read_bytes())
    assert main(["codegen", str(bundle), "--kernels", "fast"]) == 0
    assert "arena" in capsys.readouterr().out
    assert json.loads((bundle / "c" / "plan.json").read_text())["kernels"] == "fast"
    assert main(["codegen", str(bundle), "--kernels", "nope"]) == 2
    assert "unknown kernel set 'nope'" in capsys.readouterr().err
