"""Stream drivers and a handshake monitor for cocotb benches of valid/ready interfaces.

The rules a valid/ready stream keeps (Amaranth `lib.stream`, AXI4-Stream, every AXI4/AXI4-Lite channel):
once `valid` is high it stays high until a cycle with `ready`, and the payload does not change meanwhile.
`HandshakeMonitor` checks them on any group of signals; `StreamSource` keeps them when it drives.
"""
from __future__ import annotations

import random
from collections import deque


class StreamSource:
    """Drives integer beats on `<prefix>__payload/valid`; idles a cycle with probability `idle`, but
    never withdraws a beat it has offered before it is accepted."""

    def __init__(self, dut, prefix: str, rng: random.Random, idle: float):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.rng, self.idle = rng, idle
        self.beats: deque[int] = deque()
        self.offered = False
        self.valid.value = 0

    def drive(self) -> None:
        """After a clock edge: offer the next beat (or idle, unless a beat is still pending)."""
        if not self.offered:
            self.offered = bool(self.beats) and not (self.idle and self.rng.random() < self.idle)
        if self.offered:
            self.payload.value = self.beats[0]
        self.valid.value = int(self.offered)

    def sample(self) -> int | None:
        """In ReadOnly: the beat accepted at the coming edge, or None."""
        if self.offered and self.ready.value:
            self.offered = False
            return self.beats.popleft()
        return None

    def clear(self) -> None:
        self.beats.clear()
        self.offered = False
        self.valid.value = 0


class StreamSink:
    """Accepts beats on `<prefix>__payload/valid/ready` with random backpressure (probability `stall`)."""

    def __init__(self, dut, prefix: str, rng: random.Random, stall: float):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.rng, self.stall = rng, stall
        self.accepting = False
        self.ready.value = 0

    def drive(self) -> None:
        self.accepting = not (self.stall and self.rng.random() < self.stall)
        self.ready.value = int(self.accepting)

    def sample(self) -> int | None:
        if self.accepting and self.valid.value:
            return self.payload.value.to_unsigned()
        return None


class HandshakeMonitor:
    """Checks one valid/ready channel each cycle: a beat offered without `ready` is offered again, with
    the same payload signals, in the next cycle. Call `sample()` once per cycle in ReadOnly (before the
    edge); `reset()` after the DUT's reset. Violations are kept (the first few in `messages`)."""

    def __init__(self, name: str, valid, ready, payload: list):
        self.name, self.valid, self.ready, self.payload = name, valid, ready, payload
        self.violations, self.beats, self.stalls, self.messages = 0, 0, 0, []
        self._held = None
        self.cycle = 0

    @classmethod
    def of_stream(cls, dut, prefix: str) -> "HandshakeMonitor":
        """The monitor of an Amaranth stream port `<prefix>__valid/ready/payload`."""
        return cls(prefix, getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready"),
                   [getattr(dut, f"{prefix}__payload")])

    @classmethod
    def of_axi_channel(cls, dut, prefix: str, channel: str, fields: list[str]) -> "HandshakeMonitor":
        """The monitor of AXI channel `channel` (ar, r, aw, w, b) of bus `prefix`: `<prefix>_<channel>valid`,
        `..ready` and the payload fields that the DUT has (`<prefix>_<channel><field>`)."""
        sigs = [getattr(dut, f"{prefix}_{channel}{f}") for f in fields if hasattr(dut, f"{prefix}_{channel}{f}")]
        return cls(f"{prefix}_{channel}", getattr(dut, f"{prefix}_{channel}valid"),
                   getattr(dut, f"{prefix}_{channel}ready"), sigs)

    def _values(self) -> tuple:
        return tuple(s.value for s in self.payload)

    def sample(self) -> None:
        """The payload is read only in stalled cycles and the cycle after one (fewer simulator crossings)."""
        self.cycle += 1
        valid, ready = bool(self.valid.value), bool(self.ready.value)
        values = self._values() if self._held is not None or (valid and not ready) else None
        if self._held is not None:
            if not valid:
                self._fail("valid fell before the beat was accepted")
            elif values != self._held:
                self._fail("payload changed while valid & ~ready")
        self.beats += valid and ready
        self.stalls += valid and not ready
        self._held = values if valid and not ready else None

    def reset(self) -> None:
        self._held = None

    def _fail(self, what: str) -> None:
        self.violations += 1
        if len(self.messages) < 5:
            self.messages.append(f"{self.name}: cycle {self.cycle}: {what}")

    def report(self) -> dict:
        return {"beats": self.beats, "stalls": self.stalls, "violations": self.violations,
                "messages": self.messages}
