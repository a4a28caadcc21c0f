"""Scan backends by name. Each module is imported only when its backend is asked for."""
from __future__ import annotations

import importlib

from host.spec.errors import InputError

BACKENDS = {
    "reference": "host.backends.reference_backend:ReferenceBackend",
    "cpu": "host.backends.cpu_backend:CpuBackend",
    "verilator": "host.backends.verilator_backend:VerilatorBackend",
    "pynq": "host.backends.pynq_backend:PynqBackend",
    "xrt": "host.backends.xrt_backend:XrtBackend",
}


def backend_class(name: str):
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, index, shard, params, **options):
    """Instantiate backend ``name`` for one shard of ``index``."""
    return backend_class(name)(index, shard, params, **options)
