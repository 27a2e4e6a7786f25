"""Torch fp32 → one-file ONNX (opset 18, batch 1, BatchNorm folded), checked against torch."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_bytes

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def fold_batchnorm(model: Any) -> Any:
    """A copy of an eval-mode model with Conv/Linear → BatchNorm pairs folded (torch.fx), else the model."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval(), inplace=False)
    except Exception as e:  # not symbolically traceable: the exporter's optimizer folds BN instead
        log.debug("fx BatchNorm folding skipped (%s); relying on the ONNX optimizer", e)
        return model.eval()


def export_fp32(model: Any, sample: np.ndarray, path: str | os.PathLike) -> Path:
    """Export `model` for one NCHW sample shape to a single-file ONNX model at `path`."""
    return atomic_write_bytes(path, fp32_proto(model, sample).SerializeToString())


def fp32_proto(model: Any, sample: np.ndarray) -> Any:
    """The checked single-file ONNX ModelProto of `model` for one NCHW sample shape (batch 1, BN folded)."""
    import onnx
    import torch

    model = fold_batchnorm(model)
    x = torch.from_numpy(np.ascontiguousarray(sample[None], dtype=np.float32))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            _quiet("torch"), _quiet("onnx_ir"), _quiet("onnxscript"):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=OPSET,
                                        external_data=False, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], verbose=False)
        except Exception as e:
            raise EdgetkError(f"torch.onnx.export failed for {type(model).__name__}: {e}",
                              fix="build the model from the ops listed in ARCHITECTURE.md") from e
    proto = program.model_proto
    _check_no_batchnorm(proto)
    onnx.checker.check_model(proto)
    return proto


@contextlib.contextmanager
def _quiet(logger: str):
    lg = logging.getLogger(logger)
    level = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(level)


def _check_no_batchnorm(proto: Any) -> None:
    left = [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"]
    if left:
        raise EdgetkError(f"BatchNorm nodes could not be folded: {left}",
                          fix="place every BatchNorm directly after a Conv2d or Linear")


def torch_outputs(model: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The fp32 torch outputs for a batch of NCHW inputs."""
    import torch

    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))).numpy())
    return np.concatenate(outs).astype(np.float32)
