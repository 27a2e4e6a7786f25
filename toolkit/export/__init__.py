"""Export: ONNX fp32, QDQ int8 and TFLite full-int8 lowering, bundle manifest, per-stage fidelity."""
from __future__ import annotations

from toolkit.export.bundle import ExportConfig, export_run

__all__ = ["ExportConfig", "export_run"]
