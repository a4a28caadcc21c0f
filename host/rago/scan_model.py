"""The CPU scan's time model: ``seconds = overhead + per_query * nq + codes / rate``, fitted and evaluated."""
from __future__ import annotations

import numpy as np

from host.rago.coeff import SchemaError


def fit_scan(points: list[dict]) -> dict:
    """Least-squares fit (relative error) of ``seconds = a + q * nq + codes / rate``, all terms >= 0.

    A per-list term is left out on purpose: on one index it is nearly collinear with the codes and would
    make the rate, the coefficient the model extrapolates to other code sizes, unstable; the rate absorbs
    it (conservatively). A negative term is dropped and the rest refitted."""
    full = np.array([[1.0, p["nq"], p["codes"]] for p in points])
    t = np.array([p["seconds"] for p in points])
    for cols in ((0, 1, 2), (0, 2), (1, 2), (2,)):
        sub, *_ = np.linalg.lstsq(full[:, cols] / t[:, None], np.ones(len(t)), rcond=None)
        if (sub >= 0).all() and sub[-1] > 0:
            break
    else:
        raise SchemaError("scan calibration failed: time does not grow with codes scanned")
    coef = np.zeros(3)
    coef[list(cols)] = sub
    return {"scan_rate": 1.0 / coef[2], "per_query_us": coef[1] * 1e6, "batch_overhead_us": coef[0] * 1e6}


def predict_scan(cal: dict, nq: int, nprobe: int, codes: int) -> float:
    """Seconds the calibrated model predicts for a scan of ``codes`` codes over nq x nprobe lists."""
    return (cal["batch_overhead_us"] + cal.get("per_query_us", 0.0) * nq) * 1e-6 + codes / cal["scan_rate"]
