"""faiss indexes in and out: check an (IndexPreTransform +) IndexIVFPQ, extract its parts, rebuild it.

anole serves exactly one faiss family: ``IndexIVFPQ`` with 8-bit codes and residual encoding, metric L2
or inner product, optionally behind an ``IndexPreTransform`` (OPQ, PCA, rotation, normalization).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from host.index.transform import PreTransform, from_faiss
from host.spec.errors import InputError
from host.spec.scan_params import KSUB

log = logging.getLogger(__name__)


def read_faiss(path: str | Path):
    """faiss.read_index with a one-line error for a missing, binary or unreadable file."""
    import faiss

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        try:
            faiss.read_index_binary(str(path))
        except RuntimeError:
            raise InputError(f"{path}: not a faiss index faiss can read ({str(e).strip().splitlines()[-1]})") from None
        raise InputError(f"{path}: a binary faiss index; anole serves IndexIVFPQ over float vectors") from None


def unwrap(index, trained: bool = True) -> tuple:
    """(the IndexIVFPQ, its PreTransform, metric "L2" | "IP") of a faiss index, or InputError naming why not
    (``trained``: the index must be trained; an untrained one gets an empty PreTransform)."""
    import faiss

    index = faiss.downcast_index(index)
    chain = []
    if isinstance(index, faiss.IndexPreTransform):
        chain = [index.chain.at(i) for i in range(index.chain.size())]
        index = faiss.downcast_index(index.index)
    name = type(index).__name__
    if type(index) is not faiss.IndexIVFPQ:
        raise InputError(f"unsupported faiss index {name}: anole serves IndexIVFPQ (optionally behind an "
                         "IndexPreTransform), e.g. factory 'OPQ16_64,IVF4096,PQ16'")
    if index.pq.nbits != 8:
        raise InputError(f"IndexIVFPQ with {index.pq.nbits}-bit codes: the kernel takes 8-bit codes (PQ{index.pq.M}x8)")
    if not index.by_residual:
        raise InputError("IndexIVFPQ without residual encoding: the kernel's tables assume by_residual")
    metric = {faiss.METRIC_L2: "L2", faiss.METRIC_INNER_PRODUCT: "IP"}.get(index.metric_type)
    if metric is None:
        raise InputError(f"faiss metric type {index.metric_type}: anole serves L2 and inner product")
    if not trained:
        return index, PreTransform(), metric
    if not index.is_trained:
        raise InputError("the faiss index is not trained")
    return index, from_faiss(chain), metric


def parts(ivf) -> tuple[np.ndarray, np.ndarray]:
    """(centroids float32[nlist, d], codebooks float32[m, 256, d/m]) of an IndexIVFPQ."""
    import faiss

    d, m = ivf.d, ivf.pq.M
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist).astype(np.float32)
    codebooks = faiss.vector_to_array(ivf.pq.centroids).astype(np.float32).reshape(m, KSUB, d // m)
    return centroids, codebooks


def fill(index, shards) -> None:
    """Add every shard's lists (offsets/codes/ids, host.index.index_dir.Shard) to an empty faiss index,
    giving faiss the same inverted lists as the index directory (the baseline of the benchmarks)."""
    import faiss

    index = faiss.downcast_index(index)
    ivf, _, _ = unwrap(index)
    for shard in shards:
        for c in np.flatnonzero(shard.list_sizes()):
            codes, ids = shard.list(int(c))
            ivf.invlists.add_entries(int(c), len(ids), faiss.swig_ptr(np.ascontiguousarray(ids, dtype=np.int64)),
                                     faiss.swig_ptr(np.ascontiguousarray(codes)))
        ivf.ntotal += shard.ntotal
    if isinstance(index, faiss.IndexPreTransform):
        index.ntotal = ivf.ntotal
