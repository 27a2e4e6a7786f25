"""`edgetk import MODEL -o BUNDLE`: a float ONNX, float TFLite or int8 TFLite model → the bundle `export` writes."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from toolkit.errors import EdgetkError
from toolkit.output import emit

log = logging.getLogger(__name__)

DATA_HELP = ("a recipe .toml (its dataset: train split calibrates, test split tests), an .npz (x, optional y), "
             "an .npy, a folder of .npy files, a raw float32 .bin, or 'random' (seeded random inputs, labelled "
             "RANDOM everywhere)")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `import` and return its parser."""
    p = sub.add_parser("import", help="import a float ONNX / float TFLite / int8 TFLite model into a bundle "
                                      "(same quantizers, TFLite writer, C and fidelity report as export)")
    p.add_argument("model", type=Path, metavar="MODEL", help=".onnx (float) or .tflite (float or int8) file")
    p.add_argument("-o", "--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--calib", default=None, metavar="DATA", help=f"calibration inputs: {DATA_HELP}. Default: the "
                   "--test data when given, else random")
    p.add_argument("--test", default=None, metavar="DATA", help="test inputs (same forms). Default: the --calib data "
                   "(a recipe's test split)")
    p.add_argument("--calib-n", type=int, default=200, help="calibration inputs drawn from DATA (default 200)")
    p.add_argument("--test-n", type=int, default=None, help="test inputs kept (default all; random: 100)")
    p.add_argument("--quantizer", choices=("nncf", "ort"), default="nncf",
                   help="post-training quantizer for float models (default nncf)")
    p.add_argument("--formats", default="onnx,tflite,c",
                   help="comma list of onnx, tflite, c (default all three; ONNX and TFLite are always written for "
                        "float models, the fidelity chain needs both)")
    p.add_argument("--labels", default=None, help="class names: a comma list, or a text file with one per line")
    p.add_argument("--kind", choices=("classification", "anomaly", "regression"), default=None,
                   help="task kind (default: the recipe's; else anomaly when the output has the input's size, "
                        "classification otherwise)")
    p.add_argument("--input-quant", default=None, metavar="SCALE,ZP|INT8.tflite",
                   help="the int8 input quantization: the bundle's input is pinned to it (a float model then takes the "
                        "same int8 inputs as its int8 twin), int8 data (e.g. MLPerf Tiny's kws_input.npy) is read "
                        "with it, random inputs lie on its grid: 'scale,zero_point' or an int8 .tflite of the same "
                        "model whose input params are used")
    p.add_argument("--input-range", default=None, metavar="LOW,HIGH",
                   help="random inputs: uniform over [LOW, HIGH] (default: the --input-quant range, else [-1, 1])")
    p.add_argument("--free-scales", action="store_true", help="keep the quantizer's weight scales (not dyadic)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs and the calibration draw")
    p.add_argument("--name", default=None, help="task name in the manifest (default: the model file's stem)")
    p.add_argument("--json", action="store_true", help="print the manifest's summary as JSON")
    return p


def _pair(text: str | None, what: str, conv: tuple[type, type]) -> tuple | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return conv[0](parts[0]), conv[1](parts[1])
    except ValueError:
        raise EdgetkError(f"{what} {text!r} is not two comma-separated numbers",
                          fix=f"e.g. {what} 0.5847,83") from None


def input_quant(text: str | None) -> tuple[float, int] | None:
    """--input-quant: 'scale,zp' or an int8 .tflite whose input parameters are taken."""
    if text is None or not text.endswith(".tflite"):
        return _pair(text, "--input-quant", (float, int))
    from toolkit.tflite import read_model

    g = read_model(text)
    t = g.tensor(g.inputs[0])
    if t.dtype != "int8" or t.quant is None:
        raise EdgetkError(f"--input-quant {text}: its input is {t.dtype} without quantization parameters",
                          fix="pass an int8 .tflite, or scale,zero_point")
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def labels(text: str | None) -> tuple[str, ...]:
    """--labels: a comma list or a file with one label per line."""
    if not text:
        return ()
    p = Path(text)
    if p.is_file():
        return tuple(line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    return tuple(s.strip() for s in text.split(","))


def config(args: argparse.Namespace):
    """The ImportConfig of the parsed arguments."""
    from toolkit.importer import ImportConfig

    return ImportConfig(calib=args.calib, test=args.test, quantizer=args.quantizer,
                        formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
                        labels=labels(args.labels), kind=args.kind, calib_n=args.calib_n, test_n=args.test_n,
                        input_quant=input_quant(args.input_quant),
                        input_range=_pair(args.input_range, "--input-range", (float, float)),
                        seed=args.seed, dyadic=not args.free_scales, name=args.name).validate()


def summary(out: Path) -> dict:
    """What the CLI prints: source, data provenance (RANDOM flagged), agreement, sizes."""
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {"bundle": str(out), "source": m["source"], "data": m["data"], "kind": m["kind"],
            "float_vs_int8": m.get("float_vs_int8"), "metric": m.get("metric"), "fp32_metric": m.get("fp32_metric"),
            "int8_metric": m.get("int8_metric"), "params": m["params"], "macs": m["macs"],
            "tflm_arena_bytes": m["tflm_arena_bytes"], "ops": m["ops"],
            "random_inputs": bool(m["data"].get("random")),
            "files": {k: v["bytes"] for k, v in m["files"].items() if k.startswith("model_")}}


def run(args: argparse.Namespace) -> int:
    """Import the model and print the fidelity report (or --json summary)."""
    import contextlib
    import sys

    from toolkit.importer import import_model

    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        out = import_model(args.model, args.out, config(args))  # quantizer progress bars: not on a --json stdout
    s = summary(out)
    if args.json:
        emit(s)
        return 0
    print((out / "fidelity.md").read_text(encoding="utf-8"))
    if s["random_inputs"]:
        print("NOTE: RANDOM inputs were used (no real data given): the agreement figures are on random inputs; "
              "pass --calib/--test with real data")
    sizes = ", ".join(f"{k} {v:,} B" for k, v in s["files"].items())
    print(f"bundle: {out} (imported {s['source']['format']} {s['source']['path']})\n  {sizes}\n"
          f"  params {s['params']:,}, MACs {s['macs']:,}, TFLM arena {s['tflm_arena_bytes']:,} B, ops {s['ops']}")
    return 0
