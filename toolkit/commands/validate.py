"""`edgetk validate BUNDLE|MODEL.tflite --target T`: run the model on the target and gate on the result (CI).

Runs the same measurement as `edgetk profile` (reports included), then checks:
  target       the requested target itself ran (a fallback to QEMU, the host simulator or an
               estimate fails unless --allow-fallback)
  device       the device answered every command (no error, no reset, no lost link)
  features     bundles with a C frontend: raw windows go to the device, and the features it computes equal
               the training features (the bundle's test_x_int8.npy) bit for bit on every window
  outputs_vs_golden / outputs_vs_tflm
               every device output value equals the reference within --max-lsb (default 0), on every
               sample: the bundle's golden test_out_int8.npy (when it has one) and TFLite-Micro on this host
  accuracy     on labelled test data, the accuracy computed from the device outputs (top-1; ROC AUC of the
               reconstruction error for anomaly models) is at most --max-drop below the reference's on the
               same samples: the bundle's golden outputs, else TFLite-Micro on this host (skipped, and said
               so, without labels: e.g. random inputs)

Exit status:
  0  every check passed (a skipped accuracy check is printed, not failed)
  1  a check failed: one line per failed check says what and by how much
  2  usage or input error (bad arguments, not a bundle, a model that does not fit, no such port)
"""
from __future__ import annotations

import argparse

from toolkit.commands.profile import add_check_args, add_model_args, measure
from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk validate`."""
    p = sub.add_parser("validate", help="run a bundle or .tflite on a target and check it (exit 0 pass, 1 fail, 2 error)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_check_args(p)
    p.add_argument("--allow-fallback", action="store_true",
                   help="accept a stand-in for an absent target (emulator, host simulator) instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object (checks, figures, verdict) on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    """Measure, check, print the verdicts; 0 when all pass, 1 when one fails."""
    result = measure(args, allow_fallback=args.allow_fallback, need_outputs=True)
    bad = result.failed
    rep = result.report
    if args.json:
        emit({"verdict": "fail" if bad else "pass", "exit_code": 1 if bad else 0,
             "target": rep["target"], "ran_on": rep["ran_on"], "samples": rep["samples"],
             "inputs": rep.get("inputs"), "model": rep.get("model"), "mlperf": rep.get("mlperf"),
             "checks": [c.to_dict() for c in result.checks], "report": str(result.files.get("json"))})
    else:
        print(result.summary())
        print(f"report: {result.html_path}")
        for c in bad:
            print(c.line())
        print(f"validate: {'FAIL' if bad else 'PASS'} ({len(bad)} of {len(result.checks)} checks failed)")
    return 1 if bad else 0
