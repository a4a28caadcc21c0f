"""Byte layout of the scan kernel's buffers (docs/board-interface.md), derived from `ScanParams`.

Buffers (all little-endian):
  codes   uint8[nbeats, lanes * m]      the shard's codes, every list padded to whole beats of `lanes` codes
  ids     uint32|uint64[nbeats * lanes] ids in the same beats (uint32 when id_bits <= 32), padding 0
  tables  uint16[nq, nprobe, 256, m]    quantized tables, transposed: row k holds entry k of all m columns
  lists   uint64[nq, nprobe]            descriptors: bits 0..31 first beat, bits 32..63 length in codes
  results uint8[nq, k, 16]              bytes 0..7 id (uint64), 8..11 dist (uint32), 12..15 zero
"""
from __future__ import annotations

import numpy as np

from host.spec.errors import InputError
from host.spec.scan_params import KSUB, ScanParams

DESC_BYTES = 8
RESULT_BYTES = 16
TABLE_ENTRY_BYTES = 2
AP_INT_LIMIT_W = 4096
"""Widest ap_uint Vitis HLS allows at all (1024 by default, AP_INT_MAX_W up to 4096; hls/scan/scan.h sets it)."""


class KernelLayout:
    """Packs requests into the kernel's buffers and unpacks its results, for one `ScanParams`."""

    def __init__(self, params: ScanParams):
        self.params = params
        p = params
        self.id_word_bits = 32 if p.id_bits <= 32 else 64
        self.id_dtype = np.dtype("<u4") if self.id_word_bits == 32 else np.dtype("<u8")
        self.code_beat_bytes = p.lanes * p.m
        self.id_beat_bytes = p.lanes * self.id_word_bits // 8
        self.table_row_bytes = TABLE_ENTRY_BYTES * p.m
        self.table_bytes = KSUB * self.table_row_bytes
        self.empty_dist = (1 << p.dist_bits) - 1

    @property
    def word_bits(self) -> int:
        """Width of the HLS kernel's widest ap_uint: its code beat, id beat, table row or result word."""
        return 8 * max(self.code_beat_bytes, self.id_beat_bytes, self.table_row_bytes, RESULT_BYTES)

    def check_hls(self) -> None:
        """InputError unless the HLS kernel's words fit Vitis's ap_int limit (AP_INT_LIMIT_W bits)."""
        if self.word_bits > AP_INT_LIMIT_W:
            p = self.params
            raise InputError(f"the HLS kernel's code beat of 8 x m x lanes = {self.word_bits} bits (m={p.m}, "
                             f"lanes={p.lanes}) exceeds Vitis HLS's ap_uint limit of {AP_INT_LIMIT_W} bits; "
                             f"use m x lanes <= {AP_INT_LIMIT_W // 8}")

    @property
    def config_word(self) -> int:
        """What the kernel reports in its `config` register: bits 0-6 m, 7-11 lanes, 12-16 lut_bits,
        17-23 k, 24-30 id_bits, 31 set (layout version 1)."""
        p = self.params
        return p.m | p.lanes << 7 | p.lut_bits << 12 | p.k << 17 | p.id_bits << 24 | 1 << 31

    @staticmethod
    def params_from_config(word: int) -> dict:
        """Inverse of `config_word` (for error messages about a mismatched bitstream)."""
        return {"m": word & 0x7F, "lanes": word >> 7 & 0x1F, "lut_bits": word >> 12 & 0x1F,
                "k": word >> 17 & 0x7F, "id_bits": word >> 24 & 0x7F}

    def shard_image(self, shard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes uint8[nbeats, lanes*m], ids uint32|uint64[nbeats*lanes], first beat int64[nlist]) of
        `shard`, an index shard (`host.index.index_dir.Shard`: list_sizes(), codes, ids, offsets).

        List c occupies beats first[c] .. first[c] + ceil(len_c / lanes) - 1; nbeats >= 1 so that no
        buffer is empty."""
        p = self.params
        sizes = shard.list_sizes().astype(np.int64)
        beats = -(-sizes // p.lanes)
        first = np.zeros(len(sizes), np.int64)
        first[1:] = np.cumsum(beats)[:-1]
        nbeats = max(int(beats.sum()), 1)
        if nbeats >= 1 << 32:
            raise InputError(f"shard needs {nbeats} beats, more than the 32-bit descriptors address")
        owner = np.repeat(np.arange(len(sizes)), sizes)
        dst = first[owner] * p.lanes + (np.arange(shard.ntotal) - shard.offsets[owner])
        codes = np.zeros((nbeats * p.lanes, p.m), np.uint8)
        codes[dst] = shard.codes
        ids = np.zeros(nbeats * p.lanes, self.id_dtype)
        ids[dst] = np.asarray(shard.ids).astype(self.id_dtype)
        return codes.reshape(nbeats, p.lanes * p.m), ids, first

    @staticmethod
    def descriptors(first: np.ndarray, sizes: np.ndarray, list_ids: np.ndarray) -> np.ndarray:
        """uint64[nq, nprobe] for list_ids int[nq, nprobe], given first beat and size int64[nlist]."""
        lo = first[list_ids].astype(np.uint64)
        hi = sizes[list_ids].astype(np.uint64)
        if hi.size and int(hi.max()) >= 1 << 32:
            raise InputError(f"a list of {int(hi.max())} codes exceeds the 32-bit descriptor length")
        return lo | (hi << np.uint64(32))

    def tables(self, qtables: np.ndarray) -> np.ndarray:
        """uint16[nq, nprobe, m, 256] (host.spec.reference order) -> uint16[nq, nprobe, 256, m] (kernel order)."""
        p = self.params
        if qtables.ndim != 4 or qtables.shape[2:] != (p.m, KSUB):
            raise InputError(f"tables must be uint16[nq, nprobe, {p.m}, {KSUB}], not shape {qtables.shape}")
        if qtables.size and int(qtables.max()) > p.lut_max:
            raise InputError(f"table entries up to {int(qtables.max())} exceed lut_bits={p.lut_bits}")
        return np.ascontiguousarray(qtables.transpose(0, 1, 3, 2), dtype="<u2")

    def unpack_results(self, raw: np.ndarray, nq: int) -> tuple[np.ndarray, np.ndarray]:
        """raw uint8[>= nq*k*16] -> (dist int64[nq, k], ids int64[nq, k]); empty slots get id -1."""
        k = self.params.k
        rec = np.asarray(raw, np.uint8).reshape(-1)[: nq * k * RESULT_BYTES].reshape(nq, k, RESULT_BYTES)
        ids = rec[:, :, 0:8].copy().view("<u8")[..., 0].astype(np.int64)
        dist = rec[:, :, 8:12].copy().view("<u4")[..., 0].astype(np.int64)
        ids[dist == self.empty_dist] = -1
        return dist, ids

    def header_constants(self) -> dict[str, int]:
        """The constants of the generated C header `scan_config.h` (host.board.hls_config)."""
        p = self.params
        return {
            "ANOLE_M": p.m, "ANOLE_LANES": p.lanes, "ANOLE_LUT_BITS": p.lut_bits, "ANOLE_K": p.k,
            "ANOLE_ID_BITS": p.id_bits, "ANOLE_DIST_BITS": p.dist_bits, "ANOLE_KSUB": KSUB,
            "ANOLE_EMPTY_DIST": self.empty_dist, "ANOLE_ID_WORD_BITS": self.id_word_bits,
            "ANOLE_TABLE_ENTRY_BITS": 8 * TABLE_ENTRY_BYTES, "ANOLE_RESULT_BITS": 8 * RESULT_BYTES,
            "ANOLE_CONFIG_WORD": self.config_word, "ANOLE_WORD_BITS": self.word_bits,
        }
