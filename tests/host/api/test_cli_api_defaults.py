"""`anole serve api`: retrieval defaults come from the flags, else the datastores' tuned.json, else RalmConfig."""
from __future__ import annotations

from host.cli import build_parser
from host.cli.api import _retrieval_defaults
from host.ralm.tuned import Tuned, save_tuned


def args_of(*argv):
    return build_parser().parse_args(["serve", "api", "--llm-node", "127.0.0.1:1", *argv])


def test_tuned_settings_fill_what_no_flag_sets(tmp_path):
    knn, chunks = tmp_path / "knn", tmp_path / "chunks"
    knn.mkdir(), chunks.mkdir()
    save_tuned(knn, Tuned(kind="knn", nprobe=16, lut_bits=12, k=64, lam=0.4, temperature=5.0))
    save_tuned(chunks, Tuned(kind="chunks", nprobe=4, lut_bits=16, k=1))
    got = _retrieval_defaults(args_of("--knn", str(knn), "--chunks", str(chunks), "--lam", "0.1"))
    assert got == {"nprobe": 16, "k": 64, "lam": 0.1, "knn_temperature": 5.0, "chunk_nprobe": 4}
    got = _retrieval_defaults(args_of("--knn", str(knn), "--chunks", str(chunks), "--nprobe", "2"))
    assert got["nprobe"] == 2 and "chunk_nprobe" not in got       # --nprobe sets both, as in the demo


def test_without_tuned_json_only_flags(tmp_path):
    assert _retrieval_defaults(args_of("--knn", str(tmp_path), "--k", "5")) == {"k": 5}
