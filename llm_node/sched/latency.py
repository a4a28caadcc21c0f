"""The fitted latency model: step time of prefill and decode batches per partition split.

File format (JSON, written by `anole llm profile`, read by the schedulers, the simulator and RAGO;
see docs/latency-model.md):

    {"format": "anole-latency/1", "device": "...", "backend": "cpu" | "cuda", "units": 2,
     "full":   {"prefill": {"c0": s, "tokens": s/token, "attn": s/pair, "context": s/token},
                "decode":  {"c0": s, "batch": s/seq, "context": s/token}},
     "splits": [{"prefill_share": 0.5, "prefill_units": 1, "decode_units": 1,
                 "prefill": {...}, "decode": {...}}, ...],
     "mixed": {"pad": s/cell}, "kv_transfer_s_per_token": s, "fit": {...errors...}}

prefill(T, A, X) = c0 + tokens * T + attn * A + context * X: T new tokens, A causal query-key pairs
    (n * ctx + n (n + 1) / 2 per sequence with n new tokens after ctx cached ones), X the context read
    (ctx + n per sequence: a chunk re-reads the KV of the chunks before it);
decode(batch B, context C)         = c0 + batch * B + context * C, with C = total context of the batch.
`full` is the whole device running one phase alone; a split's prefill coefficients were measured on its
partition while the other partition decoded, and its decode ones while the other partition prefilled, so
partition slowdown and interference are in the numbers. A mixed batch (prefill chunks and decodes in one
step, FCFS / chunked prefill) on the whole device costs max(c0) plus both linear parts plus `pad` per
wasted query-key cell of a padded attention layout (B * Qmax * Lmax minus the cells used; 0 for varlen
kernels), fitted on measured mixed steps.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from llm_node.errors import RequestError

FORMAT = "anole-latency/1"
PREFILL_KEYS = ("c0", "tokens", "attn", "context")
DECODE_KEYS = ("c0", "batch", "context")


class LatencyModelError(RequestError):
    """A latency model file that is missing, malformed or lacks a field."""


def pairs(n: int, ctx: int) -> int:
    """Causal query-key pairs of n new tokens after ctx cached ones."""
    return n * ctx + n * (n + 1) // 2


def pad_cells(items) -> int:
    """Query-key cells a padded [B, Qmax, Lmax] attention computes beyond each sequence's own n * end."""
    if len(items) < 2 or max(n for n, _, _ in items) < 2:
        return 0  # decode-only steps: their padding is in the decode fit
    return len(items) * max(n for n, _, _ in items) * max(e for _, e, _ in items) - sum(n * e for n, e, _ in items)


def batch_features(items) -> tuple[int, int, int, int, int]:
    """(prefill tokens T, pairs A, prefill context X, decode batch B, decode context C) of a batch given as
    (new_tokens, context_end, is_decode) per sequence."""
    t = a = x = b = c = 0
    for n, end, decode in items:
        if decode:
            b, c = b + 1, c + end
        else:
            t, a, x = t + n, a + pairs(n, end - n), x + end
    return t, a, x, b, c


@dataclass(slots=True)
class Split:
    prefill_share: float
    prefill: dict
    decode: dict
    prefill_units: int = 0
    decode_units: int = 0


