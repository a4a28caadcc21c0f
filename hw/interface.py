"""Stream layouts of the scan kernel, all derived from `ScanParams`, and their host-side packing.

The layouts are the single definition of the kernel's wire format: the Amaranth components use them
as `lib.data` layouts, the cocotb bench and host drivers pack and unpack integers with the offsets
read from the same objects (`BeatCodec`). See docs/hw-interface.md for the protocol.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Shape, unsigned
from amaranth.lib import data, enum

from host.spec.scan_params import KSUB, ScanParams

CODE_BITS = 8
"""Bits of one PQ sub-code (256 centroids)."""


class Op(enum.Enum, shape=2):
    """Opcode of a beat on the command/code stream `i`."""
    CODES = 0        # up to `lanes` codes of the open list, with ids and a lane-valid mask
    LIST = 1         # open a list: binds the next fully loaded table (its list id must match)
    END_LIST = 2     # close the open list: its table bank is free to load again
    END_QUERY = 3    # end of the query: the top-K is emitted on `o`, the next query starts empty


def table_beats(params: ScanParams) -> int:
    """Beats per table on the table stream: `lanes` table rows (of m entries) per beat."""
    return KSUB // params.lanes


def key_bits(params: ScanParams) -> int:
    return params.dist_bits + params.id_bits


def table_beat_layout(params: ScanParams) -> data.StructLayout:
    """rows[r][j] = Q[j][beat * lanes + r]; `list` is the IVF list id the table belongs to."""
    return data.StructLayout({
        "rows": data.ArrayLayout(data.ArrayLayout(unsigned(params.lut_bits), params.m), params.lanes),
        "list": unsigned(params.list_bits),
    })


def code_beat_layout(params: ScanParams) -> data.StructLayout:
    return data.StructLayout({
        "op": Op,
        "valid": unsigned(params.lanes),
        "list": unsigned(params.list_bits),
        "ids": data.ArrayLayout(unsigned(params.id_bits), params.lanes),
        "codes": data.ArrayLayout(data.ArrayLayout(unsigned(CODE_BITS), params.m), params.lanes),
    })


def result_layout(params: ScanParams) -> data.StructLayout:
    """One of the K results of a query; `last` marks the K-th."""
    return data.StructLayout({
        "id": unsigned(params.id_bits),
        "dist": unsigned(params.dist_bits),
        "last": unsigned(1),
    })


def error_layout() -> data.StructLayout:
    """Sticky protocol-error flags (cleared by reset only)."""
    return data.StructLayout({
        "codes_outside_list": 1,   # CODES beat with no open list (e.g. codes before a table)
        "end_outside_list": 1,     # END_LIST with no open list
        "nested_list": 1,          # LIST while a list is open
        "list_mismatch": 1,        # LIST id differs from the list id of the next loaded table
        "query_inside_list": 1,    # END_QUERY while a list is open (the list is closed)
    })


def _offsets(layout: data.StructLayout) -> dict[str, tuple[int, int]]:
    """{field: (bit offset, width)} of a struct layout."""
    return {name: (field.offset, Shape.cast(field.shape).width) for name, field in layout}


def pack_array(values: np.ndarray, width: int) -> list[int]:
    """uint[n, e] -> n ints, element e at bits [e*width, (e+1)*width)."""
    values = np.asarray(values, dtype=np.uint64)
    n, e = values.shape
    bits = ((values[:, :, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    packed = np.packbits(bits.reshape(n, e * width), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


class BeatCodec:
    """Packs stream beats into integers (and results back) with the offsets of the layouts above."""

    def __init__(self, params: ScanParams):
        self.params = params
        self.table = _offsets(table_beat_layout(params))
        self.code = _offsets(code_beat_layout(params))
        self.result = _offsets(result_layout(params))
        self.error_names = [name for name, _ in error_layout()]

    def table_beats(self, table: np.ndarray, list_id: int) -> list[int]:
        """table: uint16[m, 256] -> the table_beats(params) beats that load it."""
        p = self.params
        if table.shape != (p.m, KSUB):
            raise ValueError(f"table must be [{p.m}, {KSUB}], not {list(table.shape)}")
        rows = np.ascontiguousarray(np.asarray(table).T).reshape(table_beats(p), p.lanes * p.m)
        off_rows = self.table["rows"][0]
        tag = int(list_id) << self.table["list"][0]
        return [(v << off_rows) | tag for v in pack_array(rows, p.lut_bits)]

    def op_beat(self, op: Op, list_id: int = 0) -> int:
        return (Op(op).value << self.code["op"][0]) | (int(list_id) << self.code["list"][0])

    def code_beats(self, codes: np.ndarray, ids: np.ndarray) -> list[int]:
        """codes: uint8[n, m], ids: int[n] -> ceil(n / lanes) CODES beats (last one partially valid)."""
        p = self.params
        n = codes.shape[0]
        nb = -(-n // p.lanes)
        c = np.zeros((nb * p.lanes, p.m), np.uint8)
        c[:n] = codes
        i = np.zeros(nb * p.lanes, np.uint64)
        i[:n] = np.asarray(ids, dtype=np.int64).astype(np.uint64)
        cbytes = c.reshape(nb, p.lanes * p.m)
        code_ints = [int.from_bytes(row.tobytes(), "little") for row in cbytes]
        id_ints = pack_array(i.reshape(nb, p.lanes), p.id_bits)
        oc, oi, ov = self.code["codes"][0], self.code["ids"][0], self.code["valid"][0]
        full = (1 << p.lanes) - 1
        out = []
        for b in range(nb):
            nvalid = min(p.lanes, n - b * p.lanes)
            mask = full if nvalid == p.lanes else (1 << nvalid) - 1
            out.append((code_ints[b] << oc) | (id_ints[b] << oi) | (mask << ov))
        return out

    def unpack_result(self, value: int) -> tuple[int, int, int]:
        """-> (dist, id, last); an empty slot reads (empty_dist, max_id)."""
        out = []
        for name in ("dist", "id", "last"):
            off, w = self.result[name]
            out.append((value >> off) & ((1 << w) - 1))
        return tuple(out)

    def unpack_error(self, value: int) -> list[str]:
        return [name for bit, name in enumerate(self.error_names) if value >> bit & 1]
