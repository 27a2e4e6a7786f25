"""The MLPerf Tiny benchmark key a firmware answers to `profile%` (`m-model-[<key>]`).

The MLCommons runner (mlcommons/tiny benchmark/runner) picks its test script from tests_*.yaml by this
key, so a firmware answering anything else stops the runner at once. The key comes from, in order: the
user (`--mlperf-key`), the bundle manifest (`mlperf_key`), the model's identity (sha256 of the MLPerf
Tiny reference models, int8 and float), else "edgetk". No key is guessed from a model's shape or task:
a keyword spotter of our own is not the kws01 benchmark model, and a runner score under that key would
claim it is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from toolkit.hil.bundle import Bundle
from toolkit.hil.build import c_string

log = logging.getLogger(__name__)

DEFAULT_KEY = "edgetk"
#: keys in the runner's tests_performance.yaml / tests_accuracy.yaml (mlcommons/tiny, 2025)
RUNNER_KEYS = ("kws01", "vww01", "ic01", "ad01", "sww01")

#: sha256 of the MLPerf Tiny reference models (shared/external, mlcommons/tiny at 1afd2c98) -> (key, file)
REFERENCE_MODELS: dict[str, tuple[str, str]] = {
    "aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae": ("kws01", "kws_ref_model.tflite"),
    "e5004c6f1012246e33fa068d8488325538e0444073cd361f5a7edb40c73f12d2": ("kws01", "kws_ref_model_float32.tflite"),
    "3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415": ("ic01", "pretrainedResnet_quant.tflite"),
    "b5c0046d6e0328b4956afd6baa29555a29b1f1c65bdd45aaed75b7cd484d9f79": ("ic01", "pretrainedResnet.tflite"),
    "87cf24194ef93d1d9b11a591d805526b98008e351655d29883c825c9c106ba24": ("ad01", "ad01_int8.tflite"),
    "c66636f4d7f8af8b10518e7be750a22c9d8d46ec97326b40b0d94c097e0aad9b": ("ad01", "ad01_fp32.tflite"),
    "3af8550895ba7d5c584277102b5075c52dcfa63ba9d2b2240f37c4e6abd5dd2b": ("sww01", "str_ww_ref_model.tflite"),
}


@dataclass(frozen=True)
class ModelKey:
    """The key the firmware will answer and where it came from (for the report)."""

    key: str
    source: str

    @property
    def define(self) -> dict[str, str]:
        """The firmware build define (firmware_stubs/runtime/dut.c cmd_profile)."""
        return {"EDGETK_MLPERF_MODEL": c_string(self.key)}


def key_for_sha256(sha256: str) -> ModelKey | None:
    """The key of an MLPerf Tiny reference model, by its file's sha256."""
    hit = REFERENCE_MODELS.get(sha256.lower())
    return ModelKey(hit[0], f"sha256 of the MLPerf Tiny reference model {hit[1]}") if hit else None


def _source_sha256s(manifest: dict) -> list[str]:
    """sha256s of the model a bundle was made from, where its manifest records one."""
    out = []
    for key in ("source", "import"):
        rec = manifest.get(key)
        if isinstance(rec, dict) and isinstance(rec.get("sha256"), str):
            out.append(rec["sha256"])
    return out


def resolve_key(bundle: Bundle, override: str | None = None) -> ModelKey:
    """The MLPerf key for this bundle's firmware (see the module docstring for the order)."""
    if override:
        found = ModelKey(override, "--mlperf-key")
    elif isinstance(bundle.manifest.get("mlperf_key"), str):
        found = ModelKey(bundle.manifest["mlperf_key"], "bundle manifest (mlperf_key)")
    else:
        hits = [k for s in [bundle.sha256, *_source_sha256s(bundle.manifest)] if (k := key_for_sha256(s))]
        found = hits[0] if hits else ModelKey(DEFAULT_KEY, "default: not an MLPerf Tiny reference model")
    c_string(found.key)  # refuse a key that cannot be compiled in, before any build starts
    if found.key not in RUNNER_KEYS + (DEFAULT_KEY,):
        log.warning("MLPerf key %r is not one the MLCommons runner knows (%s): it will stop at `profile`",
                    found.key, ", ".join(RUNNER_KEYS))
    return found