@dataclass(slots=True)
class LatencyModel:
    device: str
    full: Split
    splits: list[Split] = field(default_factory=list)
    kv_transfer_s_per_token: float = 0.0
    backend: str = "cpu"
    units: int = 1
    extra: dict = field(default_factory=dict)
    pad: float = 0.0

    def __post_init__(self):
        for sp in [self.full, *self.splits]:
            if not 0 < sp.prefill_share <= 1:
                raise LatencyModelError(f"prefill_share must be in (0, 1], not {sp.prefill_share!r}")
            for name, keys in (("prefill", PREFILL_KEYS), ("decode", DECODE_KEYS)):
                missing = [k for k in keys if k not in getattr(sp, name)]
                if missing:
                    raise LatencyModelError(f"{name} coefficients lack {missing}")
        self.splits.sort(key=lambda s: s.prefill_share)

    @property
    def shares(self) -> list[float]:
        """Prefill shares of the measured splits, ascending (1.0, the whole device, excluded)."""
        return [s.prefill_share for s in self.splits]

    def _split(self, share: float) -> Split:
        if share >= 1.0 - 1e-9:
            return self.full
        for sp in self.splits:
            if abs(sp.prefill_share - share) < 1e-6:
                return sp
        raise LatencyModelError(f"no measured split with prefill_share {share!r}; have {self.shares + [1.0]}")

    def prefill_time(self, share: float, tokens: int, attn: int, context: int | None = None) -> float:
        """A prefill step of `tokens` new tokens, `attn` causal pairs, `context` tokens of KV read
        (default: tokens, i.e. no cached context)."""
        k = self._split(share).prefill
        return k["c0"] + k["tokens"] * tokens + k["attn"] * attn + k["context"] * (tokens if context is None
                                                                                   else context)

    def prefill_chunk(self, share: float, n: int, ctx: int = 0) -> float:
        """One sequence computing n new tokens after ctx cached ones."""
        return self.prefill_time(share, n, pairs(n, ctx), ctx + n)

    def decode_time(self, share: float, batch: int, context: int) -> float:
        """Decode step on the partition holding `share` of the device *for decode* (1 - prefill_share)."""
        k = (self.full if share >= 1.0 - 1e-9 else self._decode_split(share)).decode
        return k["c0"] + k["batch"] * batch + k["context"] * context

    def _decode_split(self, decode_share: float) -> Split:
        for sp in self.splits:
            if abs(1 - sp.prefill_share - decode_share) < 1e-6:
                return sp
        raise LatencyModelError(f"no measured split with decode share {decode_share!r}")

    def step_time(self, items, share: float = 1.0, lane: str = "device") -> float:
        """Predicted seconds of one step. items: (new_tokens, context_end, is_decode) per sequence;
        lane "device": the whole device (share 1); "prefill" / "decode": that partition at `share` of it."""
        t, a, x, b, c = batch_features(items)
        if lane == "decode" and not t:
            return self.decode_time(share, b, c)
        if lane == "prefill" and share < 1.0 - 1e-9:
            k, f = self._split(share).prefill, self.full.prefill
            slow = k["tokens"] / f["tokens"] if f["tokens"] > 0 else 1.0
            return self.prefill_time(share, t + b, a + c, x + c) + self.pad * slow * pad_cells(items)
        parts = []
        if t:
            parts.append((self.full.prefill["c0"], self.prefill_time(1.0, t, a, x)))
        if b:
            parts.append((self.full.decode["c0"], self.decode_time(1.0, b, c)))
        if not parts:
            return 0.0
        return max(p[0] for p in parts) + sum(p[1] - p[0] for p in parts) + self.pad * pad_cells(items)

    def to_dict(self) -> dict:
        split = lambda s: {"prefill_share": s.prefill_share, "prefill_units": s.prefill_units,
                           "decode_units": s.decode_units, "prefill": s.prefill, "decode": s.decode}
        return {"format": FORMAT, "device": self.device, "backend": self.backend, "units": self.units,
                "full": {"prefill": self.full.prefill, "decode": self.full.decode},
                "splits": [split(s) for s in self.splits], "mixed": {"pad": self.pad},
                "kv_transfer_s_per_token": self.kv_transfer_s_per_token, **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyModel":
        if d.get("format") != FORMAT:
            raise LatencyModelError(f"latency model format must be {FORMAT!r}, not {d.get('format')!r}")
        try:
            units = int(d.get("units", 1))
            full = Split(1.0, dict(d["full"]["prefill"]), dict(d["full"]["decode"]), units, units)
            splits = [Split(float(s["prefill_share"]), dict(s["prefill"]), dict(s["decode"]),
                            int(s.get("prefill_units", 0)), int(s.get("decode_units", 0))) for s in d["splits"]]
            known = {"format", "device", "backend", "units", "full", "splits", "kv_transfer_s_per_token", "mixed"}
            return cls(str(d["device"]), full, splits, float(d.get("kv_transfer_s_per_token", 0.0)),
                       str(d.get("backend", "cpu")), int(d.get("units", 1)),
                       {k: v for k, v in d.items() if k not in known}, float(d.get("mixed", {}).get("pad", 0.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise LatencyModelError(f"malformed latency model: {e!r}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatencyModel":
        path = Path(path)
        if not path.is_file():
            raise LatencyModelError(f"latency model {str(path)!r} not found (run `anole llm profile`)")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise LatencyModelError(f"latency model {str(path)!r} is not JSON: {e}") from None
