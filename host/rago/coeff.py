"""Coefficients with units and provenance, and the checked field readers every RAGO schema class uses."""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any

from host.spec.errors import InputError


class SchemaError(InputError):
    """A RAG schema, resource description or calibration file is invalid; the message names the field."""


@dataclass(frozen=True, slots=True)
class Coefficient:
    """A number the performance model uses, with its unit and where it came from.

    ``source`` is ``"measured: <file>"``, ``"spec: <datasheet>"``, ``"fitted: <file>"``,
    ``"assumption: <why>"`` or ``"schema: <file>"`` (a plain number written in a schema).
    """

    value: float
    unit: str
    source: str

    def __post_init__(self):
        if not isinstance(self.value, (int, float)) or isinstance(self.value, bool) or not math.isfinite(self.value):
            raise SchemaError(f"coefficient value must be a finite number, not {self.value!r}")

    def __float__(self) -> float:
        return float(self.value)

    def to_dict(self) -> dict:
        return {"value": self.value, "unit": self.unit, "source": self.source}

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit} ({self.source})"


def check_keys(where: str, d: Any, known: set[str], required: set[str] = frozenset()) -> dict:
    """``d`` must be a mapping with keys among ``known`` and all of ``required``; returns it."""
    if not isinstance(d, dict):
        raise SchemaError(f"{where} must be a mapping, not {type(d).__name__} {d!r}")
    unknown = set(d) - known
    if unknown:
        raise SchemaError(f"unknown field{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(f'{where}.{k}' for k in sorted(unknown))}; known: {', '.join(sorted(known))}")
    missing = set(required) - set(d)
    if missing:
        raise SchemaError(f"missing field{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(f'{where}.{k}' for k in sorted(missing))}")
    return d


def number(where: str, value: Any, *, lo: float = 0.0, lo_open: bool = False, integer: bool = False) -> float | int:
    """A finite number >= lo (> lo when ``lo_open``), an int when ``integer``; else SchemaError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"{where} must be a finite number, not {value!r}")
    if integer:
        if value != int(value):
            raise SchemaError(f"{where} must be an integer, not {value!r}")
        value = int(value)
    if value < lo or (lo_open and value == lo):
        raise SchemaError(f"{where} must be {'>' if lo_open else '>='} {lo:g}, not {value!r}")
    return value


def coefficient(where: str, value: Any, unit: str, default_source: str, *, lo_open: bool = True) -> Coefficient:
    """A Coefficient from a plain number (source ``default_source``) or ``{value, unit?, source?}``."""
    if isinstance(value, Coefficient):
        return value
    if isinstance(value, dict):
        check_keys(where, value, {"value", "unit", "source"}, {"value"})
        if "unit" in value and value["unit"] != unit:
            raise SchemaError(f"{where}.unit must be {unit!r}, not {value['unit']!r}")
        src = value.get("source", default_source)
        if not isinstance(src, str) or not src:
            raise SchemaError(f"{where}.source must be a non-empty string, not {src!r}")
        return Coefficient(float(number(f"{where}.value", value["value"], lo_open=lo_open)), unit, src)
    return Coefficient(float(number(where, value, lo_open=lo_open)), unit, default_source)


def build(cls, where: str, d: Any, source: str, **extra):
    """Instantiate dataclass ``cls`` from mapping ``d``; unknown/missing keys and bad numbers name the field.

    Class attributes steer the checks: ``COEFFS`` maps field -> unit for fields that become Coefficients
    (missing ones come from ``DEFAULTS``, Coefficients), ``POSITIVE`` fields must be > 0, ``INTEGER``
    fields integers; other numbers must be >= 0; ``str`` fields strings. Plain numbers get provenance
    ``source``.
    """
    coeffs: dict[str, str] = getattr(cls, "COEFFS", {})
    flds = {f.name: f for f in fields(cls) if f.name not in extra}
    required = {n for n, f in flds.items() if f.default is MISSING and f.default_factory is MISSING}
    check_keys(where, d, set(flds), required)
    kw = dict(extra)
    for k, v in d.items():
        w = f"{where}.{k}"
        if k in coeffs:
            kw[k] = coefficient(w, v, coeffs[k], source)
        elif "str" in str(flds[k].type):
            if not isinstance(v, str) and not (v is None and "None" in str(flds[k].type)):
                raise SchemaError(f"{w} must be a string, not {v!r}")
            kw[k] = v
        else:
            kw[k] = number(w, v, lo_open=k in getattr(cls, "POSITIVE", ()), integer=k in getattr(cls, "INTEGER", ()))
    for k in coeffs:
        if k not in kw and k in getattr(cls, "DEFAULTS", {}):
            kw[k] = cls.DEFAULTS[k]
    return cls(**kw)
