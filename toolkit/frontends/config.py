"""FrontendConfig: the recipe's [frontend] table (raw sensor samples -> the model's int8 input)."""
from __future__ import annotations

from dataclasses import dataclass

from toolkit.errors import EdgetkError

TYPES = ("none", "mfcc", "logmel", "imu")


@dataclass(frozen=True)
class FrontendConfig:
    """Which signal processing turns raw int16 samples into the model input, and its parameters."""

    type: str = "none"        # none (the dataset's float features) | mfcc | logmel | imu
    sample_rate: int = 8000   # audio: samples per second of the raw PCM
    clip_samples: int = 8000  # audio: samples per window (1 s at 8 kHz); zero-padded/cropped by the data layer
    frame_len: int = 320      # audio: samples per FFT frame (40 ms)
    hop: int = 160            # audio: samples between frame starts (20 ms)
    n_fft: int = 512          # audio: real FFT size, a power of two >= frame_len (frames are zero-padded)
    n_mels: int = 40          # audio: triangular mel filters (HTK mel scale)
    n_mfcc: int = 10          # mfcc: DCT-II coefficients kept per frame
    fmin: float = 20.0        # audio: lowest mel filter edge (Hz)
    fmax: float = 0.0         # audio: highest mel filter edge (Hz); 0 = sample_rate / 2
    log_floor: float = 1e-6   # audio: log(mel energy + log_floor), energies of the float signal in [-1, 1)
    counts_per_unit: tuple[float, ...] = ()  # imu: int16 counts per sensor unit per channel; () = from the train split
    input_scale_log2: int = -5  # model input scale 2**this (fixed, power of two), zero point 0: +/-4 std -> +/-128

    @property
    def fmax_hz(self) -> float:
        """fmax with 0 resolved to the Nyquist frequency."""
        return float(self.fmax) if self.fmax > 0 else self.sample_rate / 2.0

    @property
    def n_frames(self) -> int:
        """Frames per audio window (49 with the defaults)."""
        return 1 + (self.clip_samples - self.frame_len) // self.hop

    @property
    def input_scale(self) -> float:
        """The model input's quantization scale, 2**input_scale_log2."""
        return float(2.0 ** self.input_scale_log2)

    def validate(self) -> FrontendConfig:
        """Check every field; one EdgetkError naming the field and the fix. Returns self."""
        if self.type not in TYPES:
            raise EdgetkError(f"unknown frontend.type={self.type!r}", fix=f"choose one of: {', '.join(TYPES)}")
        if not -12 <= self.input_scale_log2 <= 0:
            _bad("input_scale_log2", self.input_scale_log2, "an integer in [-12, 0] (e.g. -5: scale 1/32)")
        if self.type in ("mfcc", "logmel"):
            self._validate_audio()
        if any(not c > 0 for c in self.counts_per_unit):
            _bad("counts_per_unit", list(self.counts_per_unit), "positive counts per sensor unit, one per channel")
        return self

    def _validate_audio(self) -> None:
        n = self.n_fft
        if n < 16 or n > 4096 or n & (n - 1):
            _bad("n_fft", n, "a power of two from 16 to 4096 (e.g. 512)")
        if not n // 4 <= self.frame_len <= n or self.frame_len % 2:
            _bad("frame_len", self.frame_len, f"an even number of samples from n_fft / 4 ({n // 4}) to n_fft ({n}), "
                 "or change n_fft to the power of two at or above frame_len")
        if not 1 <= self.hop <= self.frame_len:
            _bad("hop", self.hop, f"1 .. frame_len ({self.frame_len}) samples")
        if self.clip_samples < self.frame_len or self.clip_samples > 1 << 20:
            _bad("clip_samples", self.clip_samples, f"at least frame_len ({self.frame_len}) and at most 2^20")
        if self.sample_rate <= 0:
            _bad("sample_rate", self.sample_rate, "a positive rate in Hz")
        if not 0 <= self.fmin < self.fmax_hz <= self.sample_rate / 2:
            _bad("fmin/fmax", (self.fmin, self.fmax), f"0 <= fmin < fmax <= sample_rate / 2 ({self.sample_rate / 2})")
        if not 1 <= self.n_mels <= 256:
            _bad("n_mels", self.n_mels, "1 .. 256 filters")
        if self.type == "mfcc" and not 1 <= self.n_mfcc <= self.n_mels:
            _bad("n_mfcc", self.n_mfcc, f"1 .. n_mels ({self.n_mels})")
        if not 1e-12 <= self.log_floor <= 1.0:
            _bad("log_floor", self.log_floor, "a value in [1e-12, 1] (default 1e-6)")


def _bad(field: str, value: object, want: str) -> None:
    raise EdgetkError(f"frontend.{field}={value!r} is not supported", fix=f"set frontend.{field} to {want}")
