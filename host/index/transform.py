"""Query pre-transforms (OPQ / PCA / random rotation / centering / L2 normalization), applied once per query.

A faiss ``IndexPreTransform`` chain becomes a list of steps stored beside the index (docs/index-format.md):
``normalize`` (x / ||x||, zero rows stay zero) and ``linear`` (y = A x + b, A float32[d_out, d_in]). The
coordinator and the in-process searcher apply them before the coarse search; memory nodes and kernels see
only transformed queries. Products are computed row by row (einsum's plain loops, no BLAS), so a query's
transform never depends on the batch it arrives in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from host.spec.errors import IndexFormatError, InputError


@dataclass(slots=True)
class Step:
    """One step: kind "normalize" or "linear" (with A float32[d_out, d_in] and b float32[d_out])."""

    kind: str
    a: np.ndarray | None = None
    b: np.ndarray | None = None

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "normalize":
            norms = np.sqrt(np.einsum("nd,nd->n", x, x, optimize=False))
            return (x / np.where(norms > 0, norms, np.float32(1))[:, None]).astype(np.float32)
        return (np.einsum("nd,od->no", x, self.a, optimize=False) + self.b).astype(np.float32)


@dataclass(slots=True)
class PreTransform:
    """The chain of steps from input vectors float32[n, d_in] to index vectors float32[n, d_out]."""

    steps: list[Step] = field(default_factory=list)

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        for s in self.steps:
            x = s.apply(x)
        return np.ascontiguousarray(x)

    def d_in(self, d_out: int) -> int:
        """The input dimension, given the index dimension ``d_out`` (the chain may hold no linear step)."""
        linear = [s for s in self.steps if s.kind == "linear"]
        return linear[0].a.shape[1] if linear else d_out

    def save(self, out: Path) -> list[dict]:
        """Write the linear steps' matrices as pretransform_<i>.f32 (float32[d_out, d_in + 1]: A then b) and
        return the manifest's ``pretransform`` list."""
        entries = []
        for i, s in enumerate(self.steps):
            if s.kind == "normalize":
                entries.append({"kind": "normalize"})
                continue
            name = f"pretransform_{i}.f32"
            np.concatenate([s.a, s.b[:, None]], axis=1).astype("<f4").tofile(out / name)
            entries.append({"kind": "linear", "file": name, "d_in": int(s.a.shape[1]), "d_out": int(s.a.shape[0])})
        return entries

    @classmethod
    def load(cls, path: Path, entries: list) -> PreTransform:
        steps = []
        for e in entries:
            if e.get("kind") == "normalize":
                steps.append(Step("normalize"))
            elif e.get("kind") == "linear":
                d_in, d_out = int(e["d_in"]), int(e["d_out"])
                f = path / e["file"]
                if not f.is_file() or f.stat().st_size != 4 * d_out * (d_in + 1):
                    raise IndexFormatError(f"{f}: missing, or not float32[{d_out}, {d_in + 1}]")
                ab = np.fromfile(f, "<f4").reshape(d_out, d_in + 1)
                steps.append(Step("linear", np.ascontiguousarray(ab[:, :d_in]), np.ascontiguousarray(ab[:, d_in])))
            else:
                raise IndexFormatError(f"{path}: unknown pre-transform step {e!r}")
        return cls(steps)


def from_faiss(chain) -> PreTransform:
    """A PreTransform from a faiss IndexPreTransform's chain (a list of faiss VectorTransforms)."""
    import faiss

    steps = []
    for t in chain:
        t = faiss.downcast_VectorTransform(t)
        name = type(t).__name__
        if isinstance(t, faiss.NormalizationTransform):
            if t.norm != 2.0:
                raise InputError(f"NormalizationTransform with norm {t.norm}: only the L2 norm (2.0) is supported")
            steps.append(Step("normalize"))
        elif isinstance(t, faiss.LinearTransform):
            a = faiss.vector_to_array(t.A).astype(np.float32).reshape(t.d_out, t.d_in)
            b = faiss.vector_to_array(t.b).astype(np.float32) if t.have_bias else np.zeros(t.d_out, np.float32)
            steps.append(Step("linear", a, b.reshape(t.d_out)))
        elif isinstance(t, faiss.CenteringTransform):
            mean = faiss.vector_to_array(t.mean).astype(np.float32)
            steps.append(Step("linear", np.eye(t.d_in, dtype=np.float32), -mean))
        else:
            raise InputError(f"unsupported faiss pre-transform {name}; anole takes OPQ, PCA, random rotation, "
                             "centering and L2 normalization")
    return PreTransform(steps)
