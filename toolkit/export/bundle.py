"""export_run: a trained run → BUNDLE. A thin caller of the bundle stage (toolkit/export/writer.py): it turns
the run into BundleInputs (fp32 ONNX from torch, calibration draw, test split, torch reference outputs)."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.export.writer import BundleInputs, check_formats, write
from toolkit.progress import stage

log = logging.getLogger(__name__)

METRIC_TOLERANCE = 0.02  # reloaded weights vs metrics.json; batch-order float noise stays far below
PEFT_KEYS = ("finetune_mode", "deployed", "extra_params", "extra_macs", "base_params", "base_macs")  # metrics.json


@dataclass(frozen=True)
class ExportConfig:
    """How a run is exported."""

    quantizer: str = "nncf"                   # nncf (default) | ort
    calib: int = 200                          # calibration samples from the training split
    qat: bool = False                         # fake-quant fine-tuning before PTQ (toolkit.quant.qat)
    formats: tuple[str, ...] = ("onnx", "tflite")  # both always written (fidelity needs them); "c" adds C
    seed: int = 0                             # calibration sample draw
    dyadic: bool = True                       # integer-exact requantization (toolkit.quant.dyadic)

    def validate(self) -> ExportConfig:
        """Check the fields; returns self."""
        from toolkit.quant import QUANTIZERS

        check_formats(self.formats)
        if self.quantizer not in QUANTIZERS:
            raise EdgetkError(f"unknown quantizer {self.quantizer!r}", fix=f"choose one of: {', '.join(QUANTIZERS)}")
        if self.calib <= 0:
            raise EdgetkError(f"calib must be positive, got {self.calib}", fix="use e.g. --calib 200")
        return self


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, quantizer: str = "nncf",
               calib: int = 200, qat: bool = False, formats: tuple[str, ...] = ("onnx", "tflite"),
               dyadic: bool = True) -> Path:
    """Quantize a finished run once and write its bundle atomically; returns the bundle folder."""
    cfg = ExportConfig(quantizer, calib, qat, tuple(formats), dyadic=dyadic).validate()
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "bundle"
    t0 = time.monotonic()
    with _torch_threads(1), stage(f"export {run_dir}"):
        with stage("load the run, check its test metric"):
            run = load_run_checked(run_dir)
        write(bundle_inputs(run, cfg), out)
    log.info("run %s exported in %.1f s", run_dir, time.monotonic() - t0)
    return out


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Batch-1 export work: extra intra-op threads only spin (and results stay reproducible)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_run_checked(run_dir: str | os.PathLike) -> Any:
    """toolkit.train.load_run with every failure turned into an EdgetkError, and finite weights."""
    from toolkit.train import load_run

    d = Path(run_dir)
    if not d.is_dir():
        raise EdgetkError(f"run folder not found: {d}", fix="pass a folder written by `edgetk train`")
    try:
        run = load_run(d)
    except EdgetkError:
        raise
    except Exception as e:
        raise EdgetkError(f"cannot read the run in {d}: {type(e).__name__}: {str(e)[:200]}",
                          fix="the run files are damaged; re-train the run") from None
    bad = [k for k, v in run.model.state_dict().items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise EdgetkError(f"{d / 'model.safetensors'} holds non-finite weights in {bad[:3]}",
                          fix="the weights are damaged; re-train the run")
    check_reproduces_metric(run)
    return run


def check_reproduces_metric(run: Any) -> None:
    """The loaded weights must reproduce the test metric recorded at training time (catches damaged weights)."""
    from toolkit.export.fidelity import task_metric
    from toolkit.export.onnx_fp32 import torch_outputs

    recorded = run.metrics.get("value")
    out = torch_outputs(run.model, run.data.x_test)
    got = task_metric(run.data.kind, out, run.data.x_test, run.data.y_test) if np.isfinite(out).all() else float("nan")
    if recorded is not None and not abs(float(recorded) - got) <= METRIC_TOLERANCE:
        raise EdgetkError(f"{run.dir / 'model.safetensors'} gives {run.metrics.get('metric', 'metric')} {got:.4f} "
                          f"on the test split, but metrics.json records {float(recorded):.4f}",
                          fix="the weights or the data changed since training; re-train the run")


def bundle_inputs(run: Any, cfg: ExportConfig) -> BundleInputs:
    """What the bundle stage needs from a run: torch's fp32 ONNX, a calibration draw, the test split, torch outputs."""
    from toolkit.export.onnx_fp32 import fp32_proto, torch_outputs
    from toolkit.quant import calibration_set

    model, data = run.model, run.data
    if cfg.qat:
        from toolkit.quant.qat import qat_finetune

        model = qat_finetune(model, data, seed=cfg.seed)
    calib = calibration_set(data.x_train, cfg.calib, cfg.seed)
    with stage("ONNX fp32: torch.onnx.export"):
        fp32 = fp32_proto(model, data.x_test[0]).SerializeToString()
    split = {"source": "recipe", "recipe": run.recipe.path or None, "dataset": run.recipe.data.name}
    peft = {k: run.metrics[k] for k in PEFT_KEYS if k in run.metrics}
    return BundleInputs(
        task=run.recipe.task, title=f"{run.recipe.task} ({cfg.quantizer}{', QAT' if cfg.qat else ''})",
        fp32_onnx=fp32, calib_x=calib,
        test_x=data.x_test, test_y=data.y_test, reference_out=torch_outputs(model, data.x_test),
        kind=data.kind, labels=tuple(data.labels), frontend=data.frontend,
        quantizer=cfg.quantizer, dyadic=cfg.dyadic, formats=cfg.formats,
        input_qparams=input_pin(data.frontend),  # a frontend's int8 features fix the model input's quantization
        export=asdict(cfg) | {"formats": list(cfg.formats)},
        source={"kind": "training run", "run_dir": str(run.dir)},
        data={"calib": split | {"split": "train", "n": int(len(calib)), "seed": cfg.seed,
                                "description": f"training split of {split['dataset']}"},
              "test": split | {"split": "test", "n": int(len(data.x_test)),
                               "description": f"test split of {split['dataset']}"}},
        recorded_metric=run.metrics.get("value"),  # the trained model's metric (before QAT)
        manifest_extra={"finetune": peft} if peft else {},
        test_raw=data.raw_test if (data.frontend or {}).get("implementation") else None)


def input_pin(frontend: dict[str, Any] | None) -> tuple[float, int] | None:
    """(scale, zero point) a frontend fixes for the model input (frontend["input_quant"]), else None."""
    q = (frontend or {}).get("input_quant")
    return None if not q else (float(q["scale"]), int(q["zero_point"]))


def write_bundle(run: Any, out: Path, cfg: ExportConfig) -> None:
    """Write every bundle file of `run` into the (temporary) folder `out`."""
    from toolkit.export.writer import write_files

    write_files(bundle_inputs(run, cfg), out)
