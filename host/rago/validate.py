"""Predicted vs measured: the performance model's relative error on measurements of anole itself.

Measurements file (JSON), one entry per measured configuration; ``seconds`` (or ``ttft_ms`` / ``qps``
for a pipeline) is what was measured::

    {"measurements": [
      {"what": "cpu_scan", "nq": 16, "nprobe": 12, "codes": 148732, "seconds": 0.00037},   # needs calibration
      {"what": "remote_scan", "nodes": 2, "nq": 16, "nprobe": 8, "codes": 102851, "seconds": 0.0009},  # same
      {"what": "rpc", "seconds": 8e-5},                                                     # network.rpc_latency_us
      {"what": "prefill", "stage": "prefix", "batch": 4, "tokens": 128, "context": 0, "seconds": 0.02},
      {"what": "decode_step", "stage": "decode", "batch": 8, "context": 256, "seconds": 0.004},
      {"what": "retrieval", "kind": "cpu_server", "nodes": 2, "batch": 16, "seconds": 0.003},
      {"what": "pipeline", "groups": [{"stages": [...], "chips", "tp", "batch": {...}}],
       "retrieval": {"kind", "nodes", "batch"}, "ttft_ms": 120.0, "tpot_ms": 9.0, "qps": 35.0}]}

The last is what the RALM system on localhost records (``host.rago.pipeline``, `anole rago pipeline`);
the others check single components.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from host.rago.coeff import SchemaError, check_keys
from host.rago.localhost import predict_remote
from host.rago.optimizer import Optimizer
from host.rago.perf_model import PerfModel
from host.rago.scan_model import predict_scan
from host.rago.schema import RagSchema

NEEDS_SCHEMA = {"rpc", "prefill", "decode_step", "retrieval", "pipeline"}


@dataclass(frozen=True, slots=True)
class Check:
    """One prediction against one measurement; ``error`` = predicted / measured - 1."""

    what: str
    quantity: str
    predicted: float
    measured: float

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1


def _predict(m: dict, schema: RagSchema | None, calibration: dict | None) -> list[Check]:
    what = m.get("what")
    if what in NEEDS_SCHEMA and schema is None:
        raise SchemaError(f"measurement {what!r} needs a schema to predict from")
    if what == "cpu_scan":
        if not calibration or "cpu_scan" not in calibration:
            raise SchemaError("measurement 'cpu_scan' needs a calibration with cpu_scan")
        return [Check(what, "seconds", predict_scan(calibration["cpu_scan"], m["nq"], m["nprobe"], m["codes"]),
                      m["seconds"])]
    if what == "remote_scan":
        if not calibration or "rpc" not in calibration or "cpu_scan" not in calibration:
            raise SchemaError("measurement 'remote_scan' needs a calibration with cpu_scan and rpc")
        return [Check(what, "seconds", predict_remote(calibration, m), m["seconds"])]
    if what == "rpc":
        return [Check(what, "seconds", float(schema.resources.network.rpc_latency_us) * 1e-6, m["seconds"])]
    model = PerfModel(schema)
    if what == "prefill":
        lat = model.llm_latency(m["stage"])
        return [Check(what, "seconds", lat.prefill(m["batch"], m["tokens"], m.get("tp", 1), m.get("context", 0)),
                      m["seconds"])]
    if what == "decode_step":
        lat = model.llm_latency(m["stage"])
        return [Check(what, "seconds", lat.decode_step(m["batch"], m["context"], m.get("tp", 1)), m["seconds"])]
    if what == "retrieval":
        return [Check(what, "seconds", model.retrieval(m["kind"], m["nodes"], m["batch"]).total_s, m["seconds"])]
    if what == "pipeline":
        plan = Optimizer(schema, model).evaluate(m["groups"], m["retrieval"])
        out = []
        if "ttft_ms" in m:
            out.append(Check(what, "ttft_ms", plan.ttft_s * 1e3, m["ttft_ms"]))
        if "tpot_ms" in m:
            out.append(Check(what, "tpot_ms", plan.tpot_s * 1e3, m["tpot_ms"]))
        if "qps" in m:
            out.append(Check(what, "qps", plan.qps, m["qps"]))
        return out
    raise SchemaError(f"measurements[].what must be one of cpu_scan, remote_scan, {', '.join(sorted(NEEDS_SCHEMA))}; "
                      f"not {what!r}")


def validate(measurements: dict, schema: RagSchema | None = None, calibration: dict | None = None) -> list[Check]:
    """Every measurement's prediction; SchemaError naming the entry when one is malformed."""
    check_keys("measurements file", measurements, {"measurements", "host", "date", "source", "system", "runs"},
               {"measurements"})
    checks = []
    for i, m in enumerate(measurements["measurements"]):
        try:
            checks += _predict(m, schema, calibration)
        except KeyError as e:
            raise SchemaError(f"measurements[{i}] ({m.get('what')!r}) lacks field {e.args[0]!r}") from None
        except ZeroDivisionError:
            raise SchemaError(f"measurements[{i}]: a measured value is 0") from None
    return checks


def load_measurements(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise SchemaError(f"cannot read measurements {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise SchemaError(f"measurements {path} is not valid JSON: {e}") from None


def report(checks: list[Check]) -> str:
    """A table of predictions, measurements and errors, and the mean / worst absolute error."""
    if not checks:
        return "no measurements"
    lines = [f"{'what':<12} {'quantity':<9} {'predicted':>12} {'measured':>12} {'error':>8}"]
    lines += [f"{c.what:<12} {c.quantity:<9} {c.predicted:>12.4g} {c.measured:>12.4g} {c.error:>+8.1%}" for c in checks]
    errs = [abs(c.error) for c in checks]
    lines.append(f"mean |error| {sum(errs) / len(errs):.1%}, worst {max(errs):.1%} over {len(errs)} predictions")
    return "\n".join(lines)
