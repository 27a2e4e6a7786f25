"""Frontend: one resolved frontend (parameters, raw shape, stage-2 integers) -> C sources and host calls.

The host computes features by compiling exactly the files `emit_c` writes for the device (plus a
small batch loop, native/frontends/etf_host.c) into a shared library and calling it through ctypes.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.frontends import audio, imu
from toolkit.frontends.config import FrontendConfig
from toolkit.frontends.emit import header
from toolkit.frontends.norm import Stage2

log = logging.getLogger(__name__)

IMPLEMENTATION = "edgetk C fixed-point v1"
KERNEL_DIR = Path(__file__).resolve().parent.parent / "native" / "frontends"
# kernel files each frontend type ships to the device (copied into OUT/kernels/)
KERNELS = {"mfcc": ("etf_fixed.h", "etf_mfcc.h", "etf_mfcc.c", "etf_quant.h", "etf_quant.c"),
           "logmel": ("etf_fixed.h", "etf_mfcc.h", "etf_mfcc.c", "etf_quant.h", "etf_quant.c"),
           "imu": ("etf_fixed.h", "etf_quant.h", "etf_quant.c")}
TORCH_LAYOUT = {"mfcc": "[1, T, C]", "logmel": "[1, T, C]", "imu": "[C, 1, T]"}


class Frontend:
    """A frontend ready to run: config, raw window shape and (once fitted) the stage-2 integers."""

    def __init__(self, cfg: FrontendConfig, raw_shape: tuple[int, ...], stage2: Stage2 | None = None,
                 counts_per_unit: tuple[float, ...] = ()) -> None:
        cfg.validate()
        if cfg.type not in KERNELS:
            raise EdgetkError(f"frontend.type={cfg.type!r} computes no features",
                              fix="set [frontend] type to mfcc, logmel or imu")
        self.cfg, self.raw_shape, self.stage2 = cfg, tuple(int(s) for s in raw_shape), stage2
        self.counts_per_unit = tuple(counts_per_unit)
        self._plan = audio.plan(cfg) if cfg.type in ("mfcc", "logmel") else None
        self._lib: _HostLib | None = None

    @property
    def feature_shape(self) -> tuple[int, int]:
        """[T, C] of the int8 features (= the model's NHWC input without N and the unit axis)."""
        if self._plan is not None:
            return self.cfg.n_frames, self._plan.scalars["n_out"]
        return self.raw_shape[0], self.raw_shape[1]

    @property
    def frac_bits(self) -> int:
        """Q format of the int16 stage-1 features."""
        return self._plan.frac_bits if self._plan is not None else 0

    def sources(self) -> dict[str, str]:
        """Every file of the device library, relative path -> text (pure: same inputs, same text)."""
        c = self.feature_shape[1]
        st = self.stage2 or Stage2((0,) * c, (0,) * c, (1,) * c)  # placeholder until the statistics exist
        cfg, t_c = self.cfg, self.feature_shape
        if self._plan is not None:
            body = audio.c_source(cfg, self._plan, st)
            desc, stream = audio.describe(cfg, self._plan), audio.stream_info(cfg)
        else:
            body, desc, stream = imu.c_source(t_c, st), imu.describe(t_c, self.counts_per_unit), None
        files = {"edgetk_frontend.h": header(cfg.type, f"{IMPLEMENTATION}. {desc}", self.raw_shape, t_c, self.frac_bits,
                                             cfg.input_scale, st.zero_point, stream),
                 "edgetk_frontend.c": body}
        for name in KERNELS[cfg.type]:
            files[f"kernels/{name}"] = (KERNEL_DIR / name).read_text()
        return files

    def cache_key(self) -> str:
        """sha256 of every source file the frontend compiles (so of every parameter and integer)."""
        h = hashlib.sha256(IMPLEMENTATION.encode())
        for name, text in sorted(self.sources().items()):
            h.update(name.encode() + b"\0" + text.encode() + b"\0")
        return h.hexdigest()

    def emit_c(self, out_dir: str | Path) -> list[Path]:
        """Write edgetk_frontend.h/.c and the kernel sources (kernels/etf_*.c/h) under out_dir."""
        from toolkit.fsio import atomic_write_text

        out = Path(out_dir)
        return [atomic_write_text(out / name, text) for name, text in sorted(self.sources().items())]

    def _host(self) -> _HostLib:
        if self._lib is None:
            self._lib = _HostLib(self)
        return self._lib

    def raw_i16(self, raw: np.ndarray) -> np.ndarray:
        """Check a batch of raw windows [N, *raw_shape] of int16."""
        raw = np.asarray(raw)
        if raw.dtype != np.int16 or tuple(raw.shape[1:]) != self.raw_shape:
            raise EdgetkError(f"frontend {self.cfg.type} expects int16 windows [N, {', '.join(map(str, self.raw_shape))}], "
                              f"got {raw.dtype} {list(raw.shape)}", fix="convert the raw samples with apply_frontend")
        return np.ascontiguousarray(raw)

    def stage1(self, raw_i16: np.ndarray) -> np.ndarray:
        """Stage 1 through the host C: int16 [N, T, C] in Q(frac_bits)."""
        return self._host().run("etf_host_stage1", self.raw_i16(raw_i16), np.int16)

    def features(self, raw_i16: np.ndarray) -> np.ndarray:
        """Stage 1 + 2 through the host C: int8 [N, T, C]."""
        if self.stage2 is None:
            raise EdgetkError("this frontend has no normalisation yet", fix="build it with apply_frontend")
        return self._host().run("etf_host_features", self.raw_i16(raw_i16), np.int8)

    def stream(self, raw_i16: np.ndarray) -> np.ndarray:
        """The streaming API pushed hop by hop over each window: int8 [N, T, C] (audio, frame_len % hop == 0)."""
        if self.stage2 is None or self._plan is None or audio.stream_info(self.cfg) is None:
            raise EdgetkError(f"frontend {self.cfg.type} has no streaming entry point here",
                              fix="streaming needs an audio frontend with frame_len a multiple of hop")
        return self._host().run("etf_host_stream", self.raw_i16(raw_i16), np.int8)

    def to_torch(self, q: np.ndarray) -> np.ndarray:
        """int8 [N, T, C] -> float32 (q - zp) * scale in the torch layout ([N, 1, T, C] audio, [N, C, 1, T] imu)."""
        zp = self.stage2.zero_point if self.stage2 else 0
        x = (q.astype(np.float32) - zp) * np.float32(self.cfg.input_scale)
        return x[:, None] if self._plan is not None else np.ascontiguousarray(x.transpose(0, 2, 1)[:, :, None, :])

    def info(self) -> dict[str, Any]:
        """Everything needed to regenerate the C bit for bit (goes into TaskData.frontend and the manifest)."""
        cfg = self.cfg
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
        t, c = self.feature_shape
        raw_layout = ("[samples] int16 PCM, value / 32768" if self._plan is not None
                      else "[T, C] int16 sensor counts, time-major, channels interleaved")
        out = {"type": cfg.type, "implementation": IMPLEMENTATION, "params": params,
               "raw": {"shape": list(self.raw_shape), "dtype": "int16", "layout": raw_layout},
               "features": {"shape": [t, c], "dtype": "int8", "layout": "[T, C] row-major (the model's NHWC input)",
                            "stage1_dtype": "int16", "stage1_frac_bits": self.frac_bits},
               "torch_layout": TORCH_LAYOUT[cfg.type],
               "input_quant": {"scale": cfg.input_scale, "zero_point": self.stage2.zero_point if self.stage2 else 0},
               "streaming": audio.stream_info(cfg) if self._plan is not None else None,
               "cache_key": self.cache_key()}
        if self.stage2 is not None:
            out["normalization"] = self.stage2.asdict()
        if self.counts_per_unit:
            out["counts_per_unit"] = list(self.counts_per_unit)
        return out


class _HostLib:
    """The frontend's sources compiled for this machine (cached by content) and loaded with ctypes."""

    def __init__(self, fe: Frontend) -> None:
        from toolkit.fsio import atomic_dir
        from toolkit.native.build import build_shared, cache_root, load_shared

        src = cache_root() / f"frontend-src-{fe.cache_key()[:32]}"
        if not (src / "edgetk_frontend.c").is_file():
            with atomic_dir(src) as tmp:
                fe.emit_c(tmp)
        sources = [src / "edgetk_frontend.c", *sorted((src / "kernels").glob("*.c")), KERNEL_DIR / "etf_host.c"]
        self.path = build_shared(sources, [src, src / "kernels"], name="frontend")
        self.src_dir = src
        self.lib = load_shared(self.path)
        self.lock = threading.Lock()  # the generated C keeps its scratch in static buffers
        for name in ("etf_host_features", "etf_host_stage1", "etf_host_stream"):
            fn = getattr(self.lib, name)
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32]
            fn.restype = ctypes.c_int32
        self.lib.etf_host_size.argtypes = [ctypes.c_int32]
        self.lib.etf_host_size.restype = ctypes.c_int32
        self.raw_size, self.feat_size = self.lib.etf_host_size(0), self.lib.etf_host_size(1)
        if self.raw_size != int(np.prod(fe.raw_shape)) or self.feat_size != int(np.prod(fe.feature_shape)):
            raise EdgetkError(f"{self.path} does not match the frontend's shapes", fix=f"delete {cache_root()} and retry")
        self.shape = fe.feature_shape

    def run(self, fn: str, raw: np.ndarray, dtype: type) -> np.ndarray:
        """Call a batch entry point on [N, raw...] int16; returns [N, T, C] of dtype."""
        n = len(raw)
        out = np.zeros((n, *self.shape), dtype=dtype)
        with self.lock:
            rc = getattr(self.lib, fn)(raw.ctypes.data, out.ctypes.data, n) if n else 0
        if rc < 0:
            raise EdgetkError(f"{fn} failed in {self.path}", fix="report this as an edgetk bug")
        return out
