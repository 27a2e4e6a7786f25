"""A fault-injecting transport: the link between the real client and the real firmware, made unreliable on purpose.

Per byte, each way: drop, flip one bit, or insert a random byte before it (at `rate`); per read: a stall of up
to `max_delay_s` (at `delay_rate`); a fixed garbling of every received byte (what a wrong baud rate looks like);
or closing the link after `close_after_rx` received bytes. Used by tests/test_transport_faults.py,
tests/test_harden_link*.py and bench/link_soak.py; nothing in the runner uses it.
"""
from __future__ import annotations

import random
import time
from collections import Counter

from toolkit.hil.transport import Transport

KINDS = ("drop", "flip", "insert")


class FaultyTransport(Transport):
    """Wraps an open Transport and corrupts its byte stream (counts every fault it injects in `faults`)."""

    def __init__(self, inner: Transport, *, rate: float = 0.0, kinds: tuple[str, ...] = KINDS, seed: int = 0,
                 garble: bool = False, close_after_rx: int | None = None, delay_rate: float = 0.0,
                 max_delay_s: float = 0.0) -> None:
        super().__init__(inner.url, inner.settings)
        self.inner, self.rate, self.kinds, self.garble = inner, rate, kinds, garble
        self.delay_rate, self.max_delay_s = delay_rate, max_delay_s
        self.rng = random.Random(seed)
        self.close_after_rx, self.rx = close_after_rx, 0
        self.faults: Counter[str] = Counter()

    def _mangle(self, data: bytes) -> bytes:
        if not self.rate:
            return data
        out = bytearray()
        for b in data:
            kind = self.rng.choice(self.kinds) if self.rng.random() < self.rate else ""
            if kind:
                self.faults[kind] += 1
            if kind == "flip":
                out.append(b ^ (1 << self.rng.randrange(8)))
            elif kind == "insert":
                out += bytes([self.rng.randrange(256), b])
            elif kind != "drop":
                out.append(b)
        return bytes(out)

    def write(self, data: bytes) -> None:
        self.inner.write(self._mangle(data))

    def read(self, timeout: float) -> bytes:
        if self.delay_rate and self.rng.random() < self.delay_rate:
            self.faults["delay"] += 1
            time.sleep(self.rng.uniform(0, self.max_delay_s))
        data = self.inner.read(timeout)
        if self.close_after_rx is not None and self.rx + len(data) >= self.close_after_rx:
            data = data[: max(0, self.close_after_rx - self.rx)]
            self.inner.close()
        self.rx += len(data)
        if self.garble:
            return bytes(((b * 37) ^ 0xA5) & 0xFF for b in data)
        return self._mangle(data)

    def reset_input(self) -> None:
        self.inner.reset_input()

    def close(self) -> None:
        self.inner.close()
